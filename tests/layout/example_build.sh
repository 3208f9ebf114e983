#!/usr/bin/env bash
# tests/layout/example_build.sh BUILD_DIR OUT_DIR: install libnatpeer from BUILD_DIR
# into a scratch prefix (OUT_DIR/prefix) with `cmake --install`, then build
# docs/examples/natpeer-echo.c against the INSTALLED library only, through
# pkg-config, twice:
#   OUT_DIR/natpeer-echo         linked to libnatpeer.so (its SONAME checked)
#   OUT_DIR/natpeer-echo-static  linked to libnatpeer.a (no libnatpeer.so needed)
# and run each with --help. ctest `layout_example` (label layout) runs it;
# tests/lab/test_library.sh uses the two programs. Exit 0 when all is well;
# otherwise 1 and what failed on stderr.
set -euo pipefail
build=${1:?usage: example_build.sh BUILD_DIR OUT_DIR}
out=${2:?usage: example_build.sh BUILD_DIR OUT_DIR}
src=$(cd "$(dirname "$0")/../.." && pwd)/docs/examples/natpeer-echo.c
fail() { echo "example_build: $*" >&2; exit 1; }

command -v pkg-config >/dev/null || fail "pkg-config is missing (apt-get install pkg-config)"
mkdir -p "$out"
prefix=$(cd "$out" && pwd)/prefix
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >"$out/install.log" 2>&1 ||
    fail "cmake --install failed: $(tail -n 5 "$out/install.log")"
pc=$(find "$prefix" -name natpeer.pc -print -quit)
[ -n "$pc" ] || fail "no natpeer.pc under $prefix"
export PKG_CONFIG_PATH=$(dirname "$pc")
unset PKG_CONFIG_LIBDIR
hdr=$(find "$prefix" -name natpeer.h -print -quit)
[ -n "$hdr" ] || fail "no natpeer.h under $prefix"
libdir=$(pkg-config --variable=libdir natpeer)
[ -f "$libdir/libnatpeer.a" ] || fail "no libnatpeer.a in $libdir"
so=$(readlink -f "$libdir/libnatpeer.so") || fail "no libnatpeer.so in $libdir"
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname =~ ^libnatpeer\.so\.[0-9]+$ ]] || fail "libnatpeer.so has SONAME '$soname', want libnatpeer.so.N"
[ -e "$libdir/$soname" ] || fail "the SONAME link $libdir/$soname is not installed"
echo "example_build: natpeer $(pkg-config --modversion natpeer), $soname, header $hdr"

flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2)
# The build's own compiler; a sanitizer build's library needs sanitized programs
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
[ -x "${cc:-}" ] || cc=cc
grep -q '^NB_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" && flags+=(-fsanitize=address,undefined)
# shellcheck disable=SC2046
"$cc" "${flags[@]}" -o "$out/natpeer-echo" "$src" $(pkg-config --cflags --libs natpeer) -Wl,-rpath,"$libdir" ||
    fail "building natpeer-echo against the shared library failed"
readelf -d "$out/natpeer-echo" | grep -qF "[$soname]" || fail "natpeer-echo does not need $soname"
# shellcheck disable=SC2046
"$cc" "${flags[@]}" -o "$out/natpeer-echo-static" "$src" $(pkg-config --cflags natpeer) "$libdir/libnatpeer.a" \
    $(pkg-config --static --libs natpeer | sed 's/-lnatpeer\b//') ||
    fail "building natpeer-echo against the static library failed"
! readelf -d "$out/natpeer-echo-static" | grep -qF libnatpeer || fail "natpeer-echo-static still needs libnatpeer.so"
for p in natpeer-echo natpeer-echo-static; do
    "$out/$p" --help >/dev/null || fail "$p --help failed"
done
echo "example_build: built $out/natpeer-echo (shared) and $out/natpeer-echo-static (static)"
