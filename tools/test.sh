#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through ctest:
# unit tests, then integration tests that really mount and compare with the ffmpeg CLI.
#   tools/test.sh               the suite on the normal build (build/)
#   tools/test.sh --sanitize    the suite on an ASan+UBSan build (build-asan/)
#   tools/test.sh --tsan        the concurrency tests on a ThreadSanitizer build (build-tsan/)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
--sanitize)
	export BUILD_DIR=build-asan CMAKE_ARGS="-DHF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
	;;
--tsan)
	export BUILD_DIR=build-tsan CMAKE_ARGS="-DHF_TSAN=ON -DCMAKE_BUILD_TYPE=Debug"
	;;
esac
tools/setup.sh --test
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure ${CTEST_ARGS:-}
