#!/usr/bin/python3
"""Post-training quantization accuracy of the bundled Fashion-MNIST CNN and MLP:
weight formats x bits x granularity, 8-bit static activations calibrated on
1000 training images, scored on the 10,000 test images. Also the recipes the
accuracy test uses (weight clipping by min/max; first and last layer int8).

usage: bench/ptq_accuracy.py [--update BENCHMARKS.md]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOWBIT = os.path.join(ROOT, "build", "tools", "lowbit", "lowbit")
CALIB = "fashion-mnist:train[0:1000]"
FORMATS = ["int8", "int4", "int4-asym", "pow2-4", "nhot2-4", "codebook-4", "int3", "codebook-3",
           "int2", "int2-asym", "nhot2-2", "codebook-2"]
FIRST_LAST = {"fmnist_cnn": ["/features/features.0/Conv", "/classifier/classifier.4/Gemm"],
              "fmnist_mlp": ["/1/Gemm", "/6/Gemm"]}


def top1(model, opts, work):
    out = os.path.join(work, "q.onnx")
    r = subprocess.run([LOWBIT, "quantize", model, "-o", out, "--calib", CALIB, "--quiet",
                        "--threads", "2"] + opts, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    r = subprocess.run([LOWBIT, "eval", out, "--data", "fashion-mnist:test", "--batch", "100",
                        "--threads", "2", "--json", "--quiet"], capture_output=True, text=True)
    return json.loads(r.stdout)["top1"], os.path.getsize(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--update")
    args = ap.parse_args()
    work = os.path.join(ROOT, "build", "ptq-accuracy")
    os.makedirs(work, exist_ok=True)
    record = json.load(open(os.path.join(ROOT, "models", "models.json")))
    names = ["fmnist_cnn", "fmnist_mlp"]
    rows = []
    for fmt in FORMATS:
        for gran in ["channel", "tensor"]:
            row = [fmt, gran]
            for name in names:
                acc, _ = top1(os.path.join(ROOT, "models", name + ".onnx"),
                              ["--weights", fmt, "--granularity", gran, "--weight-clip", "mse"], work)
                row.append(f"{acc:.2f}" if acc is not None else "n/a")
            rows.append(row)
            print(" ".join(row), flush=True)
    recipes = [("int4, channel, --weight-clip auto (minmax at 4 bits)", ["--weights", "int4"], False),
               ("int2, channel, first/last int8", ["--weights", "int2"], True),
               ("int2-asym, channel, first/last int8", ["--weights", "int2-asym"], True),
               ("nhot2-2, channel, first/last int8", ["--weights", "nhot2-2"], True)]
    for label, opts, fl in recipes:
        row = [label, ""]
        for name in names:
            extra = [a for layer in FIRST_LAST[name] for a in ("--layer", f"{layer}=int8")] if fl else []
            acc, _ = top1(os.path.join(ROOT, "models", name + ".onnx"), opts + extra, work)
            row.append(f"{acc:.2f}")
        rows.append(row)
        print(" ".join(row), flush=True)
    lines = [f"Command: `bench/ptq_accuracy.py` ({datetime.date.today()}). Top-1 % on the Fashion-MNIST "
             f"test split; fp32: CNN {record['fmnist_cnn']['top1']:.2f}, MLP {record['fmnist_mlp']['top1']:.2f}. "
             "Static 8-bit activations (uint8, `--act-calib mse`) calibrated on `fashion-mnist:train[0:1000]`, "
             "weight ranges by `--weight-clip mse` unless stated, bias correction on.", "",
             "| weights | granularity | CNN top-1 | MLP top-1 |", "|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.update:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from markdown import update_section
        update_section(args.update, "ptq-accuracy", "Post-training quantization accuracy", table)


if __name__ == "__main__":
    main()
