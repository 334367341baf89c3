#!/usr/bin/python3
"""lowbit W4A8 against ONNX Runtime int8, batch 1, interleaved rounds: the
quick check of the speed issue's ratios (bench/quant_models.py gives the full
table). Reads the files bench/quant_models.py writes to build/bench-models
(W4A8 packed models, W8A8 QDQ exports that ORT fuses to QLinearConv) and
prints each round's times and the median ORT / lowbit ratio.

usage: bench/ort_int8_ratio.py [--rounds 5] [--seconds 1.5] [--models mobilenet_v2,resnet18]
                               [--threads 1,2]
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fp32_models import ROOT, lowbit_bench, ort_bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--models", default="mobilenet_v2,resnet18")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    models = os.path.join(ROOT, "build", "bench-models")
    res = {}
    for r in range(args.rounds):
        for m in args.models.split(","):
            for t in (int(x) for x in args.threads.split(",")):
                packed = os.path.join(models, m + "_W4A8.onnx")
                qdq = os.path.join(models, m + "_W8A8_qdq.onnx")
                for f in (packed, qdq):
                    if not os.path.exists(f):
                        sys.exit(f"{f} is missing: run bench/quant_models.py first")
                lb = lowbit_bench(packed, 1, t, args.seconds)["median_ms"]
                ob = ort_bench(qdq, 1, t, args.seconds)["median_ms"]
                res.setdefault((m, t), []).append((lb, ob))
                print(f"round {r + 1}: {m} {t} thread(s): lowbit {lb:.3f} ms, ORT int8 {ob:.3f} ms, {ob / lb:.2f}x",
                      flush=True)
    for (m, t), v in res.items():
        ratios = [o / lo for lo, o in v]
        print(f"{m}, {t} thread(s): lowbit {statistics.median(lo for lo, _ in v):.3f} ms, ORT int8 "
              f"{statistics.median(o for _, o in v):.3f} ms, ORT / lowbit {statistics.median(ratios):.2f}x "
              f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
