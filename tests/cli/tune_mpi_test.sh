#!/usr/bin/env bash
# `lowbit tune` under `mpirun -np 2`: the ranks share the measurements and
# reach the result of one process (the same file, front and evaluations);
# the journal rank 0 keeps resumes a one-process run.
set -u
lowbit=$1
models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
if ! command -v mpirun >/dev/null || ! ldd "$lowbit" | grep -q libmpi; then
  echo "tune_mpi: lowbit is built without MPI (install libopenmpi-dev openmpi-bin): 0 passed, 0 failed, 1 skipped"
  exit 0
fi
cnn=$models/fmnist_cnn.onnx
args=(--calib 'fashion-mnist:train[0:300]' --val 'fashion-mnist:test[0:1000]' --formats int,pow2
      --bits 2..4 --max-evals 30 --json --quiet)
"$lowbit" tune "$cnn" -o "$tmp/one.onnx" "${args[@]}" >"$tmp/one.json" 2>"$tmp/err1"
timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 "$lowbit" tune "$cnn" -o "$tmp/two.onnx" "${args[@]}" \
  --journal "$tmp/j.jsonl" >"$tmp/two.json" 2>"$tmp/err2"
rc=$?
if [[ $rc -eq 0 ]] && cmp -s "$tmp/one.onnx" "$tmp/two.onnx" && "$py" - "$tmp/one.json" "$tmp/two.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["chosen"] == b["chosen"] and a["front"] == b["front"], "different results"
assert a["evaluations"] == b["evaluations"] == 30
PY
then
  ok "mpirun -np 2 gives one process's model, front and evaluations"
else
  bad "mpirun -np 2 (exit $rc): $(cat "$tmp/err2" | head -c 600)"
fi
# The journal rank 0 wrote serves a one-process run: nothing measured again.
"$lowbit" tune "$cnn" -o "$tmp/three.onnx" "${args[@]}" --journal "$tmp/j.jsonl" >"$tmp/three.json" 2>&1
if cmp -s "$tmp/one.onnx" "$tmp/three.onnx" &&
   "$py" -c "import json,sys; j=json.load(open('$tmp/three.json')); assert j['journal_records_reused'] > 30, j['journal_records_reused']"; then
  ok "the MPI run's journal resumes a one-process run"
else
  bad "resume from the MPI journal: $(head -c 600 "$tmp/three.json")"
fi
echo "tune_mpi: $pass passed, $fail failed"
((fail == 0))
