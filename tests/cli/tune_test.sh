#!/usr/bin/env bash
# `lowbit tune` end to end: the chosen model is feasible and reproducible from
# its plan; a run killed with SIGKILL resumes from its journal to the result
# of an uninterrupted run; no feasible point exits 3 with the most accurate;
# bad input gets one clear line and a non-zero exit.
set -u
lowbit=$1
models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"
py=/usr/bin/python3

cnn=$models/fmnist_cnn.onnx
digits=$models/digits_mlp.onnx
common=(--calib 'fashion-mnist:train[0:500]' --val 'fashion-mnist:train[50000:51000]'
        --formats int,pow2 --bits 2..4 --max-evals 25 --quiet)

# An uninterrupted run: a model, its plan, the front and the report.
if "$lowbit" tune "$cnn" -o "$tmp/a.onnx" "${common[@]}" --journal "$tmp/a.jsonl" \
     --write-plan "$tmp/a.plan" --pareto "$tmp/a.json" --report "$tmp/a.html" --json >"$tmp/a.out" 2>"$tmp/err" &&
   "$py" - "$tmp/a.out" "$tmp/a.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[1])); front = json.load(open(sys.argv[2]))
assert out["feasible"] and out["chosen"]["metric"] >= out["bound"], out
assert out["evaluations"] == 25, out["evaluations"]
objs = [p["objective"] for p in front["front"]]
assert objs == sorted(objs) and len(objs) >= 2, objs
PY
then
  ok "tune writes a feasible model, its front and report"
else
  bad "tune: $(cat "$tmp/a.out" "$tmp/err" | head -c 800)"
fi
grep -q '<svg' "$tmp/a.html" && ok "the report holds the front's plot" || bad "no SVG in the report"
"$lowbit" quantize "$cnn" -o "$tmp/a2.onnx" --plan "$tmp/a.plan" --calib 'fashion-mnist:train[0:500]' \
  --quiet >/dev/null 2>&1
if cmp -s "$tmp/a.onnx" "$tmp/a2.onnx"; then
  ok "the chosen plan reproduces the tuned model (quantize --plan)"
else
  bad "quantize --plan of the tuner's plan gives another file"
fi

# Killed with SIGKILL mid-run, then the same command again.
"$lowbit" tune "$cnn" -o "$tmp/b.onnx" "${common[@]}" --journal "$tmp/b.jsonl" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do  # until a few records are in
  [[ -f $tmp/b.jsonl ]] && (($(wc -l <"$tmp/b.jsonl") > 40)) && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
lines=$(wc -l <"$tmp/b.jsonl")
if "$lowbit" tune "$cnn" -o "$tmp/b.onnx" "${common[@]}" --journal "$tmp/b.jsonl" --json >"$tmp/b.out" 2>"$tmp/err" &&
   cmp -s "$tmp/a.onnx" "$tmp/b.onnx" &&
   "$py" -c "import json,sys; j=json.load(open('$tmp/b.out')); assert j['journal_records_reused'] >= $lines - 1, j" ; then
  ok "a run killed after $lines journal lines resumes to the uninterrupted result"
else
  bad "resume after kill -9: $(cat "$tmp/b.out" "$tmp/err" | head -c 800)"
fi

# No feasible point: exit 3, the most accurate written, one line on stderr.
"$lowbit" tune "$digits" -o "$tmp/c.onnx" --calib 'digits[0:500]' --val 'digits[500:1400]' \
  --metric sqnr --min-sqnr 300 --no-fp32 --max-evals 5 --quiet >"$tmp/out" 2>"$tmp/err"
rc=$?
if [[ $rc -eq 3 && -s $tmp/c.onnx && $(wc -l <"$tmp/err") -eq 1 ]] && grep -q 'no plan met the bound' "$tmp/err"; then
  ok "an unreachable bound exits 3 with the most accurate point"
else
  bad "unreachable bound: exit $rc, $(cat "$tmp/err")"
fi

# Bad input.
d=(--calib 'digits[0:500]' --val 'digits[500:1400]' --quiet)
expect_error "unknown objective" "--objective 'speed'.*unknown objective" tune "$digits" -o "$tmp/x.onnx" "${d[@]}" --objective speed
expect_error "unknown family" "--formats 'int,fp8'" tune "$digits" -o "$tmp/x.onnx" "${d[@]}" --formats int,fp8
expect_error "bad bits" "--bits '0..9'" tune "$digits" -o "$tmp/x.onnx" "${d[@]}" --bits 0..9
expect_error "bad budget" "--budget 'soon'" tune "$digits" -o "$tmp/x.onnx" "${d[@]}" --budget soon
expect_error "bad metric" "--metric 'f1'" tune "$digits" -o "$tmp/x.onnx" "${d[@]}" --metric f1
expect_error "val overlaps calib" "--val 'digits\[400:900\]' overlaps --calib" tune "$digits" -o "$tmp/x.onnx" \
  --calib 'digits[0:500]' --val 'digits[400:900]'
expect_error "journal of another run" "journal of another tuning run" tune "$cnn" -o "$tmp/x.onnx" \
  "${common[@]}" --journal "$tmp/a.jsonl" --metric agreement
[[ ! -e $tmp/x.onnx ]] && ok "nothing written on bad input" || bad "a model was written on bad input"

echo "tune: $pass passed, $fail failed"
((fail == 0))
