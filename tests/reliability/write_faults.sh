#!/usr/bin/env bash
# Writes survive faults: a full disk (a file-size limit), a directory that
# cannot be written, and kill -9 at random moments leave the previous output
# intact, no partial file, and (for errors) one line naming the path.
#   write_faults.sh LOWBIT MODELS_DIR
set -u
lowbit=$1
models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../cli/lib.sh"
cnn=$models/fmnist_cnn.onnx
q=(quantize "$cnn" --weights int4 --calib 'fashion-mnist:train[0:64]' --quiet)

"$lowbit" "${q[@]}" -o "$tmp/ref.onnx" >/dev/null 2>&1 || bad "reference quantize failed"
printf 'previous output\n' >"$tmp/out.onnx"

# A full disk: writes beyond 16 KiB fail with EFBIG (SIGXFSZ ignored, as a
# full filesystem fails a write).
(trap '' XFSZ; ulimit -f 16; exec "$lowbit" "${q[@]}" -o "$tmp/out.onnx") >/dev/null 2>"$tmp/err"
rc=$?
if [[ $rc -eq 1 && $(wc -l <"$tmp/err") -eq 1 ]] && grep -q "$tmp/out.onnx" "$tmp/err" &&
   [[ $(cat "$tmp/out.onnx") == "previous output" ]] && ! ls "$tmp"/out.onnx.tmp.* >/dev/null 2>&1; then
  ok "a full disk: one line naming the path, the previous file intact, no temporary left"
else
  bad "full disk: rc $rc, $(cat "$tmp/err"), $(ls "$tmp")"
fi

# A directory that cannot be written (a read-only filesystem).
expect_error "an unwritable directory" "/proc/lowbit_out.onnx" "${q[@]}" -o /proc/lowbit_out.onnx

# kill -9 at random moments: the output is the previous file or a complete new one.
RANDOM=7
partial=0
for i in $(seq 1 50); do
  "$lowbit" "${q[@]}" -o "$tmp/out.onnx" >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 900)))"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  if ! cmp -s "$tmp/out.onnx" "$tmp/ref.onnx" && [[ $(cat "$tmp/out.onnx" 2>/dev/null) != "previous output" ]]; then
    partial=$((partial + 1))
  fi
done
if [[ $partial -eq 0 ]]; then
  ok "50 kills of quantize at random moments: every time the previous or the complete new file"
else
  bad "$partial of 50 kills left a partial output"
fi
# A later write removes what the killed writers left.
"$lowbit" "${q[@]}" -o "$tmp/out.onnx" >/dev/null 2>&1
if cmp -s "$tmp/out.onnx" "$tmp/ref.onnx" && ! ls "$tmp"/out.onnx.tmp.* >/dev/null 2>&1; then
  ok "the next write completes and removes the killed writers' temporaries"
else
  bad "after the kills: $(ls "$tmp")"
fi

echo "write faults: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
