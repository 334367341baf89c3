# Shared helpers for the CLI tests: counters, ok/bad, and expect_error, which
# checks that a command fails with exit 1 or 2 and exactly one stderr line
# matching a regex. Callers set $lowbit and $tmp first.
pass=0
fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }

# expect_error NAME REGEX ARGS...
expect_error() {
  local name=$1 regex=$2
  shift 2
  "$lowbit" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [[ $rc -ne 1 && $rc -ne 2 ]]; then
    bad "$name: exit code $rc (stderr: $(head -c 500 "$tmp/err"))"
  elif [[ $lines -ne 1 ]]; then
    bad "$name: expected one error line, got $lines: $(head -c 500 "$tmp/err")"
  elif ! grep -Eq -- "$regex" "$tmp/err"; then
    bad "$name: '$(cat "$tmp/err")' does not match /$regex/"
  else
    ok "$name"
  fi
}
