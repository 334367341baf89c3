#!/usr/bin/env bash
# The tuner's targets on the bundled models (issue: `lowbit tune`), with the
# test splits held out: validation and test are disjoint halves of data the
# models never trained on. Prints one line per target and writes the JSON
# results under build/tune_targets/.
#   bench/tune_targets.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
lowbit=build/tools/lowbit/lowbit
out=build/tune_targets
threads=${1:-2}
mkdir -p "$out"
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_WAIT_POLICY=PASSIVE
py=/usr/bin/python3

fm_calib='fashion-mnist:train[0:1000]'
fm_val='fashion-mnist:test[0:5000]'
fm_test='fashion-mnist:test[5000:]'

run() {  # NAME ARGS... : tune, keep the JSON
  local name=$1
  shift
  local t0=$SECONDS
  "$lowbit" tune "$@" --threads "$threads" --json --quiet >"$out/$name.json" || [[ $? -eq 3 ]]
  echo "$name: $((SECONDS - t0)) s" >&2
}

run cnn_size models/fmnist_cnn.onnx -o "$out/cnn_size.onnx" --calib "$fm_calib" --val "$fm_val" \
  --test "$fm_test" --objective size --max-loss 1.0 --budget 5m --report "$out/cnn_size.html" \
  --pareto "$out/cnn_size_front.json"
evals=$($py -c "import json; print(json.load(open('$out/cnn_size.json'))['evaluations'])")
run cnn_random models/fmnist_cnn.onnx -o "$out/cnn_random.onnx" --calib "$fm_calib" --val "$fm_val" \
  --objective size --max-loss 1.0 --search random --max-evals "$evals" --pareto "$out/cnn_random_front.json"
run cnn_bitops models/fmnist_cnn.onnx -o "$out/cnn_bitops.onnx" --calib "$fm_calib" --val "$fm_val" \
  --test "$fm_test" --objective bitops --max-loss 1.0 --budget 5m --pareto "$out/cnn_bitops_front.json"
run mlp_size models/fmnist_mlp.onnx -o "$out/mlp_size.onnx" --calib "$fm_calib" --val "$fm_val" \
  --test "$fm_test" --objective size --max-loss 1.0 --budget 5m
run digits_size models/digits_mlp.onnx -o "$out/digits_size.onnx" --calib 'digits[0:1000]' \
  --val 'digits[1400:1600]' --test 'digits[1600:]' --objective size --max-loss 1.0 --budget 5m

# Uniform W4A8 for the bit-ops comparison, from the front's uniform points.
$py - "$out" models <<'PY'
import json, os, sys
out, models = sys.argv[1], sys.argv[2]
def load(n): return json.load(open(os.path.join(out, n)))
def uniform(front_file, weights):
    for p in load(front_file)["points"]:
        if p["phase"] == "uniform" and set(p["plan"].values()) == {weights}:
            return p
for name, model in [("cnn_size", "fmnist_cnn"), ("mlp_size", "fmnist_mlp"), ("digits_size", "digits_mlp")]:
    j = load(name + ".json")
    fp32 = os.path.getsize(os.path.join(models, model + ".onnx"))
    test = j.get("test", {})
    print(f"{name}: feasible {j['feasible']}, val {j['chosen']['metric']:.2f} (fp32 {j['fp32_metric']:.2f}), "
          f"test {test.get('top1', float('nan')):.2f} (fp32 {test.get('fp32_top1', float('nan')):.2f}), "
          f"file {j['output_bytes']} B = {fp32 / j['output_bytes']:.2f}x smaller than fp32 "
          f"({fp32} B), layers {j['compression']:.2f}x; {j['evaluations']} evaluations, {j['seconds']:.0f} s")
b = load("cnn_bitops.json")
u4 = uniform("cnn_bitops_front.json", "int4")
print(f"cnn_bitops: {b['chosen']['bit_ops']:.4g} bit-ops (val {b['chosen']['metric']:.2f}, test "
      f"{b['test']['top1']:.2f}); uniform W4A8 {u4['bit_ops']:.4g} (val {u4['metric']:.2f}): "
      f"{100 * (1 - b['chosen']['bit_ops'] / u4['bit_ops']):.1f}% fewer")
t, r = load("cnn_size_front.json"), load("cnn_random_front.json")
dominated = sum(any(q["objective"] <= p["objective"] and q["metric"] >= p["metric"] and
                    (q["objective"] < p["objective"] or q["metric"] > p["metric"]) for q in t["front"])
                for p in r["front"])
best_r = min((p["objective"] for p in r["points"] if p["feasible"]), default=float("nan"))
print(f"random search, same {len(r['points'])} evaluations: {dominated} of its {len(r['front'])} front points "
      f"dominated by the tuner's front; best feasible objective {best_r:.4f} vs the tuner's "
      f"{load('cnn_size.json')['chosen']['objective']:.4f}")
PY
