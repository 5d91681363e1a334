#!/usr/bin/env bash
# On a GPU machine (with nvcc, CMake, ninja and PyTorch, without apt): builds the CUDA parity tests and
# bench_cuda against .kit/ (scripts/device_kit.sh), runs the parity tests, then the GPU benchmark with its
# PyTorch peer. Logs and JSON go to $OUT (or runs/device). Usage: scripts/device_check.sh [min_time_s]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-runs/device}
mkdir -p "$out"
kit=$root/.kit/usr
lib=$kit/lib/x86_64-linux-gnu
build=build/device
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"  # libbenchmark
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_CUDA=ON -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" \
  -DCMAKE_PREFIX_PATH="$kit;$lib/cmake" -DEigen3_DIR="$kit/share/eigen3/cmake" -Dxtensor_DIR="$lib/cmake/xtensor" -Dxtl_DIR="$kit/share/cmake/xtl" \
  -DZLIB_INCLUDE_DIR="$kit/include" -DZLIB_LIBRARY="$lib/libz.a" -Dbenchmark_DIR="$lib/cmake/benchmark" \
  -DCOORDIFF_BUILD_TESTS=ON -DCOORDIFF_BUILD_BENCHMARKS=ON -DCOORDIFF_BUILD_EXAMPLES=OFF -DCOORDIFF_BUILD_APPS=OFF \
  >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target coordiff_cuda_tests bench_cuda >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
"$build/tests/cuda/coordiff_cuda_tests" 2>&1 | tee "$out/parity.txt"
status=${PIPESTATUS[0]}
COORDIFF_SKIP_DEPS=1 COORDIFF_BENCH_BUILD_DIR="$build" COORDIFF_BENCH_OUT="$out" PYTHONUNBUFFERED=1 \
  benchmarks/run_cuda_bench.sh "${1:-0.5}" 2>&1 | tee "$out/bench.md"
exit "$status"
