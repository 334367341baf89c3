#!/usr/bin/env bash
# The installed library: `cmake --install` into a scratch prefix, then
# examples/consumer configured with find_package(lowbit) against it, built
# and run; and the Debian package (cpack -G DEB) unpacked with dpkg -x, its
# command run from there.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }

if cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/log" 2>&1; then
  ok "cmake --install"
else
  bad "cmake --install: $(tail -5 "$tmp/log")"
fi
if cmake -S "$src/examples/consumer" -B "$tmp/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
     >"$tmp/log" 2>&1 && cmake --build "$tmp/consumer" >>"$tmp/log" 2>&1; then
  ok "examples/consumer builds against the installed tree"
else
  bad "consumer build: $(tail -15 "$tmp/log")"
fi
out=$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/consumer/consumer" "$src/models/fmnist_cnn.onnx" "$tmp/q.onnx" 2>&1)
if [[ $out =~ agreement\ ([0-9]+)/16,\ 512760\ -\>\ [0-9]+\ bytes,\ first\ layer\ int4 ]] && ((BASH_REMATCH[1] >= 12)); then
  ok "the consumer quantizes and runs: $out"
else
  bad "consumer: $out"
fi
"$tmp/prefix/bin/lowbit" inspect "$tmp/q.onnx" >/dev/null 2>&1 && ok "the installed lowbit command runs" ||
  bad "installed lowbit"

# The Debian package.
if (cd "$build" && cpack -G DEB -B "$tmp/deb" >"$tmp/log" 2>&1); then
  deb=$(ls "$tmp"/deb/*.deb | head -1)
  ok "cpack -G DEB: $(basename "$deb")"
  deps=$(dpkg-deb -f "$deb" Depends)
  [[ $deps == *libonnx* && $deps == *libprotobuf* ]] && ok "the package depends on Debian's libraries ($deps)" ||
    bad "Depends: $deps"
  dpkg -x "$deb" "$tmp/root"
  if "$tmp/root/usr/bin/lowbit" inspect "$src/models/fmnist_cnn.onnx" >/dev/null 2>&1 &&
     [[ -f "$tmp/root/usr/include/lowbit/lowbit.h" ]] && ls "$tmp"/root/usr/lib*/*/cmake/lowbit/lowbitConfig.cmake \
       "$tmp"/root/usr/lib/cmake/lowbit/lowbitConfig.cmake 2>/dev/null | grep -q .; then
    ok "the package's command runs from a dpkg -x root; headers and CMake files are in it"
  else
    bad "package contents: $(cd "$tmp/root" && find . -type f | head -20)"
  fi
  if ls "$tmp"/root/usr/lib/python3/dist-packages/lowbit*.so >/dev/null 2>&1; then
    pyout=$(cd /tmp && LD_LIBRARY_PATH=$(dirname "$(ls "$tmp"/root/usr/lib*/*/liblowbit.so* "$tmp"/root/usr/lib/liblowbit.so* 2>/dev/null | head -1)") \
      PYTHONPATH="$tmp/root/usr/lib/python3/dist-packages" /usr/bin/python3 -c "import lowbit; print(lowbit.formats(4)[0])" 2>&1)
    [[ $pyout == int4 ]] && ok "the package's Python module imports" || bad "python from the package: $pyout"
  fi
else
  bad "cpack: $(tail -15 "$tmp/log")"
fi

echo "install: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
