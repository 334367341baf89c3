#!/usr/bin/env bash
# `lowbit quantize`, `inspect`, `export` and quantized inference end to end on
# the shipped models: real files, sizes, determinism, the QDQ export run by
# ONNX Runtime, and bad input (one clear line, non-zero exit, nothing written).
set -u
lowbit=$1
models=$2
ort_dir=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"
py=/usr/bin/python3

cnn=$models/fmnist_cnn.onnx
mlp=$models/fmnist_mlp.onnx
calib='fashion-mnist:train[0:256]'

# A quantized model, its plan, and determinism.
if "$lowbit" quantize "$cnn" -o "$tmp/w4.onnx" --weights int4 --calib "$calib" --quiet \
     --layer '/features/features.0/Conv=int8' --write-plan "$tmp/plan.json" >"$tmp/out" 2>"$tmp/err" &&
   [[ -s $tmp/w4.onnx ]] && grep -q '"int8"' "$tmp/plan.json"; then
  ok "quantize writes the model and the plan"
else
  bad "quantize: $(cat "$tmp/out" "$tmp/err")"
fi
"$lowbit" quantize "$cnn" -o "$tmp/w4b.onnx" --plan "$tmp/plan.json" --calib "$calib" --quiet >/dev/null 2>&1
if cmp -s "$tmp/w4.onnx" "$tmp/w4b.onnx"; then
  ok "the written plan reproduces the model byte for byte"
else
  bad "quantize --plan (from --write-plan) gives a different file"
fi

# GPTQ rounding: the plan records it, reproduces the file byte for byte, and
# the codes differ from nearest rounding's at the same size.
if "$lowbit" quantize "$cnn" -o "$tmp/g2.onnx" --weights int2 --calib "$calib" --rounding gptq --quiet \
     --write-plan "$tmp/g2.json" >/dev/null 2>"$tmp/err" &&
   grep -q '"rounding": "gptq"' "$tmp/g2.json" &&
   "$lowbit" quantize "$cnn" -o "$tmp/g2b.onnx" --plan "$tmp/g2.json" --calib "$calib" --quiet >/dev/null 2>&1 &&
   cmp -s "$tmp/g2.onnx" "$tmp/g2b.onnx" &&
   "$lowbit" quantize "$cnn" -o "$tmp/n2.onnx" --weights int2 --calib "$calib" --quiet >/dev/null 2>&1 &&
   ! cmp -s "$tmp/g2.onnx" "$tmp/n2.onnx" &&
   [[ $(stat -c %s "$tmp/g2.onnx") -eq $(stat -c %s "$tmp/n2.onnx") ]]; then
  ok "--rounding gptq: recorded in the plan, reproduced from it, other codes at the same size"
else
  bad "--rounding gptq: $(cat "$tmp/err" | head -c 500)"
fi

# inspect: formats, bit-ops, SQNR from calibration.
if "$lowbit" inspect "$tmp/w4.onnx" --json >"$tmp/inspect" 2>"$tmp/err" &&
   $py - "$tmp/inspect" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
layers = {l["name"]: l for l in j["layers"]}
assert layers["/features/features.0/Conv"]["format"] == "int8", layers
assert layers["/features/features.4/Conv"]["format"] == "int4"
assert all(l["sqnr_db"] is not None and l["sqnr_db"] > 5 for l in j["layers"]), j["layers"]
l = layers["/features/features.4/Conv"]
assert l["bit_ops"] == l["macs"] * 4 * 8 and l["macs"] > 0
assert j["total"]["compression"] > 5, j["total"]
EOF
then
  ok "inspect --json: formats, MACs, bit-ops, SQNR, compression"
else
  bad "inspect: $(cat "$tmp/inspect" "$tmp/err")"
fi

# Filter-wise formats: a quarter of each layer's filters at int4, the rest at
# int2; the plan records the assignment and reproduces the file; inspect
# shows the mean bits.
if "$lowbit" quantize "$cnn" -o "$tmp/mix.onnx" --weights 'int2/int4:0.25' --calib "$calib" --quiet \
     --write-plan "$tmp/mix.json" >/dev/null 2>"$tmp/err" &&
   "$lowbit" quantize "$cnn" -o "$tmp/mixb.onnx" --plan "$tmp/mix.json" --calib "$calib" --quiet >/dev/null 2>&1 &&
   cmp -s "$tmp/mix.onnx" "$tmp/mixb.onnx" &&
   "$lowbit" inspect "$tmp/mix.onnx" --json >"$tmp/mixinspect" 2>"$tmp/err" &&
   $py - "$tmp/mixinspect" "$tmp/mix.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
plan = json.load(open(sys.argv[2]))
l = {x["name"]: x for x in j["layers"]}["/features/features.4/Conv"]
assert l["format"] == "int2/int4", l
assert 2.4 < l["bits"] < 2.6 and abs(l["bit_ops"] - l["macs"] * l["bits"] * 8) < 1, l
f = plan["layers"]["/features/features.4/Conv"]["filters"]
assert len(f) == 32 and sum(f) == 8, f
EOF
then
  ok "filter-wise int2/int4: the plan with the assignment reproduces the file; inspect shows 2.5 bits"
else
  bad "filter-wise formats: $(cat "$tmp/err" "$tmp/mixinspect" 2>/dev/null | head -5)"
fi

# Sizes: an int2 MLP is about 1/16 of fp32 plus scales and fp32 biases.
"$lowbit" quantize "$mlp" -o "$tmp/mlp2.onnx" --weights int2 --quiet >/dev/null 2>&1
fp32=$(stat -c %s "$mlp")
q2=$(stat -c %s "$tmp/mlp2.onnx")
if ((q2 * 16 < fp32 * 11 / 10 + 16 * 8192)); then
  ok "int2 MLP file: $q2 bytes vs fp32 $fp32"
else
  bad "int2 MLP file is $q2 bytes, fp32 $fp32"
fi

# Quantized inference: run on the packed kernels, and the QDQ export in ONNX
# Runtime agrees with lowbit on the same QDQ file and with the packed model.
x=$models/ref/fmnist_cnn_input.npy
if "$lowbit" run "$tmp/w4.onnx" --input "$x" --output "$tmp/y_packed.npy" >/dev/null 2>"$tmp/err" &&
   "$lowbit" export "$tmp/w4.onnx" --to onnx-qdq -o "$tmp/qdq.onnx" >"$tmp/out" 2>>"$tmp/err" &&
   "$lowbit" run "$tmp/qdq.onnx" --input "$x" --output "$tmp/y_qdq.npy" >/dev/null 2>>"$tmp/err"; then
  ok "run and export --to onnx-qdq"
else
  bad "run/export: $(cat "$tmp/out" "$tmp/err")"
fi
if [[ ! -d $ort_dir/node_modules/onnxruntime-node ]]; then
  bad "ONNX Runtime is not installed in $ort_dir (scripts/setup installs it)"
elif NODE_PATH=$ort_dir/node_modules node "$ort_dir/ort_run.js" "$tmp/qdq.onnx" "$x" "$tmp/y_ort.npy" 2>"$tmp/err" &&
     NODE_PATH=$ort_dir/node_modules node "$ort_dir/ort_optimized.js" "$tmp/qdq.onnx" "$tmp/qdq_ort.onnx" 2>/dev/null &&
     $py - "$tmp/y_ort.npy" "$tmp/y_qdq.npy" "$tmp/y_packed.npy" "$tmp/qdq_ort.onnx" <<'EOF'
import collections
import sys
import numpy as np
import onnx
ort, qdq, packed = (np.load(p) for p in sys.argv[1:4])
# ONNX Runtime's optimized graph: every convolution and Gemm runs in int8.
ops = collections.Counter(n.op_type for n in onnx.load(sys.argv[4]).graph.node)
assert ops["QLinearConv"] == 2 and ops["QGemm"] == 3, ops
assert not any(ops[k] for k in ("Conv", "FusedConv", "Gemm", "MatMul", "FusedGemm")), ops
# ORT's integer kernels compute what lowbit computes for the same file; the
# packed kernels add fp32 biases where the export rounds them to int32, so
# they agree within one step of an 8-bit grid over the logits' range.
scale = np.abs(qdq).max()
assert np.abs(ort - qdq).max() <= 1e-3 * scale, np.abs(ort - qdq).max() / scale
step = (packed.max() - packed.min()) / 255
assert (np.abs(ort - packed) <= step).mean() >= 0.99, np.abs(ort - packed).max() / step
assert (ort.argmax(1) == packed.argmax(1)).mean() >= 0.99
EOF
then
  ok "ONNX Runtime fuses the QDQ export (2 QLinearConv, 3 QGemm, no fp32 Conv/Gemm) and matches lowbit"
else
  bad "ONNX Runtime check: $(cat "$tmp/err")"
fi

# Weight-only (fp32 activations): a codebook in groups of 32, which the 8-bit
# kernels cannot run, decodes on the fly; its QDQ export holds the decoded
# weights, and ONNX Runtime agrees with the packed model.
if "$lowbit" quantize "$cnn" -o "$tmp/wo.onnx" --weights codebook-3 --granularity group:32 --acts float \
     --quiet >/dev/null 2>"$tmp/err" &&
   "$lowbit" inspect "$tmp/wo.onnx" --json >"$tmp/wo.json" 2>>"$tmp/err" &&
   "$lowbit" run "$tmp/wo.onnx" --input "$x" --output "$tmp/y_wo.npy" >/dev/null 2>>"$tmp/err" &&
   "$lowbit" export "$tmp/wo.onnx" --to onnx-qdq -o "$tmp/wo_qdq.onnx" >/dev/null 2>>"$tmp/err" &&
   NODE_PATH=$ort_dir/node_modules node "$ort_dir/ort_run.js" "$tmp/wo_qdq.onnx" "$x" "$tmp/y_wo_ort.npy" 2>>"$tmp/err" &&
   $py - "$tmp/y_wo.npy" "$tmp/y_wo_ort.npy" "$tmp/wo.json" <<'EOF'
import json
import sys
import numpy as np
packed, ort = np.load(sys.argv[1]), np.load(sys.argv[2])
assert np.abs(packed - ort).max() <= 1e-4 * np.abs(ort).max(), np.abs(packed - ort).max()
layers = json.load(open(sys.argv[3]))["layers"]
assert all(l["act_bits"] == 32 and l["format"] == "codebook-3" for l in layers), layers
EOF
then
  ok "weight-only codebook-3 group:32: runs, exports, matches ONNX Runtime"
else
  bad "weight-only: $(cat "$tmp/err")"
fi

# Bad input.
# A model whose input fixes the batch at 1 (as exported without dynamic axes)
# calibrates and evaluates at that batch with the default batch sizes.
$py - "$cnn" "$tmp/fixed.onnx" <<'EOF'
import sys, onnx
m = onnx.load(sys.argv[1])
m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
onnx.save(m, sys.argv[2])
EOF
if "$lowbit" quantize "$tmp/fixed.onnx" -o "$tmp/fixed_w4.onnx" --weights int4 \
     --calib 'fashion-mnist:train[0:40]' --quiet >/dev/null 2>"$tmp/err" &&
   "$lowbit" eval "$tmp/fixed_w4.onnx" --data 'fashion-mnist:test[:50]' --quiet --json >"$tmp/fixed.json" 2>>"$tmp/err" &&
   grep -q '"batch": *1' "$tmp/fixed.json"; then
  ok "a fixed-batch model calibrates and evaluates at its batch"
else
  bad "fixed-batch model: $(head -c 300 "$tmp/err")"
fi
expect_error "a --batch the fixed-batch model does not take" "batch 8.*fixed.onnx.*at 1" bench "$tmp/fixed.onnx" --batch 8
expect_error "unknown weight format" "int9" quantize "$cnn" -o "$tmp/bad.onnx" --weights int9
expect_error "pattern matching no layer" "nosuch.*layers: /features" quantize "$cnn" -o "$tmp/bad.onnx" --layer 'nosuch=int4'
expect_error "malformed --layer" "PATTERN=FORMAT" quantize "$cnn" -o "$tmp/bad.onnx" --layer 'conv1'
echo '{"weights": "int4", "layers": {"x": {"bits": 2}}}' >"$tmp/badplan.json"
expect_error "plan with an unknown key" "badplan.json.*unknown key 'bits'" quantize "$cnn" -o "$tmp/bad.onnx" --plan "$tmp/badplan.json"
expect_error "calibration data of the wrong shape" "digits.*64 values.*'input'" quantize "$cnn" -o "$tmp/bad.onnx" --calib digits
expect_error "bad --act-calib" "act-calib 'p99'" quantize "$cnn" -o "$tmp/bad.onnx" --act-calib p99
expect_error "bad --prune" "prune must be in" quantize "$cnn" -o "$tmp/bad.onnx" --prune 1.5
expect_error "group scales with 8-bit activations" "group.*--acts float" quantize "$cnn" -o "$tmp/bad.onnx" --granularity group:32
expect_error "unknown --rounding" "rounding 'stochastic'.*nearest or gptq" quantize "$cnn" -o "$tmp/bad.onnx" --rounding stochastic --calib "$calib"
expect_error "gptq without calibration" "rounding gptq needs calibration" quantize "$cnn" -o "$tmp/bad.onnx" --rounding gptq
expect_error "bad --acts" "acts 'fp16'.*float" quantize "$cnn" -o "$tmp/bad.onnx" --acts fp16
if [[ -e $tmp/bad.onnx ]]; then bad "a failed quantize left $tmp/bad.onnx"; else ok "failed runs write nothing"; fi
head -c 20000 "$tmp/w4.onnx" >"$tmp/truncated.onnx"
expect_error "truncated quantized model" "truncated.onnx" eval "$tmp/truncated.onnx" --data 'fashion-mnist:test[:10]'
expect_error "export of an fp32 model" "no quantized layers" export "$cnn" --to onnx-qdq -o "$tmp/bad.onnx"
expect_error "unknown export target" "--to 'tflite'" export "$tmp/w4.onnx" --to tflite -o "$tmp/bad.onnx"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
