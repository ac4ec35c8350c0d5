#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through ctest (unit
# tests, then integration tests that really mount and compare with the ffmpeg CLI),
# first on the normal build, then on an ASan+UBSan build, then the libFuzzer targets.
#   tools/test.sh               all three (what CI runs)
#   tools/test.sh --normal      the normal build only (build/)
#   tools/test.sh --sanitize    the ASan+UBSan build only (build-asan/)
#   tools/test.sh --fuzz        the libFuzzer targets only (build-fuzz/: clang, ASan+UBSan, tests/fuzz),
#                               HF_FUZZ_TIME seconds each (default 20)
#   tools/test.sh --tsan        a ThreadSanitizer build (build-tsan/)
# CTEST_ARGS adds ctest options, e.g. CTEST_ARGS="-R it.test_frames".
set -euo pipefail
cd "$(dirname "$0")/.."

suite() { # name build-dir cmake-args
	echo "== $1 build ($2)"
	BUILD_DIR=$2 CMAKE_ARGS=$3 tools/setup.sh --test
	# shellcheck disable=SC2086
	ctest --test-dir "$2" -j2 --output-on-failure ${CTEST_ARGS:-}
}

fuzz() { # the fuzz targets are built with clang, and only they
	echo "== libFuzzer targets (build-fuzz), ${HF_FUZZ_TIME:-20} s each"
	BUILD_DIR=build-fuzz BUILD_TARGET=fuzz CMAKE_ARGS="-DCMAKE_C_COMPILER=clang -DHF_FUZZ=ON \
-DHF_FUZZ_TIME=${HF_FUZZ_TIME:-20}" tools/setup.sh --test
	# shellcheck disable=SC2086
	ctest --test-dir build-fuzz -j2 --output-on-failure -L fuzz ${CTEST_ARGS:-}
}

export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
case "${1:-}" in
--normal) suite normal build "" ;;
--sanitize) suite ASan+UBSan build-asan "-DHF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug" ;;
--fuzz) fuzz ;;
--tsan)
	export TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1 report_signal_unsafe=0"
	suite ThreadSanitizer build-tsan "-DHF_TSAN=ON -DCMAKE_BUILD_TYPE=Debug"
	;;
"")
	suite normal build ""
	suite ASan+UBSan build-asan "-DHF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
	fuzz
	;;
*)
	echo "usage: tools/test.sh [--normal|--sanitize|--fuzz|--tsan]" >&2
	exit 2
	;;
esac
