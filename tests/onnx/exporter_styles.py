#!/usr/bin/python3
"""Models in the idioms of exporters other than PyTorch's, built with ONNX's
helper API (random weights, seed 0), then checked end to end:
  - lowbit runs each unchanged and matches ONNX Runtime to 1e-5 relative;
  - lowbit quantizes each to W8A8 (static activations, calibrated on random
    inputs) with >= 30 dB output SQNR against fp32;
  - its QDQ export runs in ONNX Runtime entirely in int8: every convolution a
    QLinearConv, no fp32 Conv, Gemm or MatMul left in ORT's optimized graph
    (the opset-9 model too: `quantize` converts it to opset 13 first).
Styles:
  tf2onnx (opset 13): NHWC input behind a Transpose, Max(x, 0) and Min(x, 6) as
    ReLU/ReLU6, x * HardSigmoid(x), Transpose pairs between convolutions,
    ReduceMean over H and W, a Shape/Gather/Cast/Slice/Concat chain feeding
    Reshape, a decomposed LayerNorm (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add),
    MatMul + Add;
  paddle2onnx (opset 9): BatchNormalization, depthwise convolution, a
    squeeze-excite block with HardSigmoid and broadcasting Mul, Clip with
    attribute bounds, Flatten, MatMul + Add, Softmax;
  speech (tf2onnx, opset 13): [N, T, F] features, 1-D convolutions, PRelu,
    Erf-form Gelu, ReduceMax over time, Where/Equal/Not on a mask, Expand,
    Tile, Split and Concat, Gemm;
  opset 20: Gelu (tanh and erf forms) and Mish as operators;
  an If on a constant condition (folded to the branch taken).
usage: exporter_styles.py LOWBIT ORT_DIR WORK
"""
import collections
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, arr, dtype=np.float32):
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype), name))
        return name

    def op(self, op_type, inputs, n_out=1, **attrs):
        self.n += 1
        outs = [f"{op_type.lower()}{self.n}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{self.n}", **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k, group=1, dims=2, **attrs):
        fan = cin // group * k ** dims
        w = rng.normal(0, np.sqrt(2.0 / fan), (cout, cin // group) + (k,) * dims)
        b = rng.normal(0, 0.1, cout)
        return self.op("Conv", [x, self.const(w), self.const(b)], group=group, pads=[k // 2] * (2 * dims), **attrs)

    def model(self, x_shape, y, y_shape, opset, check=True):
        g = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, y_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 7 if opset < 19 else 9
        if check:  # Debian's onnx predates opset 20's Gelu
            onnx.checker.check_model(m)
        return m


def tf2onnx_style():
    b = Builder()
    x = b.op("Transpose", ["x"], perm=[0, 3, 1, 2])  # NHWC -> NCHW
    x = b.op("Max", [b.conv(x, 3, 8, 3), b.const(0.0)])  # ReLU as Max
    x = b.op("Transpose", [x], perm=[0, 2, 3, 1])  # a pair that cancels
    x = b.op("Transpose", [x], perm=[0, 3, 1, 2])
    c = b.conv(x, 8, 8, 3)
    x = b.op("Mul", [c, b.op("HardSigmoid", [c], alpha=1.0 / 6, beta=0.5)])  # HardSwish
    x = b.op("Min", [b.op("Max", [b.conv(x, 8, 16, 1), b.const(0.0)]), b.const(6.0)])  # ReLU6
    x = b.op("ReduceMean", [x], axes=[2, 3], keepdims=0)  # [N, 16]
    # Shape arithmetic feeding Reshape, as tf2onnx writes it.
    shape = b.op("Shape", [x])
    n = b.op("Slice", [shape, b.const([0], np.int64), b.const([1], np.int64)])
    n = b.op("Cast", [b.op("Cast", [n], to=TensorProto.FLOAT)], to=TensorProto.INT64)
    x = b.op("Reshape", [x, b.op("Concat", [n, b.const([-1], np.int64)], axis=0)])
    # LayerNorm, decomposed.
    mean = b.op("ReduceMean", [x], axes=[-1])
    d = b.op("Sub", [x, mean])
    var = b.op("ReduceMean", [b.op("Pow", [d, b.const(2.0)])], axes=[-1])
    x = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [var, b.const(1e-5)])])])
    x = b.op("Add", [b.op("Mul", [x, b.const(rng.normal(1, 0.1, 16))]), b.const(rng.normal(0, 0.1, 16))])
    y = b.op("Add", [b.op("MatMul", [x, b.const(rng.normal(0, 0.3, (16, 10)))]), b.const(rng.normal(0, 0.1, 10))])
    return b.model([None, 16, 16, 3], y, [None, 10], 13), (4, 16, 16, 3)


def paddle2onnx_style():
    b = Builder()
    x = b.conv("x", 3, 16, 3)
    x = b.op("BatchNormalization", [x, b.const(rng.uniform(0.5, 1.5, 16)), b.const(rng.normal(0, 0.1, 16)),
                                    b.const(rng.normal(0, 0.1, 16)), b.const(rng.uniform(0.5, 1.5, 16))])
    x = b.op("Relu", [x])
    x = b.conv(x, 16, 16, 3, group=16)  # depthwise
    x = b.op("Clip", [x], min=0.0, max=6.0)  # attribute form (opset < 11)
    se = b.op("GlobalAveragePool", [x])
    se = b.op("Relu", [b.conv(se, 16, 4, 1)])
    se = b.op("HardSigmoid", [b.conv(se, 4, 16, 1)], alpha=0.2, beta=0.5)
    x = b.op("Mul", [x, se])  # broadcast over H, W
    x = b.op("Relu", [b.conv(x, 16, 24, 1)])
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    x = b.op("Add", [b.op("MatMul", [x, b.const(rng.normal(0, 0.3, (24, 10)))]), b.const(rng.normal(0, 0.1, 10))])
    return b.model([None, 3, 16, 16], b.op("Softmax", [x], axis=1), [None, 10], 9), (4, 3, 16, 16)


def speech_style():
    b = Builder()
    x = b.op("Transpose", ["x"], perm=[0, 2, 1])  # [N, T, F] -> [N, F, T]
    x = b.conv(x, 20, 32, 5, dims=1)
    x = b.op("PRelu", [x, b.const(rng.uniform(0.05, 0.3, (32, 1)))])
    c = b.conv(x, 32, 32, 3, dims=1)
    gelu = b.op("Mul", [b.op("Mul", [c, b.op("Add", [b.op("Erf", [b.op("Div", [c, b.const(np.sqrt(2.0))])]),
                                                     b.const(1.0)])]), b.const(0.5)])
    # A mask over time (all frames valid), applied with Where.
    valid = b.op("Not", [b.op("Equal", [b.op("Abs", [gelu]), b.const(-1.0)])])
    x = b.op("Where", [valid, gelu, b.op("Expand", [b.const(0.0), b.const([1, 32, 1], np.int64)])])
    lo, hi = b.op("Split", [x], n_out=2, axis=1)
    x = b.op("Concat", [b.op("Neg", [b.op("Neg", [lo])]), hi], axis=1)
    x = b.op("ReduceMax", [x], axes=[2], keepdims=0)  # [N, 32]
    x = b.op("Add", [x, b.op("Tile", [b.const(np.zeros((1, 16))), b.const([1, 2], np.int64)])])
    y = b.op("Gemm", [x, b.const(rng.normal(0, 0.3, (12, 32))), b.const(rng.normal(0, 0.1, 12))], transB=1)
    return b.model([None, 50, 20], y, [None, 12], 13), (4, 50, 20)


def opset20_style():
    b = Builder()
    x = b.op("Gelu", [b.conv("x", 3, 8, 3)], approximate="tanh")
    x = b.op("Mish", [b.conv(x, 8, 8, 3)])
    x = b.op("Gelu", [b.conv(x, 8, 8, 1)])  # the erf form
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])])
    y = b.op("Gemm", [x, b.const(rng.normal(0, 0.3, (6, 8))), b.const(rng.normal(0, 0.1, 6))], transB=1)
    return b.model([None, 3, 12, 12], y, [None, 6], 20, check=False), (4, 3, 12, 12)


def if_style():
    # A shape check as exporters write it: If on a constant condition, the
    # taken branch computing from outer-scope values.
    b = Builder()
    c = b.conv("x", 3, 8, 3)
    cond = b.op("Constant", [], value=helper.make_tensor("t", TensorProto.BOOL, [], [True]))
    then_out, else_out = "then_y", "else_y"
    then_g = helper.make_graph([helper.make_node("Relu", [c], [then_out])], "then", [],
                               [helper.make_tensor_value_info(then_out, TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Neg", [c], [else_out])], "else", [],
                               [helper.make_tensor_value_info(else_out, TensorProto.FLOAT, None)])
    x = b.op("If", [cond], then_branch=then_g, else_branch=else_g)
    x = b.op("Flatten", [b.op("GlobalAveragePool", [b.conv(x, 8, 8, 3)])])
    y = b.op("Gemm", [x, b.const(rng.normal(0, 0.3, (5, 8))), b.const(rng.normal(0, 0.1, 5))], transB=1)
    return b.model([None, 3, 10, 10], y, [None, 5], 13), (4, 3, 10, 10)


def sqnr(a, ref):
    return 10 * np.log10((ref ** 2).sum() / max(((a - ref) ** 2).sum(), 1e-30))


def main():
    lowbit, ort_dir, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    failed = 0
    for name, make in [("tf2onnx", tf2onnx_style), ("paddle2onnx", paddle2onnx_style), ("speech", speech_style),
                       ("opset20", opset20_style), ("if_constant", if_style)]:
        model, shape = make()
        path = os.path.join(work, name + ".onnx")
        onnx.save(model, path)
        x = rng.normal(0, 1, shape).astype(np.float32)
        calib = rng.normal(0, 1, (64,) + shape[1:]).astype(np.float32)
        xp, cp = os.path.join(work, name + "_x.npy"), os.path.join(work, name + "_calib.npy")
        np.save(xp, x)
        np.save(cp, calib)
        out = {k: os.path.join(work, f"{name}_{k}.npy") for k in ("lowbit", "ort", "w8a8")}
        q = os.path.join(work, name + "_w8a8.onnx")
        qdq, opt = os.path.join(work, name + "_qdq.onnx"), os.path.join(work, name + "_qdq_ort.onnx")
        cmds = [[lowbit, "run", path, "--input", xp, "--output", out["lowbit"]],
                ["node", os.path.join(ort_dir, "ort_run.js"), path, xp, out["ort"]],
                [lowbit, "quantize", path, "-o", q, "--weights", "int8", "--calib", "npy:" + cp, "--quiet"],
                [lowbit, "run", q, "--input", xp, "--output", out["w8a8"]],
                [lowbit, "export", q, "--to", "onnx-qdq", "-o", qdq, "--quiet"],
                ["node", os.path.join(ort_dir, "ort_optimized.js"), qdq, opt]]
        ok = True
        for cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               env=dict(os.environ, NODE_PATH=os.path.join(ort_dir, "node_modules")))
            if r.returncode != 0:
                print(f"FAIL: {name}: {' '.join(cmd[:2])}: {(r.stderr or r.stdout).strip()[-400:]}")
                ok = False
                break
        if ok:
            lb, ort, w8 = (np.load(out[k]) for k in ("lowbit", "ort", "w8a8"))
            rel = np.abs(lb - ort).max() / max(np.abs(ort).max(), 1e-30)
            s = sqnr(w8, lb)
            ops = collections.Counter(n.op_type for n in onnx.load(opt).graph.node)
            convs = sum(n.op_type == "Conv" for n in model.graph.node)
            fp32 = {k: ops[k] for k in ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul") if ops[k]}
            ok = rel <= 1e-5 and s >= 30 and ops["QLinearConv"] == convs and not fp32
            print(f"{'ok' if ok else 'FAIL'}: {name} (opset {model.opset_import[0].version}): lowbit vs ONNX "
                  f"Runtime max rel diff {rel:.2e} (<= 1e-5), W8A8 SQNR {s:.1f} dB (>= 30), QDQ export in "
                  f"ONNX Runtime: {ops['QLinearConv']}/{convs} QLinearConv, fp32 left {fp32 or 'none'}")
        failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
