#!/bin/sh
# tests/layout/check_symbols.sh LIB SYMBOLS [ARCHIVE]: libnatpeer's ABI, checked.
# - `nm -D --defined-only LIB` exports exactly the names in SYMBOLS (one a
#   line, sorted): nothing internal leaks, nothing public goes missing;
# - ARCHIVE (libnatpeer.a), when given, defines exactly those global names
#   too (its internal names are local: peer/CMakeLists.txt);
# - LIB uses no stdout, stderr, printf-family writer to them, puts, perror,
#   signal or sigaction: the library writes nothing and leaves signals to
#   the application (docs/library.md).
# Exit 0 when both hold; else 1, with what differs.
set -eu
lib=$1
want=$2
archive=${3:-}
fail=0
got=$(mktemp)
trap 'rm -f "$got"' EXIT
nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sed 's/@.*//' | LC_ALL=C sort -u >"$got"
if ! LC_ALL=C sort -u "$want" | diff -u - "$got"; then
	echo "layout_symbols: the exported names differ from $want (- listed, + exported)"
	fail=1
fi
if [ -n "$archive" ]; then
	if ! nm --defined-only --extern-only "$archive" | awk 'NF == 3 { print $3 }' | LC_ALL=C sort -u |
		diff -u "$got" -; then
		echo "layout_symbols: $archive defines other global names than the shared library exports (+ extra)"
		fail=1
	fi
fi
bad=$(nm -D --undefined-only "$lib" | awk '{ print $NF }' | sed 's/@.*//' |
	grep -Ex '(stdout|stderr|_IO_2_1_stdout_|_IO_2_1_stderr_|printf|vprintf|puts|putchar|perror|signal|sigaction|__printf_chk|__vprintf_chk)' || true)
if [ -n "$bad" ]; then
	echo "layout_symbols: $lib uses:" $bad
	fail=1
fi
n=$(wc -l <"$got")
echo "layout_symbols: $n exported names${archive:+ (the archive too)}; no stdout/stderr/printf/puts/signal use: $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
