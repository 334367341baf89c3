#!/usr/bin/python3
"""Packed-weight kernels against OpenBLAS, one run of bench/qlinear_bench
(Google Benchmark, medians of repetitions), as a markdown table.

usage: bench/kernels.py [--repetitions 5] [--update BENCHMARKS.md]
Sets OPENBLAS_CORETYPE=SkylakeX (Debian's OpenBLAS misdetects Zen 5).
"""
import argparse
import os
import subprocess
import sys

from gbench import medians

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bench", "qlinear_bench")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--update")
    args = ap.parse_args()
    subprocess.run([os.path.join(ROOT, "scripts", "build"), "--target", "qlinear_bench"], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX")
    rows = medians(BIN, args.repetitions, 0.3, env)
    t = lambda name: rows[name]["real_time"]  # microseconds
    bw = {int(n.split("/")[1]): rows[n]["GBs"] / 1e9 for n in rows if n.startswith("BM_ReadBandwidth")}

    def floor_us(nbytes):
        # Time to read nbytes once at the bandwidth measured for the nearest buffer size.
        size = min(bw, key=lambda s: abs(s - nbytes))
        return nbytes / (bw[size] * 1e9) * 1e6

    lines = ["Command: `bench/kernels.py` (Google Benchmark `build/bench/qlinear_bench`, medians of "
             f"{args.repetitions} repetitions, OPENBLAS_CORETYPE=SkylakeX). Weights Laplace-distributed, "
             "per-channel scales; activations quantized per row inside the timed call (weight-only rows: "
             "fp32 activations, codes looked up in registers).", "",
             "GEMV (batch 1):", "",
             "| shape | threads | fp32 sgemv us | format | packed us | speed-up | weight GB/s | read floor us | floor / time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in (4096, 16384):
        for th in (1, 2):
            base = t(f"BM_Sgemv/{n}/4096/{th}")
            for fmt, bits in (("int8", 8), ("int4", 4), ("nhot2_4", 4), ("int3", 3), ("int2", 2), ("int1", 1),
                              ("int4 weight-only", 4), ("int2 weight-only", 2)):
                bm = "BM_WeightOnlyGemv" if "weight-only" in fmt else "BM_PackedGemv"
                name = f"{bm}/{fmt.split()[0]}/{n}/4096/{th}"
                if name not in rows:
                    continue
                us = t(name)
                nbytes = n * 4096 * bits / 8
                fl = floor_us(nbytes)
                lines.append(f"| {n}x4096 | {th} | {base:.0f} | {fmt.replace('_', '-')} | {us:.0f} | "
                             f"{base / us:.1f}x | {nbytes / us / 1e3:.1f} | {fl:.0f} | {fl / us:.0%} |")
    lines += ["", "GEMM 4096x4096 (y = x W^T):", "",
              "| batch | threads | fp32 sgemm us | format | packed us | speed-up | GOP/s |",
              "|---|---|---|---|---|---|---|"]
    for m in (8, 64):
        for th in (1, 2):
            base = t(f"BM_Sgemm/{m}/{th}")
            for fmt in ("int8", "int4", "int2"):
                us = t(f"BM_PackedGemm/{fmt}/{m}/{th}")
                lines.append(f"| {m} | {th} | {base:.0f} | {fmt} | {us:.0f} | {base / us:.1f}x | "
                             f"{2 * m * 4096 * 4096 / us / 1e3:.0f} |")
    lines += ["", "Read bandwidth (STREAM-like sum, 1 thread): " +
              ", ".join(f"{s >> 20} MiB: {bw[s]:.0f} GB/s" for s in sorted(bw))]
    table = "\n".join(lines)
    print(table)
    if args.update:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from markdown import update_section
        update_section(args.update, "kernels", "Packed-weight kernels vs OpenBLAS", table)


if __name__ == "__main__":
    main()
