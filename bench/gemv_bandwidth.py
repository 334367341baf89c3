#!/usr/bin/python3
"""Batch-1 GEMV 4096x4096 on packed weights, hot (weights in L3) and streamed
from DRAM (bench/qlinear_bench's BM_PackedGemvStreamed: 192 MiB of weight
copies, one per call), beside a STREAM-like read of 4 MiB (L3) and of 192 MiB
(DRAM) in the same round. Rounds are repeated and, with --compare, interleaved
with another build of qlinear_bench (e.g. the previous kernels), so the
machine's drift hits both alike. Prints medians and each round's figures.

usage: bench/gemv_bandwidth.py [--rounds 5] [--compare OTHER/qlinear_bench]
Sets OPENBLAS_CORETYPE=SkylakeX (Debian's OpenBLAS misdetects Zen 5).
"""
import argparse
import os
import statistics
import subprocess

from gbench import medians

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bench", "qlinear_bench")
FORMATS = ["int8", "int4", "int2", "int1"]
FILTER = ("BM_PackedGemv/(int8|int4|int2|int1)/4096/4096/1$|BM_PackedGemvStreamed/"
          "|BM_ReadBandwidth/(4194304|201326592)$")


def one_round(binary, env):
    """{name: (microseconds, GB/s or None)} for one run of `binary`."""
    rows = medians(binary, 3, 0.2, env, FILTER)
    out = {}
    for name, b in rows.items():
        gbs = b.get("weight_GBs", b.get("GBs"))
        out[name] = (b["real_time"], gbs / 1e9 if gbs else None)
    return out


def table(rounds, label):
    hot_read = [r["BM_ReadBandwidth/4194304"][1] for r in rounds]
    dram_read = [r["BM_ReadBandwidth/201326592"][1] for r in rounds]
    print(f"\n{label}: {len(rounds)} rounds. Read bandwidth, median: L3 (4 MiB) "
          f"{statistics.median(hot_read):.1f} GB/s, DRAM (192 MiB) {statistics.median(dram_read):.1f} GB/s")
    print("\n| format | hot us | hot GB/s | streamed us | streamed GB/s | streamed / DRAM read, per round |")
    print("|---|---|---|---|---|---|")
    for f in FORMATS:
        hot = [r[f"BM_PackedGemv/{f}/4096/4096/1"] for r in rounds]
        st = [r[f"BM_PackedGemvStreamed/{f}/4096/4096/1"] for r in rounds]
        frac = [s[1] / d for s, d in zip(st, dram_read)]
        print(f"| {f} | {statistics.median(h[0] for h in hot):.1f} | "
              f"{statistics.median(h[1] for h in hot):.1f} | {statistics.median(s[0] for s in st):.1f} | "
              f"{statistics.median(s[1] for s in st):.1f} | "
              f"{statistics.median(frac):.0%} ({', '.join(f'{x:.0%}' for x in frac)}) |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compare", help="another qlinear_bench, run interleaved with this build's")
    args = ap.parse_args()
    subprocess.run([os.path.join(ROOT, "scripts", "build"), "--target", "qlinear_bench"], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX")
    ours, theirs = [], []
    for i in range(args.rounds):
        ours.append(one_round(BIN, env))
        if args.compare:
            theirs.append(one_round(args.compare, env))
        print(f"round {i + 1}/{args.rounds} done", flush=True)
    table(ours, "this build")
    if args.compare:
        table(theirs, args.compare)
        print("\nhot time, compared / this build, per round:")
        for f in FORMATS:
            key = f"BM_PackedGemv/{f}/4096/4096/1"
            ratios = [t[key][0] / o[key][0] for o, t in zip(ours, theirs)]
            print(f"- {f}: median {statistics.median(ratios):.2f}x ({', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
