"""Runs a Google Benchmark binary and returns its median aggregates."""
import json
import subprocess


def medians(binary, repetitions, min_time, env=None, benchmark_filter=None):
    """{run_name: median aggregate row} of `binary` run with `repetitions`
    repetitions of at least `min_time` seconds each (only the benchmarks
    matching `benchmark_filter`, when given)."""
    cmd = [binary, "--benchmark_format=json", f"--benchmark_repetitions={repetitions}",
           "--benchmark_report_aggregates_only=true", f"--benchmark_min_time={min_time}"]
    if benchmark_filter:
        cmd.append(f"--benchmark_filter={benchmark_filter}")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return {b["run_name"]: b for b in json.loads(out)["benchmarks"] if b.get("aggregate_name") == "median"}
