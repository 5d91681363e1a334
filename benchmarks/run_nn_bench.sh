#!/usr/bin/env bash
# Builds bench_nn, runs the PyTorch peer (which also writes the shared weights), then the C++ benchmark
# (which checks parity with those weights before timing), and prints a markdown table with the ratio.
# Usage: benchmarks/run_nn_bench.sh [threads]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-$(nproc)}
source benchmarks/build_bench.sh
build_bench bench_nn
/usr/bin/python3 benchmarks/peer/bench_nn_torch.py --threads "$threads" --weights "$out/nn_weights.npz" --json "$out/torch.json"
OMP_NUM_THREADS=$threads "$build/benchmarks/bench_nn" --weights="$out/nn_weights.npz" --threads="$threads" \
  --benchmark_format=json --benchmark_out="$out/coordiff.json" --benchmark_out_format=json >/dev/null
/usr/bin/python3 - "$out/torch.json" "$out/coordiff.json" <<'PY'
import sys
sys.path.insert(0, "benchmarks/peer")
from bench_report import load, pairs
peer, ours, machine = load(sys.argv[1], sys.argv[2])
print(machine + "\n")
print("| network / pass / batch | coordiff ms | PyTorch ms | speed-up | coordiff GFLOP/s | PyTorch GFLOP/s |")
print("|---|---:|---:|---:|---:|---:|")
for name, b, t in pairs(peer, ours):
    ms = b["real_time"] if b["time_unit"] == "ms" else b["real_time"] / 1e6
    tms = t["seconds"] * 1e3
    print(f"| {name} | {ms:.2f} | {tms:.2f} | {tms / ms:.2f}x | {t['flops'] / ms / 1e6:.1f} | {t['flops'] / tms / 1e6:.1f} |")
PY
