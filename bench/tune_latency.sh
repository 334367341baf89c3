#!/usr/bin/env bash
# The tuner's latency target (issue: `lowbit tune`): on ResNet-18 (the zoo's
# random-weight export, build/bench-models) with random images, does
# `--objective latency` find a point faster end to end than uniform W4A8 at
# equal or better output SQNR? Uniform W4A8's SQNR is measured first (the
# same calibration, rounding and validation images) and becomes the bound.
# Results (JSON, front, report) under build/tune_latency/.
#   bench/tune_latency.sh [THREADS] [BITS]
set -euo pipefail
cd "$(dirname "$0")/.."
lowbit=build/tools/lowbit/lowbit
out=build/tune_latency
threads=${1:-2}
bits=${2:-3,4,8}
model=build/bench-models/resnet18.onnx
mkdir -p "$out"
rm -f "$out/latency.jsonl" "$out/latency.jsonl.calib.json"
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_WAIT_POLICY=PASSIVE
py=/usr/bin/python3
[[ -f $model ]] || { echo "no $model: build the bench models first (bench/quant_models.py)" >&2; exit 1; }
$py - "$out" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(7)
for name, n in (("calib", 16), ("val", 8)):
    np.save(f"{sys.argv[1]}/{name}.npy", rng.standard_normal((n, 3, 224, 224), dtype=np.float32))
PY
common=(--calib "npy:$out/calib.npy" --val "npy:$out/val.npy" --metric sqnr --confidence 0.5
        --threads "$threads" --json --quiet)
t0=$SECONDS
"$lowbit" tune "$model" -o "$out/w4.onnx" "${common[@]}" --min-sqnr 0 --formats int --bits 4 \
  --no-filter-wise --no-fp32 --max-evals 1 >"$out/w4.json"
w4=$($py -c "import json; print(json.load(open('$out/w4.json'))['chosen']['metric'])")
echo "uniform W4A8: output SQNR $w4 dB ($((SECONDS - t0)) s)" >&2
t0=$SECONDS
"$lowbit" tune "$model" -o "$out/latency.onnx" "${common[@]}" --objective latency --min-sqnr "$w4" \
  --formats int --bits "$bits" --budget 15m --journal "$out/latency.jsonl" --pareto "$out/front.json" --report "$out/report.html" \
  >"$out/latency.json" || [[ $? -eq 3 ]]
echo "latency objective: $((SECONDS - t0)) s" >&2
$py - "$out" <<'PY'
import json, sys
out = sys.argv[1]
j = json.load(open(f"{out}/latency.json")); f = json.load(open(f"{out}/front.json"))
c = j["chosen"]
print(f"chosen ({c['phase']}): SQNR {c['metric']:.2f} dB, table {c['latency_ms']:.2f} ms, "
      f"end to end {j.get('end_to_end_ms', {}).get('chosen', float('nan')):.2f} ms "
      f"(fp32 {j.get('end_to_end_ms', {}).get('fp32', float('nan')):.2f}); {j['evaluations']} evaluations, "
      f"{j['seconds']:.0f} s; plan {sorted(set(c['plan'].values()))}")
for p in f["points"]:
    if "end_to_end_ms" in p:
        e = p["end_to_end_ms"]
        sqnr = "inf" if p["metric"] is None else f"{p['metric']:.2f}"
        print(f"  confirmed {p['phase']:8s} SQNR {sqnr} dB, table {p['latency_ms']:.2f} ms, "
              f"end to end {e['plan']:.2f} ms (fp32 {e['fp32']:.2f}) {sorted(set(p['plan'].values()))}")
PY
