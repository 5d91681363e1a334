# Sourced by the run_*_bench.sh scripts: `build_bench TARGET` installs the benchmark dependencies,
# configures $build (COORDIFF_BENCH_BUILD_DIR, default build/bench) and builds TARGET; $out is where the
# runs write their JSON.
build_bench() {
  scripts/install_deps.sh bench
  build=${COORDIFF_BENCH_BUILD_DIR:-build/bench}
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_BUILD_BENCHMARKS=ON \
    -DCOORDIFF_BUILD_TESTS=OFF -DCOORDIFF_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "$1"
  out="$build/results"
  mkdir -p "$out"
}
