#!/usr/bin/env bash
# Builds bench_sampling, runs the PyTorch peer (which also writes the shared weights and a two-step parity
# sample), then the C++ benchmark (which checks parity with those weights before timing), and prints a
# markdown table of reverse steps per second with the ratio.
# Usage: benchmarks/run_sampling_bench.sh [threads] [min_time_seconds]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-$(nproc)}
min_time=${2:-1.0}
source benchmarks/build_bench.sh
build_bench bench_sampling
/usr/bin/python3 benchmarks/peer/bench_sampling_torch.py --threads "$threads" --min-time "$min_time" \
  --weights "$out/sampling_weights.npz" --json "$out/sampling_torch.json"
OMP_NUM_THREADS=$threads "$build/benchmarks/bench_sampling" --weights="$out/sampling_weights.npz" --threads="$threads" \
  --min-time="$min_time" --benchmark_format=json --benchmark_out="$out/sampling_coordiff.json" \
  --benchmark_out_format=json >/dev/null
/usr/bin/python3 - "$out/sampling_torch.json" "$out/sampling_coordiff.json" <<'PY'
import sys
sys.path.insert(0, "benchmarks/peer")
from bench_report import load, pairs
peer, ours, machine = load(sys.argv[1], sys.argv[2])
print(f"{machine}; forward {peer['forward_flops_per_sample'] / 1e6:.1f} MFLOP per sample\n")
print("| step / batch | coordiff steps/s | PyTorch steps/s | speed-up | coordiff rows·steps/s | PyTorch rows·steps/s |")
print("|---|---:|---:|---:|---:|---:|")
for name, b, t in pairs(peer, ours):
    steps = b["items_per_second"]
    rows = b["rows*steps/s"]
    print(f"| {name} | {steps:.1f} | {t['steps_per_s']:.1f} | {steps / t['steps_per_s']:.2f}x | {rows:.0f} | {t['rows_steps_per_s']:.0f} |")
PY
