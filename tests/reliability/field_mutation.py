"""Field-level mutation of ONNX models (fp32 and packed): each mutant changes
one field the protobuf parser accepts -- a dimension, an attribute value, an
initializer's size or data, a node input, an opset, a graph input's shape --
and runs through `lowbit inspect`, `run` and `export`. A clean refusal (exit
1 or 2 with one line on stderr) or success passes; a signal, an abort, an
uncaught exception, more than one stderr line on failure, or a run over the
time limit fails.

    field_mutation.py LOWBIT MODELS_DIR WORK_DIR [N] [SEED]
"""
import os
import random
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

LOWBIT, MODELS, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4]) if len(sys.argv) > 4 else 200
SEED = int(sys.argv[5]) if len(sys.argv) > 5 else 1
LIMIT = 20  # seconds per command
os.makedirs(WORK, exist_ok=True)
rng = random.Random(SEED)

BIG = [0, -1, 2, 3, 7, 255, 65536, 2**31 - 1, 2**31, 2**40, -(2**31)]


def mutate(m):
    g = m.graph
    kind = rng.choice(["dim", "attr", "init_dim", "init_data", "input", "opset", "graph_input", "dtype",
                       "output", "drop_init"])
    if kind == "dim" and g.initializer:
        t = rng.choice(g.initializer)
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice(BIG)
    elif kind == "init_dim" and g.initializer:
        t = rng.choice(g.initializer)
        t.dims.append(rng.choice(BIG))
    elif kind == "init_data" and g.initializer:
        t = rng.choice(g.initializer)
        a = numpy_helper.to_array(t).copy()
        flat = a.reshape(-1)
        if flat.size:
            if flat.dtype.kind == "f":
                flat[rng.randrange(flat.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e38, 0.0])
            else:
                flat[rng.randrange(flat.size)] = rng.choice([0, -1, 127, 255, 2**31 - 1]) % (
                    np.iinfo(flat.dtype).max + 1)
            t.CopyFrom(numpy_helper.from_array(a, t.name))
        if rng.random() < 0.5 and t.raw_data:
            t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data) + 1)]
    elif kind == "attr":
        nodes = [n for n in g.node if n.attribute]
        if nodes:
            a = rng.choice(rng.choice(nodes).attribute)
            if a.type == onnx.AttributeProto.INT:
                a.i = rng.choice(BIG)
            elif a.type == onnx.AttributeProto.INTS and a.ints:
                a.ints[rng.randrange(len(a.ints))] = rng.choice(BIG)
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rng.choice([float("nan"), float("inf"), -1.0, 0.0, 1e30])
            elif a.type == onnx.AttributeProto.FLOATS and a.floats:
                a.floats[rng.randrange(len(a.floats))] = rng.choice([float("nan"), float("inf"), -1e30])
            elif a.type == onnx.AttributeProto.STRING:
                a.s = rng.choice([b"", b"int9", b"codebook-3", b"int2/int4", b"float", b"\xff\xfe", b"uint8"])
            if rng.random() < 0.3:  # and the attribute's type
                a.type = rng.choice([onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING,
                                     onnx.AttributeProto.INTS])
    elif kind == "input" and g.node:
        n = rng.choice(g.node)
        if n.input:
            i = rng.randrange(len(n.input))
            names = [t.name for t in g.initializer] + [o for x in g.node for o in x.output] + ["", "nothere"]
            n.input[i] = rng.choice(names)
    elif kind == "output" and g.node:
        n = rng.choice(g.node)
        if n.output:
            n.output[0] = rng.choice([o for x in g.node for o in x.output] + ["renamed", ""])
    elif kind == "opset":
        o = rng.choice(m.opset_import)
        o.version = rng.choice([0, 1, 6, 9, 11, 13, 17, 18, 99, 2**31 - 1])
    elif kind == "graph_input" and g.input:
        dims = g.input[0].type.tensor_type.shape.dim
        if dims:
            d = dims[rng.randrange(len(dims))]
            d.dim_value = rng.choice(BIG[1:] if rng.random() < 0.8 else [1])
    elif kind == "dtype" and g.initializer:
        t = rng.choice(g.initializer)
        t.data_type = rng.choice([1, 2, 3, 5, 6, 7, 9, 10, 11, 16, 0, 99])
    elif kind == "drop_init" and g.initializer:
        del g.initializer[rng.randrange(len(g.initializer))]
    return kind


def run(args):
    try:
        p = subprocess.run([LOWBIT, *args], capture_output=True, timeout=LIMIT)
    except subprocess.TimeoutExpired:
        return "hang"
    err = p.stderr.decode(errors="replace")
    if p.returncode < 0 or p.returncode >= 128:
        return f"signal/exit {p.returncode}: {err[-300:]}"
    if "terminate called" in err or "check failed" in err or "Sanitizer" in err or "runtime error" in err:
        return f"abort: {err[-300:]}"
    if p.returncode != 0 and len(err.strip().splitlines()) != 1:
        return f"{len(err.strip().splitlines())} stderr lines: {err[-300:]}"
    return None


def main():
    sources = []
    for name in ["fmnist_cnn.onnx", "fmnist_mlp.onnx"]:
        src = os.path.join(MODELS, name)
        sources.append(src)
        packed = os.path.join(WORK, "packed_" + name)
        for weights in ["int4", "int2/int4:0.25", "codebook-3"]:
            out = packed.replace(".onnx", "_" + weights.replace("/", "_").replace(":", "_") + ".onnx")
            subprocess.run([LOWBIT, "quantize", src, "-o", out, "--weights", weights, "--calib",
                            "fashion-mnist:train[0:64]", "--quiet"], check=True, capture_output=True)
            sources.append(out)
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    np.save(os.path.join(WORK, "x.npy"), x)
    failures = []
    runs = 0
    for i in range(N):
        src = rng.choice(sources)
        m = onnx.load(src)
        try:
            kinds = [mutate(m) for _ in range(rng.choice([1, 1, 2]))]
        except ValueError:  # the helper cannot decode an earlier mutation: try another
            continue
        path = os.path.join(WORK, "mutant.onnx")
        data = m.SerializeToString()
        with open(path, "wb") as f:
            f.write(data)
        for cmd in (["inspect", path], ["run", path, "--input", os.path.join(WORK, "x.npy")],
                    ["export", path, "--to", "onnx-qdq", "-o", os.path.join(WORK, "out.onnx")]):
            runs += 1
            bad = run(cmd)
            if bad:
                keep = os.path.join(WORK, f"crash_{len(failures)}.onnx")
                with open(keep, "wb") as f:
                    f.write(data)
                failures.append((i, kinds, cmd[0], bad, os.path.basename(src), keep))
                print(f"FAIL mutant {i} ({','.join(kinds)} of {os.path.basename(src)}) {cmd[0]}: {bad}", flush=True)
                break
    print(f"field mutation: {N} mutants, {runs} runs, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
