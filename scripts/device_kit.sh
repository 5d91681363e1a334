#!/usr/bin/env bash
# Prepares .kit/: the headers and static libraries a GPU machine without apt needs to build the CUDA tests
# and bench_cuda (Eigen, xtensor, xtl, xsimd, nlohmann-json, zlib, doctest, Google Benchmark), unpacked from Debian
# packages downloaded here. The folder is ignored by git; pass it along with the tree, then run
# scripts/device_check.sh there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kit=.kit
rm -rf "$kit" && mkdir -p "$kit/debs"
apt-get update -qq >/dev/null
(cd "$kit/debs" && apt-get download -qq libeigen3-dev libxtensor-dev xtl-dev doctest-dev libxsimd-dev nlohmann-json3-dev zlib1g-dev \
  libbenchmark-dev libbenchmark1debian)
for f in "$kit"/debs/*.deb; do dpkg -x "$f" "$kit"; done
rm -rf "$kit/debs" "$kit/usr/share/doc" "$kit/usr/share/man"
du -sh "$kit"
