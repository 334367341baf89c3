#!/usr/bin/env python3
"""Evidence for a peer baseline: the operator counts of ONNX Runtime's
optimized graph of a model (how many Conv/QLinearConv/QuantizeLinear ORT
really runs), from bench/ort/ort_optimized.js.
  bench/ort_fusion.py MODEL.onnx [...]"""
import collections, os, subprocess, sys, tempfile
import onnx

here = os.path.dirname(os.path.abspath(__file__))
for model in sys.argv[1:]:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "opt.onnx")
        subprocess.run(["node", os.path.join(here, "ort", "ort_optimized.js"), model, out], check=True)
        ops = collections.Counter(n.op_type for n in onnx.load(out).graph.node)
    keys = ["Conv", "FusedConv", "QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool", "QGemm",
            "QLinearMatMul", "MatMulInteger", "Gemm", "FusedGemm", "MatMul", "QuantizeLinear",
            "DequantizeLinear"]
    print(os.path.basename(model) + ": " + ", ".join(f"{k} {ops[k]}" for k in keys if ops[k]))
