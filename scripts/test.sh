#!/usr/bin/env bash
# Installs what is missing, builds the test suite and runs ctest (long checks: `ctest -L long`).
# When nvcc is present, first builds the CUDA backend and its parity tests (they skip without a GPU).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install_deps.sh test
jobs=$(nproc)
status=0

nvcc_bin=$(command -v nvcc || true)
[ -z "$nvcc_bin" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_bin=/usr/local/cuda/bin/nvcc
if [ -n "$nvcc_bin" ] && [ "${COORDIFF_SKIP_CUDA:-0}" != 1 ]; then
  cuda_build=${COORDIFF_CUDA_BUILD_DIR:-build/cuda}
  echo "coordiff: building the CUDA backend with $nvcc_bin"
  cmake -S . -B "$cuda_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc_bin" -DCOORDIFF_BUILD_TESTS=ON -DCOORDIFF_BUILD_EXAMPLES=OFF
  # The parity tests, and the tool whose `augment --device cuda` links the GPU network.
  cmake --build "$cuda_build" -j"$jobs" --target coordiff_cuda_tests coordiff_cli
  ctest --test-dir "$cuda_build" --output-on-failure -L cuda || status=$?
else
  echo "coordiff: nvcc not found; CUDA build skipped"
fi

build=${COORDIFF_BUILD_DIR:-build/test}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_BUILD_TESTS=ON -DCOORDIFF_BUILD_EXAMPLES=ON
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j"$jobs" -LE long || status=$?
exit $status
