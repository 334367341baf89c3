#!/usr/bin/env bash
# `lowbit finetune` end to end: a run killed with SIGKILL after its first
# epoch resumes from its checkpoint to the same file as an uninterrupted run;
# --json reports the stages; two-stage n-hot reports both stages; a checkpoint
# of other options and bad input get one clear line and a non-zero exit.
set -u
lowbit=$1
models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"
py=/usr/bin/python3

cnn=$models/fmnist_cnn.onnx
digits=$models/digits_mlp.onnx
common=(--train 'fashion-mnist:train[0:1500]' --val 'fashion-mnist:test[0:300]' --weights int2
        --epochs 3 --threads 1 --calib-samples 300 --quiet)

"$lowbit" --help | grep -q finetune && ok "lowbit --help lists finetune" || bad "finetune not in --help"

# Uninterrupted, with --json.
if "$lowbit" finetune "$cnn" -o "$tmp/a.onnx" "${common[@]}" --checkpoint "$tmp/ck_a" --json >"$tmp/a.json" 2>"$tmp/err" &&
   "$py" - "$tmp/a.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
s = j["stages"]
assert len(s) == 1 and len(s[0]["epochs"]) == 3, s
assert s[0]["epochs"][-1]["val_top1"] > s[0]["start_val_top1"], s
assert all(l["weights"] == "int2" for l in j["layers"]), j["layers"]
PY
then
  ok "finetune --json: three epochs, better than where it started"
else
  bad "finetune: $(cat "$tmp/a.json" "$tmp/err" | head -c 800)"
fi

# Killed after the first epoch's checkpoint, then resumed.
"$lowbit" finetune "$cnn" -o "$tmp/b.onnx" "${common[@]}" --checkpoint "$tmp/ck_b" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [[ -f "$tmp/ck_b/finetune.ckpt" ]] && break
  sleep 0.1
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if [[ -f "$tmp/b.onnx" ]]; then
  bad "the run finished before it could be killed"
else
  "$lowbit" finetune "$cnn" -o "$tmp/b.onnx" "${common[@]}" --checkpoint "$tmp/ck_b" --resume --json \
    >"$tmp/b.json" 2>"$tmp/err"
  if cmp -s "$tmp/a.onnx" "$tmp/b.onnx"; then
    ok "a run killed with SIGKILL resumes to the uninterrupted run's file"
  else
    bad "resumed file differs: $(head -c 500 "$tmp/err")"
  fi
  "$py" -c "import json,sys; e=json.load(open(sys.argv[1]))['stages'][0]['epochs']; assert e[0]['resumed'] and not e[-1]['resumed'], e" \
    "$tmp/b.json" && ok "the resumed run reports which epochs it read back" || bad "resumed flags: $(head -c 300 "$tmp/b.json")"
fi

# Two-stage n-hot: both stages reported.
if "$lowbit" finetune "$digits" -o "$tmp/n.onnx" --train 'digits[0:1000]' --val 'digits[1400:]' \
     --weights nhot2-3 --two-stage --epochs 1 --quiet --json >"$tmp/n.json" 2>"$tmp/err" &&
   "$py" -c "import json,sys; s=json.load(open(sys.argv[1]))['stages']; assert len(s)==2 and 'stage 1' in s[0]['name'], s" "$tmp/n.json"
then
  ok "two-stage n-hot reports both stages"
else
  bad "two-stage: $(cat "$tmp/n.json" "$tmp/err" | head -c 600)"
fi

# Learned filter-wise widths: a plan of kernel widths, cheaper than W4A8, that runs.
if "$lowbit" finetune "$cnn" -o "$tmp/l.onnx" --train 'fashion-mnist:train[0:2000]' --val 'fashion-mnist:test[0:300]' \
     --learn-bits --bitops-weight 4 --bits 1..8 --epochs 1 --threads 2 --calib-samples 300 --quiet --json \
     --write-plan "$tmp/l.plan" >"$tmp/l.json" 2>"$tmp/err" &&
   "$py" - "$tmp/l.json" <<'PY' &&
import json, sys
j = json.load(open(sys.argv[1]))
s = j["stages"]
assert len(s) == 2 and s[0]["epochs"][-1]["mean_bits"] is not None, s
assert j["bitops_vs_w4a8"] < 1, j["bitops_vs_w4a8"]
for l in j["layers"]:
    names = l["weights"].split("/")
    assert all(n in ("int1", "int2", "int4", "int8") for n in names), l
    assert (len(names) > 1) == (len(l["filters"]) > 0), l
PY
   "$lowbit" eval "$tmp/l.onnx" --data 'fashion-mnist:test[0:300]' >/dev/null 2>&1 &&
   "$lowbit" quantize "$cnn" -o "$tmp/l2.onnx" --plan "$tmp/l.plan" --calib 'fashion-mnist:train[0:300]' --quiet >/dev/null 2>&1
then
  ok "--learn-bits writes kernel widths per filter, cheaper than W4A8, a plan quantize reads and a model that runs"
else
  bad "--learn-bits: $(cat "$tmp/l.json" "$tmp/err" | head -c 800)"
fi

# lowbit tune --finetune: front points trained by lowbit-finetune, the
# cheapest that then meets the bound chosen. (Nearest rounding: with GPTQ,
# uniform int1 already meets this bound and leaves no cheaper point to train.)
"$lowbit" tune "$digits" -o "$tmp/t.onnx" --calib 'digits[0:500]' --val 'digits[1400:1600]' --max-evals 30 \
  --max-loss 3 --finetune 2 --train 'digits[0:1400]' --rounding nearest --quiet --json >"$tmp/t.json" 2>"$tmp/err"
rc=$?
if [[ $rc -eq 0 || $rc -eq 3 ]] && "$py" - "$tmp/t.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ft = j["finetune"]
assert ft["epochs"] == 2 and len(ft["trained"]) >= 1, ft
for t in ft["trained"]:
    assert t["feasible"] == (t["metric"] - 1.2815515655446004 * t["se"] >= j["bound"] - 1e-9), t
if ft["chosen_trained"]:
    assert j["chosen"]["objective"] < min(p["objective"] for p in j["front"] if p["feasible"]) + 1e-12
PY
then
  ok "tune --finetune trains front points and chooses among them"
else
  bad "tune --finetune (exit $rc): $(cat "$tmp/t.json" "$tmp/err" | head -c 800)"
fi
expect_error "tune --finetune without --train" "--finetune needs --train" tune "$digits" -o "$tmp/x.onnx" \
  --calib 'digits[0:500]' --val 'digits[1400:1600]' --finetune 1
expect_error "tune --train overlapping --val" "overlaps --train" tune "$digits" -o "$tmp/x.onnx" \
  --calib 'digits[0:500]' --val 'digits[1400:1600]' --finetune 1 --train 'digits[1000:1500]'

d=(--train 'digits[0:200]' --val 'digits[1400:]' --quiet)
expect_error "no format" "give --weights FORMAT, --plan FILE or --learn-bits" finetune "$digits" -o "$tmp/x.onnx" "${d[@]}"
expect_error "bad lr" "--lr must be > 0" finetune "$digits" -o "$tmp/x.onnx" "${d[@]}" --weights int2 --lr 0
expect_error "bad optimizer" "--optimizer 'rmsprop'" finetune "$digits" -o "$tmp/x.onnx" "${d[@]}" --weights int2 --optimizer rmsprop
expect_error "two-stage without n-hot" "--two-stage needs nhot" finetune "$digits" -o "$tmp/x.onnx" "${d[@]}" --weights int2 --two-stage
expect_error "resume without checkpoint" "--resume needs --checkpoint" finetune "$digits" -o "$tmp/x.onnx" "${d[@]}" --weights int2 --resume
expect_error "bad bit range" "--bits 3..3" finetune "$digits" -o "$tmp/x.onnx" "${d[@]}" --learn-bits --bits 3..3
expect_error "bad format" "int9" finetune "$digits" -o "$tmp/x.onnx" "${d[@]}" --weights int9
expect_error "missing model" "nothere.onnx" finetune "$tmp/nothere.onnx" -o "$tmp/x.onnx" "${d[@]}" --weights int2
expect_error "checkpoint of other options" "belongs to another model, data or options" finetune "$cnn" -o "$tmp/x.onnx" \
  "${common[@]}" --lr 0.001 --checkpoint "$tmp/ck_a" --resume
[[ ! -e "$tmp/x.onnx" ]] && ok "no output written on error" || bad "an output was written on error"

echo "finetune CLI: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
