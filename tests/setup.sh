#!/usr/bin/env bash
# tests/setup.sh - install what is missing (Debian 12, as root) and build.
#   tests/setup.sh            build deps + lab deps, then a release build in build/release
#   tests/setup.sh --deps     only install packages
# Idempotent: installs only missing packages, and rebuilds incrementally.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev valgrind
            libuv1-dev libcjson-dev libcurl4-openssl-dev libexpat1-dev libcmocka-dev libssl-dev libusrsctp-dev
            scdoc man-db systemd dpkg-dev file)
build_pkgs+=(python3 chromium)  # tests/lab/matrix.sh renders with python3; test_matrix_html.sh screenshots with chromium
# Noise: an independent implementation for interop (test noise_interop) and
# the published test vectors (flynn/noise's vectors.txt, read by test_noise).
build_pkgs+=(python3-dissononce golang-github-flynn-noise-dev)
# Port forwarding (tests/lab/test_forward.sh): a real DNS server and client.
build_pkgs+=(dnsmasq-base bind9-dnsutils)
# TCP forwarding (tests/lab/test_forward_tcp.sh): a real ssh server and client.
build_pkgs+=(openssh-server openssh-client)
# tests/lab/test_forward_iperf.sh and tests/bench/forward.sh: iperf3 through the forwards.
build_pkgs+=(iperf3)

missing=()
for p in "${build_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" -eq 0 ] && [ -x "$top/tests/lab/natlab.sh" ]; then
  "$top/tests/lab/natlab.sh" deps
fi
[ "${1:-}" = "--deps" ] && exit 0

echo "setup: building build/release"
cmake -S "$top" -B "$top/build/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build/release" -j"$(nproc)" >/dev/null
echo "setup: ok"
