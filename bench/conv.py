#!/usr/bin/python3
"""ResNet-18's 3x3 convolutions at batch 1: lowbit fp32 and packed W8A8/W4A8/W2A8
(whole operator: activation quantization, implicit GEMM, epilogue) against the
register-only vpdpbusd ceiling measured in the same run.

usage: bench/conv.py [--repetitions 3] [--update BENCHMARKS.md]
"""
import argparse
import datetime
import os
import sys

from gbench import medians

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "build", "bench")


def run(binary, reps):
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX")
    return medians(os.path.join(BENCH, binary), reps, 0.3, env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--update")
    args = ap.parse_args()
    ceiling = list(run("vnni_ceiling", args.repetitions).values())[0]["GMAC/s"]
    conv = run("conv_bench", args.repetitions)
    shapes = [(64, 56), (128, 28), (256, 14), (512, 7)]
    lines = [f"Command: `bench/conv.py --repetitions {args.repetitions}` ({datetime.date.today()}; medians). "
             f"Ceiling (`vnni_ceiling`, 16 independent zmm vpdpbusd, no memory): **{ceiling:.0f} GMAC/s** per core. "
             "GMAC/s of the whole operator at batch 1; % of the 1-thread ceiling; 2T/1T = two-thread speedup.", "",
             "W2/4A8: filter-wise formats, a quarter of the filters at int4 (those int2 fits worst), the rest at int2.", "",
             "W2A8 direct: the same without Winograd F(4x4, 3x3), which the 56x56 and 28x28 layers take "
             "(`src/kernels/winograd.h`): there GMAC/s count the direct convolution's MACs, so the rate can pass "
             "the ceiling.", "",
             "| layer | fp32 GMAC/s | W8A8 | W4A8 | W2A8 | W2A8 direct | W2/4A8 | W8A8 % ceiling | W4A8 % ceiling | W2A8 % ceiling | W4A8 2T/1T |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c, hw in shapes:
        rate = {}
        for f in ["fp32", "int8", "int4", "int2", "int2_direct", "int2_int4"]:
            for t in (1, 2):
                rate[(f, t)] = conv[f"BM_Conv/{f}/{c}/{hw}/1/{t}/real_time"]["GMAC/s"]
        lines.append(f"| {c}->{c} @ {hw}x{hw}, 3x3 | {rate[('fp32', 1)]:.0f} | {rate[('int8', 1)]:.0f} | "
                     f"{rate[('int4', 1)]:.0f} | {rate[('int2', 1)]:.0f} | {rate[('int2_direct', 1)]:.0f} | "
                     f"{rate[('int2_int4', 1)]:.0f} | "
                     f"{100 * rate[('int8', 1)] / ceiling:.0f}% | {100 * rate[('int4', 1)] / ceiling:.0f}% | "
                     f"{100 * rate[('int2', 1)] / ceiling:.0f}% | {rate[('int4', 2)] / rate[('int4', 1)]:.2f}x |")
    gemv = {f: {t: conv[f"BM_Gemv/{f}/{t}/real_time"]["real_time"] for t in (1, 2)}
            for f in ("int2", "int4", "int2_int4")}
    lines += ["", "4096x4096 Gemm at batch 1 through a plan (dynamic activations), us, 1 / 2 threads: " +
              "; ".join(f"{f.replace('_', '/')} {gemv[f][1]:.0f} / {gemv[f][2]:.0f}" for f in gemv) +
              " (int2/int4: a quarter of the rows at int4)."]
    lines += ["", "The same layers inside a network: a chain of eight (Conv + Relu) whose values between layers "
              "travel as 8-bit NHWC pixels (byte edges), so quantizing the fp32 input and the transposed "
              "fp32 epilogue happen once per chain, not per layer. GMAC/s over the chain; % of the 1-thread ceiling.", "",
              "| layer | W8A8 chain | W4A8 chain | W8A8 % ceiling | W4A8 % ceiling | W4A8 2T/1T |",
              "|---|---|---|---|---|---|"]
    for c, hw in shapes:
        ch = {(f, t): conv[f"BM_ConvChain/{f}/{c}/{hw}/{t}/real_time"]["GMAC/s"] for f in ("int8", "int4") for t in (1, 2)}
        lines.append(f"| {c}->{c} @ {hw}x{hw}, 3x3 | {ch[('int8', 1)]:.0f} | {ch[('int4', 1)]:.0f} | "
                     f"{100 * ch[('int8', 1)] / ceiling:.0f}% | {100 * ch[('int4', 1)] / ceiling:.0f}% | "
                     f"{ch[('int4', 2)] / ch[('int4', 1)]:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if args.update:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from markdown import update_section
        update_section(args.update, "conv", "Packed convolutions vs the VNNI ceiling", table)


if __name__ == "__main__":
    main()
