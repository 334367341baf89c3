#!/usr/bin/python3
"""Quantized-model latency, size and memory: lowbit fp32, W8A8, W4A8 and W2A8
next to ONNX Runtime fp32 and ONNX Runtime int8 (the W8A8 model exported by
`lowbit export --to onnx-qdq`: per-channel int8 weights, static uint8
activations), same machine, same run, interleaved rounds, medians.

Models: ResNet-18 and MobileNet-v2 (torchvision, random weights, calibrated on
64 random inputs) and the bundled Fashion-MNIST CNN and MLP (calibrated on 1000
training images). Activations are quantized statically.

usage: bench/quant_models.py [--rounds 3] [--seconds 2] [--models resnet18,...]
                             [--update BENCHMARKS.md]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fp32_models import LOWBIT, ORT_DIR, ROOT, cpu_name, lowbit_bench, ort_bench  # noqa: E402

RECIPES = {  # name -> quantize options
    "W8A8": ["--weights", "int8"],
    "W4A8": ["--weights", "int4"],
    "W2A8": ["--weights", "int2"],
    "W4 weight-only": ["--weights", "int4", "--acts", "float"],
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def ort_fusion(model):
    """The int8 operators of ONNX Runtime's optimized graph of `model`; exits
    if any convolution or matrix product stayed fp32 (no fair baseline)."""
    import collections
    import tempfile
    import onnx
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "opt.onnx")
        subprocess.run(["node", os.path.join(ORT_DIR, "ort_optimized.js"), model, out], check=True,
                       stderr=subprocess.DEVNULL, env=dict(os.environ, NODE_PATH=os.path.join(ORT_DIR, "node_modules")))
        ops = collections.Counter(n.op_type for n in onnx.load(out).graph.node)
    fp32 = {k: ops[k] for k in ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul") if ops[k]}
    if fp32:
        sys.exit(f"{model}: ONNX Runtime still runs fp32 {fp32}: not an int8 baseline")
    return ", ".join(f"{k} {ops[k]}" for k in ("QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool",
                                                "QGemm", "QLinearMatMul", "MatMulInteger") if ops[k]) + \
        ", no fp32 Conv/Gemm/MatMul"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--models", default="resnet18,mobilenet_v2,fmnist_cnn,fmnist_mlp")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--update", help="replace the quantized-models section of this markdown file")
    args = ap.parse_args()
    import numpy as np
    work = os.path.join(ROOT, "build", "bench-models")
    os.makedirs(work, exist_ok=True)
    sys.path.insert(0, os.path.join(ROOT, "models"))
    import zoo
    paths = {name: path for name, path, _, _ in zoo.export(work)}
    paths["fmnist_cnn"] = os.path.join(ROOT, "models", "fmnist_cnn.onnx")
    paths["fmnist_mlp"] = os.path.join(ROOT, "models", "fmnist_mlp.onnx")
    calib_npy = os.path.join(work, "calib_224.npy")
    if not os.path.exists(calib_npy):
        np.save(calib_npy, np.random.RandomState(0).randn(64, 3, 224, 224).astype(np.float32))
    models = args.models.split(",")
    variants = {}  # (model, variant) -> (path, engine)
    fused = {}  # model -> what ONNX Runtime's optimized graph of the int8 export runs
    for m in models:
        calib = ["--calib", "fashion-mnist:train[0:1000]"] if m.startswith("fmnist") else \
                ["--calib", "npy:" + calib_npy, "--calib-batch", "16"]
        variants[(m, "fp32")] = (paths[m], "lowbit")
        variants[(m, "ORT fp32")] = (paths[m], "ort")
        for v, opts in RECIPES.items():
            out = os.path.join(work, f"{m}_{v.replace(' ', '_')}.onnx")
            run([LOWBIT, "quantize", paths[m], "-o", out, "--quiet", "--threads", "2"] + calib + opts)
            variants[(m, v)] = (out, "lowbit")
        qdq = os.path.join(work, f"{m}_W8A8_qdq.onnx")
        run([LOWBIT, "export", variants[(m, "W8A8")][0], "--to", "onnx-qdq", "-o", qdq, "--quiet"])
        variants[(m, "ORT int8")] = (qdq, "ort")
        fused[m] = ort_fusion(qdq)
        print(f"prepared {m}: ONNX Runtime runs the int8 export as {fused[m]}", flush=True)
    order = ["fp32", "W8A8", "W4A8", "W2A8", "W4 weight-only", "ORT fp32", "ORT int8"]
    configs = [(m, int(b), int(t)) for m in models for b in args.batches.split(",")
               for t in args.threads.split(",")]
    results = {}
    for rnd in range(args.rounds):
        for m, b, t in configs:
            for v in order:
                path, engine = variants[(m, v)]
                r = (lowbit_bench if engine == "lowbit" else ort_bench)(path, b, t, args.seconds)
                results.setdefault((m, b, t, v), []).append(r)
                print(f"round {rnd + 1}: {m} b{b} t{t} {v}: {r['median_ms']:.3f} ms", flush=True)
    ort_version = json.load(open(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node",
                                              "package.json")))["version"]
    lines = [
        f"Command: `bench/quant_models.py --rounds {args.rounds} --seconds {args.seconds:g} "
        f"--models {args.models} --batches {args.batches} --threads {args.threads}` "
        f"({datetime.date.today()}; {os.cpu_count()} cores, {cpu_name()}; onnxruntime-node "
        f"{ort_version}; OPENBLAS_CORETYPE=SkylakeX). Latency: median over rounds of each run's "
        "median, ms. Speedup: ONNX Runtime fp32 time / this time; W4A8 vs ORT int8 also per round, "
        "in brackets (variants run interleaved within each round). Peak RSS in MiB.",
        "",
        "| model | batch | threads | " + " | ".join(f"{v} ms" for v in order) +
        " | W4A8 vs ORT fp32 | W2A8 vs ORT fp32 | W4A8 vs ORT int8 | W4A8 / ORT fp32 RSS |",
        "|---|---|---|" + "---|" * (len(order) + 4),
    ]
    for m, b, t in configs:
        med = {v: statistics.median(r["median_ms"] for r in results[(m, b, t, v)]) for v in order}
        rss = {v: max(r["peak_rss_mib"] for r in results[(m, b, t, v)]) for v in order}
        per_round = ", ".join(f"{i['median_ms'] / w['median_ms']:.2f}"
                              for i, w in zip(results[(m, b, t, "ORT int8")], results[(m, b, t, "W4A8")]))
        lines.append(f"| {m} | {b} | {t} | " + " | ".join(f"{med[v]:.3f}" for v in order) +
                     f" | {med['ORT fp32'] / med['W4A8']:.2f}x | {med['ORT fp32'] / med['W2A8']:.2f}x"
                     f" | {med['ORT int8'] / med['W4A8']:.2f}x ({per_round})"
                     f" | {rss['W4A8']:.0f} / {rss['ORT fp32']:.0f} |")
    lines += ["", "ONNX Runtime int8 baseline, evidence that it runs ORT's fast path (operators of ORT's "
              "optimized graph of the `lowbit export --to onnx-qdq` W8A8 file, `bench/ort_fusion.py`):", ""]
    lines += [f"- {m}: {fused[m]}" for m in models]
    lines += ["", "File sizes (bytes):", "",
              "| model | fp32 | W8A8 | W4A8 | W2A8 | ORT int8 (QDQ) | W2A8 vs fp32 bits/16 |", "|---|---|---|---|---|---|---|"]
    for m in models:
        s = {v: os.path.getsize(variants[(m, v)][0]) for v in ["fp32", "W8A8", "W4A8", "W2A8", "ORT int8"]}
        lines.append(f"| {m} | {s['fp32']} | {s['W8A8']} | {s['W4A8']} | {s['W2A8']} | {s['ORT int8']} | "
                     f"{s['W2A8'] / (s['fp32'] / 16):.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.update:
        from markdown import update_section
        update_section(args.update, "quant-models", "Quantized models: lowbit vs ONNX Runtime", table)


if __name__ == "__main__":
    main()
