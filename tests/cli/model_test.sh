#!/usr/bin/env bash
# `lowbit eval`, `run` and `bench` end to end on the shipped models, and bad
# input: one clear error line, a non-zero exit, no crash, nothing half-written.
set -u
lowbit=$1
models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

cnn=$models/fmnist_cnn.onnx
# Real runs.
if "$lowbit" eval "$cnn" --data 'fashion-mnist:test[:500]' --batch 64 --json --quiet >"$tmp/eval" 2>"$tmp/err" &&
   grep -q '"samples": 500' "$tmp/eval" && grep -q '"top1"' "$tmp/eval"; then
  ok "eval --json on a slice with a short last batch"
else
  bad "eval: $(cat "$tmp/eval" "$tmp/err")"
fi
if "$lowbit" run "$cnn" --input "$models/ref/fmnist_cnn_input.npy" --output "$tmp/y.npy" >"$tmp/out" 2>"$tmp/err" &&
   grep -q "output 'logits': float32 \[8, 10\]" "$tmp/out" && [[ -s $tmp/y.npy ]]; then
  ok "run writes the output"
else
  bad "run: $(cat "$tmp/out" "$tmp/err")"
fi
if "$lowbit" bench "$cnn" --batch 4 --runs 3 --warmup 1 --json >"$tmp/bench" 2>"$tmp/err" &&
   grep -q '"median_ms"' "$tmp/bench"; then
  ok "bench --json"
else
  bad "bench: $(cat "$tmp/bench" "$tmp/err")"
fi
# --profile: every node timed; the CNN's convolutions are listed by name.
if "$lowbit" bench "$cnn" --runs 3 --warmup 1 --profile >"$tmp/profile" 2>"$tmp/err" &&
   grep -q '^per node' "$tmp/profile" && grep -Eq ' Conv +/features/features.0/Conv' "$tmp/profile" &&
   "$lowbit" bench "$cnn" --runs 3 --warmup 1 --profile --json >"$tmp/profile.json" 2>>"$tmp/err" &&
   grep -q '"ops_ms"' "$tmp/profile.json"; then
  ok "bench --profile"
else
  bad "bench --profile: $(cat "$tmp/profile" "$tmp/err")"
fi

# Bad models.
head -c 2000 "$cnn" >"$tmp/truncated.onnx"
expect_error "truncated model" 'truncated.onnx: not a valid ONNX model' eval "$tmp/truncated.onnx" --data digits
expect_error "missing model" 'missing.onnx: cannot open' run "$tmp/missing.onnx" --input "$models/ref/fmnist_cnn_input.npy"
unsupported=/usr/share/libonnx-testdata/data/node/test_acos/model.onnx
if [[ -f $unsupported ]]; then
  expect_error "unsupported operator" "1 unsupported operator: Acos '[^']*' \(opset [0-9]+\)" run "$unsupported" --input "$models/ref/fmnist_cnn_input.npy"
fi

# Bad inputs and data.
printf 'not numpy' >"$tmp/x.npy"
expect_error "malformed input npy" 'x.npy: not a .npy file' run "$cnn" --input "$tmp/x.npy"
expect_error "wrong input shape" "digits_mlp_input.npy: .*input 'input' is \[-1, 1, 28, 28\], got shape \[8, 64\]|does not match" run "$cnn" --input "$models/ref/digits_mlp_input.npy"
expect_error "dataset does not fit the model" "dataset 'digits' has samples of 64 values \[8, 8\], but model input 'input' is \[32, 1, 28, 28\]" eval "$cnn" --data digits --quiet
expect_error "unknown dataset" "unknown dataset 'mnist'" eval "$cnn" --data mnist
expect_error "bad slice" "slice \[0:99999\] is outside 0..10000" eval "$cnn" --data 'fashion-mnist:test[:99999]'
expect_error "bad batch" '--batch must be >= 1, got 0' eval "$cnn" --data digits --batch 0
expect_error "bad threads" '--threads must be >= 1, got 0' bench "$cnn" --threads 0
# --output is written atomically: a failing run leaves no file behind.
"$lowbit" run "$cnn" --input "$tmp/x.npy" --output "$tmp/never.npy" 2>/dev/null
if [[ ! -e $tmp/never.npy ]] && ! ls "$tmp"/never.npy.tmp* >/dev/null 2>&1; then
  ok "no output file after a failed run"
else
  bad "a failed run left an output file"
fi

echo "cli.models: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
