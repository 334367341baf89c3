#!/usr/bin/env bash
# `lowbit formats` end to end: a real run, and bad input that must give exactly
# one error line naming the culprit and a non-zero exit, never a crash.
set -u
lowbit=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

# A real run: the table has a row per format and bit width.
if "$lowbit" formats --bits 2,4 --samples 8192 --quiet >"$tmp/table" 2>"$tmp/err" &&
   grep -Eq '^codebook-4 +4 tensor' "$tmp/table" && grep -Eq '^nhot2-2 +2 tensor' "$tmp/table" &&
   [[ ! -s $tmp/err ]]; then
  ok "formats table"
else
  bad "formats table: $(cat "$tmp/table" "$tmp/err")"
fi
if "$lowbit" formats --bits 3 --families int,codebook --granularity tensor,group:32 --samples 4096 \
     --json >"$tmp/json" 2>"$tmp/err" && grep -q '"format": "codebook-3"' "$tmp/json" &&
   [[ $(grep -c '"format"' "$tmp/json") -eq 4 ]]; then
  ok "formats --json"
else
  bad "formats --json: $(cat "$tmp/json" "$tmp/err")"
fi

# A .npy weight file, read with its own shape.
printf '\x93NUMPY\x01\x00\x76\x00{'"'"'descr'"'"': '"'"'<f4'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (2, 4), }' >"$tmp/w.npy"
printf '%*s\n' $((118 - 60)) '' >>"$tmp/w.npy"
head -c 128 /dev/zero | tr '\0' '\0' >/dev/null
# 8 floats: 1..8 as little-endian fp32.
printf '\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x00\x00\xa0\x40\x00\x00\xc0\x40\x00\x00\xe0\x40\x00\x00\x00\x41' >>"$tmp/w.npy"
if "$lowbit" formats --bits 8 --families int-asym --data "$tmp/w.npy" --quiet >"$tmp/npy" 2>"$tmp/err" &&
   grep -q 'viewed as 2 x 4' "$tmp/npy"; then
  ok "formats --data FILE.npy"
else
  bad "formats --data FILE.npy: $(cat "$tmp/npy" "$tmp/err")"
fi

# NaN inside a .npy: the error names the position and the value.
cp "$tmp/w.npy" "$tmp/nan.npy"
printf '\x00\x00\xc0\x7f' | dd of="$tmp/nan.npy" bs=1 seek=$((128 + 12)) conv=notrunc 2>/dev/null
expect_error "NaN in data" 'value at \[0, 3\] is nan' formats --bits 4 --data "$tmp/nan.npy"

head -c 100 "$tmp/w.npy" >"$tmp/trunc.npy"
expect_error "truncated npy" 'trunc.npy: truncated' formats --data "$tmp/trunc.npy"
echo "hello" >"$tmp/text.npy"
expect_error "not npy" 'text.npy: not a .npy file' formats --data "$tmp/text.npy"
expect_error "missing file" 'missing.npy: cannot open' formats --data "$tmp/missing.npy"
expect_error "bad data name" "--data: expected laplace, normal or a .npy file, got 'uniform'" formats --data uniform
expect_error "bits out of range" '--bits: 40 is out of range 1..32' formats --bits 2,40
expect_error "bits not a number" "--bits: expected an integer, got 'x'" formats --bits x
expect_error "unknown family" "unknown family 'int7'" formats --families int7
expect_error "bad granularity" 'group size must be >= 1' formats --granularity group:0
expect_error "bad clip" "unknown clip method 'max'" formats --clip max
expect_error "bad prune" '--prune must be in \[0, 1\), got 1.5' formats --prune 1.5
expect_error "prune int1" 'int1 has no exact zero level' formats --bits 1 --families int --prune 0.5 --samples 4096
expect_error "no formats" 'no format matches' formats --bits 9
expect_error "unknown option" 'error: .*--frobnicate' formats --frobnicate
expect_error "unknown command" 'error: ' frobnicate

echo "cli.formats: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
