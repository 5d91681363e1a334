#!/usr/bin/env bash
# Builds bench_offline, runs it and its PyTorch peer (same rounds, one thread each by default) and prints a
# markdown table of milliseconds per update round with the ratio.
# Usage: benchmarks/run_offline_bench.sh [threads] [min_time_seconds]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-1}
min_time=${2:-2.0}
source benchmarks/build_bench.sh
build_bench bench_offline
/usr/bin/python3 benchmarks/peer/bench_offline_torch.py --threads "$threads" --min-time "$min_time" --json "$out/offline_torch.json"
OMP_NUM_THREADS=$threads "$build/benchmarks/bench_offline" --benchmark_min_time="$min_time" --benchmark_format=json \
  --benchmark_out="$out/offline_coordiff.json" --benchmark_out_format=json >/dev/null
/usr/bin/python3 - "$out/offline_torch.json" "$out/offline_coordiff.json" <<'PY'
import sys
sys.path.insert(0, "benchmarks/peer")
from bench_report import load, pairs
peer, ours, machine = load(sys.argv[1], sys.argv[2])
print(machine + "\n")
print("| round | coordiff ms | PyTorch ms | speed-up | coordiff GFLOP/s |")
print("|---|---:|---:|---:|---:|")
for name, b, t in pairs(peer, ours):
    ms = b["real_time"]
    print(f"| {name} | {ms:.1f} | {t['ms_per_round']:.1f} | {t['ms_per_round'] / ms:.2f}x | {b['GFLOP/s']:.1f} |")
PY
