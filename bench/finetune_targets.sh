#!/usr/bin/env bash
# Quantization-aware training's targets on the bundled models (issue:
# `lowbit finetune`). The fine-tunes train on the whole training split and
# are scored on the whole held-out test split (Fashion-MNIST test, 10,000;
# digits[1400:], the 397 samples the digits MLP never trained on); --val is
# only reported per epoch, never selected on (the last epoch is the result).
# Beside each: the same plan by post-training quantization. One line per
# target; the JSON under build/finetune_targets/.
#   bench/finetune_targets.sh [THREADS] [EPOCHS] [TARGET...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
lowbit=build/tools/lowbit/lowbit
out=build/finetune_targets
threads=${1:-2}
epochs=${2:-3}
shift $(($# < 2 ? $# : 2))
only=" $* "
mkdir -p "$out"
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_WAIT_POLICY=PASSIVE
py=/usr/bin/python3

top1() {  # MODEL DATA -> top-1 percent on lowbit's kernels
  "$lowbit" eval "$1" --data "$2" --json --quiet | $py -c "import json,sys; print(json.load(sys.stdin)['top1'])"
}

# NAME MODEL TRAIN VAL TEST PLAN-ARGS...: PTQ and QAT of one plan, a line of results.
target() {
  local name=$1 model=$2 train=$3 val=$4 test=$5
  shift 5
  [[ $only == "  " || $only == *" $name "* ]] || return 0
  local ptq_args=()
  for a in "$@"; do [[ $a == --two-stage || $a == --learn-bits ]] || ptq_args+=("$a"); done
  "$lowbit" finetune "$model" -o "$out/$name.onnx" --train "$train" --val "$val" --epochs "$epochs" \
    --threads "$threads" --json --quiet "$@" >"$out/$name.json"
  local fp32 qat ptq=-
  fp32=$(top1 "$model" "$test")
  qat=$(top1 "$out/$name.onnx" "$test")
  if [[ " $* " != *" --learn-bits "* ]]; then
    local calib="${train%%\[*}[0:2048]"
    [[ $train == digits* ]] && calib=$train
    "$lowbit" quantize "$model" -o "$out/$name.ptq.onnx" --calib "$calib" --weight-clip auto \
      --quiet "${ptq_args[@]}" >/dev/null
    ptq=$(top1 "$out/$name.ptq.onnx" "$test")
  fi
  $py - "$out/$name.json" "$name" "$fp32" "$ptq" "$qat" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); name, fp32, ptq, qat = sys.argv[2], float(sys.argv[3]), sys.argv[4], float(sys.argv[5])
ptq_s = "-" if ptq == "-" else f"{float(ptq):.2f} ({float(ptq) - fp32:+.2f})"
epochs = [e for s in j["stages"] for e in s["epochs"]]
per_epoch = sum(e["seconds"] for e in epochs) / len(epochs)
print(f"{name:16s} fp32 {fp32:.2f}  PTQ {ptq_s:16s}  QAT {qat:.2f} ({qat - fp32:+.2f})  "
      f"{j['input_bytes'] / j['output_bytes']:.2f}x smaller  bit-ops {100 * j['bitops_vs_w4a8']:.1f}% of W4A8  "
      f"{per_epoch:.1f} s/epoch  peak {j['peak_rss_bytes'] / 2**20:.0f} MiB")
PY
}

fm_train='fashion-mnist:train'
fm_val='fashion-mnist:test[0:2000]'
fm_test='fashion-mnist:test'
cnn=models/fmnist_cnn.onnx
first=/features/features.0/Conv
last=/classifier/classifier.4/Gemm
printf '{"weights": "int1", "layers": {"%s": {"weights": "int8"}, "%s": {"weights": "int8"}}}\n' \
  "$first" "$last" >"$out/int1.plan"

target cnn_int2 "$cnn" "$fm_train" "$fm_val" "$fm_test" --weights int2
target cnn_pow2-3 "$cnn" "$fm_train" "$fm_val" "$fm_test" --weights pow2-3
target cnn_nhot2-3 "$cnn" "$fm_train" "$fm_val" "$fm_test" --weights nhot2-3 --two-stage
target cnn_int1 "$cnn" "$fm_train" "$fm_val" "$fm_test" --plan "$out/int1.plan"
target cnn_learn_bits "$cnn" "$fm_train" "$fm_val" "$fm_test" --learn-bits --bitops-weight 0.15 --bits 1..8
target mlp_int2 models/fmnist_mlp.onnx "$fm_train" "$fm_val" "$fm_test" --weights int2
target digits_int2 models/digits_mlp.onnx 'digits[0:1400]' 'digits[1400:]' 'digits[1400:]' --weights int2

# With the tuner: lowbit tune --finetune trains the front points it bisects
# (on the training split), chooses on test[0:5000] and is scored on the
# other half, test[5000:], which nothing selected on.
if [[ $only == "  " || $only == *" cnn_tuned "* ]]; then
  "$lowbit" tune "$cnn" -o "$out/cnn_tuned.onnx" --calib 'fashion-mnist:train[0:1000]' \
    --val 'fashion-mnist:test[0:5000]' --test 'fashion-mnist:test[5000:]' --objective size --max-loss 1.0 \
    --budget 3m --finetune "$epochs" --train "$fm_train" --threads "$threads" --quiet --json >"$out/cnn_tuned.json" ||
    [[ $? -eq 3 ]]
  $py - "$out/cnn_tuned.json" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1])); t = j["test"]; f = j["finetune"]
print(f"cnn_tuned        test[5000:] fp32 {t['fp32_top1']:.2f}  tuned+trained {t['top1']:.2f} ({t['top1'] - t['fp32_top1']:+.2f})  "
      f"{os.path.getsize(j['model']) / j['output_bytes']:.2f}x smaller (file)  {len(f['trained'])} points trained, chosen trained: {f['chosen_trained']}")
PY
fi
