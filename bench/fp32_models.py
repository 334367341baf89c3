#!/usr/bin/python3
"""fp32 latency of ResNet-18 and MobileNet-v2: lowbit next to ONNX Runtime (CPU),
same machine, same run, interleaved rounds, medians.

usage: bench/fp32_models.py [--rounds 3] [--seconds 2] [--update BENCHMARKS.md]

Needs: a built lowbit (scripts/build), Debian's python3-torch/torchvision (to
export the models), node + bench/ort (npm install onnxruntime-node; this script
runs it with ONNXRUNTIME_NODE_INSTALL=skip when node_modules is missing).
OPENBLAS_CORETYPE=SkylakeX is set: Debian's OpenBLAS 0.3.21 does not know Zen 5
and would otherwise run its AVX2 kernels at half speed, flattering nobody.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOWBIT = os.path.join(ROOT, "build", "tools", "lowbit", "lowbit")
ORT_DIR = os.path.join(ROOT, "bench", "ort")


def lowbit_bench(model, batch, threads, seconds):
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX")
    r = subprocess.run([LOWBIT, "bench", model, "--batch", str(batch), "--threads", str(threads),
                        "--seconds", str(seconds), "--json"], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"lowbit bench failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def ort_bench(model, batch, threads, seconds):
    r = subprocess.run(["node", os.path.join(ORT_DIR, "ort_bench.js"), model, str(batch),
                        str(threads), str(seconds)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"onnxruntime bench failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--update", help="replace the fp32-models section of this markdown file")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=ORT_DIR, check=True,
                       env=dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip"))
    sys.path.insert(0, os.path.join(ROOT, "models"))
    import zoo
    models = zoo.export(os.path.join(ROOT, "build", "bench-models"))
    configs = [(name, path, b, t) for name, path, _, _ in models for b in (1, 32) for t in (1, 2)]
    results = {}
    for rnd in range(args.rounds):
        for name, path, b, t in configs:
            for engine, fn in (("lowbit", lowbit_bench), ("ort", ort_bench)):
                r = fn(path, b, t, args.seconds)
                results.setdefault((name, b, t, engine), []).append(r)
                print(f"round {rnd + 1}: {engine:6s} {name} batch {b} threads {t}: "
                      f"{r['median_ms']:.2f} ms", flush=True)
    lines = [
        f"Command: `bench/fp32_models.py --rounds {args.rounds} --seconds {args.seconds:g}` "
        f"({datetime.date.today()}; {os.cpu_count()} cores, {cpu_name()}; onnxruntime-node "
        f"{json.load(open(os.path.join(ORT_DIR, 'node_modules', 'onnxruntime-node', 'package.json')))['version']}"
        f", OpenBLAS with OPENBLAS_CORETYPE=SkylakeX). Median over rounds of each run's median latency.",
        "",
        "| model | batch | threads | lowbit fp32 ms | ONNX Runtime fp32 ms | lowbit / ORT time | lowbit peak RSS MiB | ORT peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, _, b, t in configs:
        lb = statistics.median(r["median_ms"] for r in results[(name, b, t, "lowbit")])
        ort = statistics.median(r["median_ms"] for r in results[(name, b, t, "ort")])
        lrss = max(r["peak_rss_mib"] for r in results[(name, b, t, "lowbit")])
        orss = max(r["peak_rss_mib"] for r in results[(name, b, t, "ort")])
        lines.append(f"| {name} | {b} | {t} | {lb:.2f} | {ort:.2f} | {lb / ort:.2f}x | {lrss:.0f} | {orss:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.update:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from markdown import update_section
        update_section(args.update, "fp32-models", "fp32 models: lowbit vs ONNX Runtime", table)


if __name__ == "__main__":
    main()
