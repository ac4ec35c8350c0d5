#!/usr/bin/env bash
# Installs what is missing (Debian packages, with sudo when not root) and builds hfmount.
#   tools/setup.sh            build dependencies, then build/ (RelWithDebInfo)
#   tools/setup.sh --test     also the test dependencies (ffmpeg CLI, python3, node, chromium,
#                             man-db for the man page test, clang and its libFuzzer runtime,
#                             GlusterFS server and client for the shared-store test), and
#                             puppeteer-core for the render loop (npm ci in tools/render-bench)
#   BUILD_DIR=... CMAKE_ARGS=... override the build directory and add cmake options
#   BUILD_TARGET=...          build only that target (e.g. fuzz) instead of everything
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=(build-essential cmake pkg-config libfuse3-dev fuse3 libavformat-dev libavcodec-dev
      libavutil-dev libswscale-dev libavfilter-dev libpng-dev libssl-dev libiniparser-dev zlib1g-dev libdeflate-dev
      libjansson-dev libjpeg62-turbo-dev)
if [ $want_test = 1 ]; then
	pkgs+=(ffmpeg python3 chromium fonts-dejavu-core man-db)
	# tests/integration/test_gluster.py: one store on a real network filesystem (a
	# single-node volume mounted twice, as two machines' clients)
	pkgs+=(glusterfs-server glusterfs-client)
	# tests/integration/test_package.py: cpack's DEB generator and dpkg-shlibdeps
	pkgs+=(dpkg-dev file)
	command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
	# tests/fuzz: libFuzzer ships in the compiler-rt of the clang that `clang` runs (14 on Debian 12)
	clang_major=$(clang -dumpversion 2>/dev/null | cut -d. -f1 || true)
	pkgs+=(clang "libclang-rt-${clang_major:-14}-dev")
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" != 0 ] && sudo=sudo
	echo "setup: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $want_test = 1 ]; then
	# tests/integration/test_render_loop.py and tools/bench --render: puppeteer-core from
	# the lock file (Debian's /usr/bin/chromium is the browser; none is downloaded), once
	rb=tools/render-bench
	if [ ! -f $rb/node_modules/.package-lock.json ] ||
		[ $rb/package-lock.json -nt $rb/node_modules/.package-lock.json ]; then
		(cd $rb && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
	fi
fi

build=${BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
