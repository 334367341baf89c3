#!/usr/bin/python3
"""Post-training quantization accuracy on the shipped Fashion-MNIST CNN and MLP
(issue 5's targets), calibrated on training images, scored on the whole test
split, against the fp32 accuracy recorded in models/models.json:
  W8A8: drop <= 0.2 points; W4A8 per channel: drop <= 0.5; W2A8: >= 87 %;
  and weight-only int4 in groups of 32 (fp32 activations): drop <= 0.5.

usage: check_ptq_accuracy.py LOWBIT MODELS_DIR WORK_DIR
"""
import json
import os
import re
import subprocess
import sys

CALIB = "fashion-mnist:train[0:1000]"
FIRST_LAST = {
    "fmnist_cnn": ["/features/features.0/Conv", "/classifier/classifier.4/Gemm"],
    "fmnist_mlp": ["/1/Gemm", "/6/Gemm"],
}
# name, quantize options, (max drop in points or None, min top-1 or None)
RECIPES = [
    ("W8A8", ["--weights", "int8"], 0.2, None),
    ("W4A8 per channel", ["--weights", "int4", "--granularity", "channel"], 0.5, None),
    ("W2A8 (int2-asym, first/last int8)", ["--weights", "int2-asym"], None, 87.0),
    ("W4 weight-only (acts float, group:32)",
     ["--weights", "int4", "--granularity", "group:32", "--acts", "float"], 0.5, None),
]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def main():
    lowbit, models, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    record = json.load(open(os.path.join(models, "models.json")))
    failed = 0
    for name in ["fmnist_cnn", "fmnist_mlp"]:
        rec = record[name]
        for label, opts, max_drop, min_top1 in RECIPES:
            out = os.path.join(work, name + "_" + re.sub(r"\W+", "_", label) + ".onnx")
            layer_opts = []
            if min_top1 is not None:
                for layer in FIRST_LAST[name]:
                    layer_opts += ["--layer", f"{layer}=int8"]
            try:
                run([lowbit, "quantize", os.path.join(models, name + ".onnx"), "-o", out, "--calib",
                     CALIB, "--quiet", "--threads", "2"] + opts + layer_opts)
                got = json.loads(run([lowbit, "eval", out, "--data", rec["data"], "--batch", "100",
                                      "--threads", "2", "--json", "--quiet"]))
            except RuntimeError as e:
                print(f"FAIL {name} {label}: {e}")
                failed += 1
                continue
            drop = rec["top1"] - got["top1"]
            ok = (max_drop is None or drop <= max_drop) and (min_top1 is None or got["top1"] >= min_top1)
            target = f"drop <= {max_drop}" if max_drop is not None else f">= {min_top1}%"
            print(f"{'ok' if ok else 'FAIL'} {name} {label}: {got['top1']:.2f}% "
                  f"(fp32 {rec['top1']:.2f}%, drop {drop:+.2f}; target {target}), "
                  f"{os.path.getsize(out)} bytes")
            failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
