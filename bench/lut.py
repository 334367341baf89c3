#!/usr/bin/python3
"""The bit-serial table kernel (kernels/lut.h) against the product kernels on the
same shapes: one run of bench/lut_bench (Google Benchmark, medians of
repetitions, one thread, dot products only), as a markdown table per dispatch
path, with the choice LutMaxRows makes for each shape.

usage: bench/lut.py [--repetitions 3] [--update BENCHMARKS.md]
"""
import argparse
import datetime
import os
import subprocess
import sys

from gbench import medians

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bench", "lut_bench")

# Mirrors LutMaxRows's rule (src/kernels/lut.h, lut.cc) for the table's last column.
def rule(path, rows, n):
    min_n = 256 if path == "avx512vnni" else 1024
    return n >= min_n and rows <= (2 if path == "avxvnni" else 8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--update")
    args = ap.parse_args()
    subprocess.run([os.path.join(ROOT, "scripts", "build"), "--target", "lut_bench"], check=True,
                   stdout=subprocess.DEVNULL)
    rows = medians(BIN, args.repetitions, 0.2)
    paths, shapes = [], []
    for name in rows:
        _, path, _, r, n, k = name.split("/")
        if path not in paths:
            paths.append(path)
        if (r, n, k) not in shapes:
            shapes.append((r, n, k))
    lines = [f"Command: `bench/lut.py --repetitions {args.repetitions}` ({datetime.date.today()}; Google Benchmark "
             "`build/bench/lut_bench`, medians, one thread). Time of the int32 dot products of `rows` quantized "
             "activation rows with an n x k weight (activation quantization and epilogue excluded); ResNet-18's "
             "3x3 convolutions as the GEMM their implicit form runs (pixels x channels x 9 * channels). "
             "int1 is +-1 (table layout), int2 the plane layout. *LUT* = the bit-serial table kernel; "
             "the speed-ups are its time against the product kernel of the same format and against int8; "
             "*rule* = what `LutMaxRows` picks (LOWBIT_LUT unset).", ""]
    for path in paths:
        lines += [f"**{path}**", "",
                  "| rows x n x k | int8 us | int2 us | int2 LUT us | int1 us | int1 LUT us | "
                  "int1 LUT vs int1 | int1 LUT vs int8 | int2 LUT vs int2 | rule |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r, n, k in shapes:
            t = lambda f: rows[f"BM_Dots/{path}/{f}/{r}/{n}/{k}"]["real_time"]
            i8, i2, i2l, i1, i1l = t("int8"), t("int2"), t("int2_lut"), t("int1"), t("int1_lut")
            pick = "int1 LUT" if rule(path, int(r), int(n)) else "product"
            lines.append(f"| {r} x {n} x {k} | {i8:.1f} | {i2:.1f} | {i2l:.1f} | {i1:.1f} | {i1l:.1f} | "
                         f"{i1 / i1l:.2f}x | {i8 / i1l:.2f}x | {i2 / i2l:.2f}x | {pick} |")
        lines.append("")
    table = "\n".join(lines).rstrip()
    print(table)
    if args.update:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from markdown import update_section
        update_section(args.update, "lut", "Bit-serial table kernel", table)


if __name__ == "__main__":
    main()
