#!/usr/bin/env bash
# Runs the format-layer benchmarks (5 repetitions, medians) and prints the
# machine line and the median rows, as recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build --target format_bench >/dev/null
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
./build/bench/format_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_min_time=0.2 2>/dev/null | grep -E '_median'
