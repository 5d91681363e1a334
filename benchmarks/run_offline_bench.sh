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
import json, re, sys
peer = json.load(open(sys.argv[1]))
torch = {r["name"]: r for r in peer["runs"]}
ours = json.load(open(sys.argv[2]))
ctx = ours["context"]
print(f"machine: {ctx.get('host_name','?')}, {ctx['num_cpus']} CPUs @ {ctx['mhz_per_cpu']} MHz; threads {peer['threads']}; torch {peer['torch']}\n")
print("| round | coordiff ms | PyTorch ms | speed-up | coordiff GFLOP/s |")
print("|---|---:|---:|---:|---:|")
for b in ours["benchmarks"]:
    name = re.sub(r"/(min_time:[0-9.]+|real_time)", "", b["name"])
    t = torch.get(name)
    if t is None:
        continue
    ms = b["real_time"]
    print(f"| {name} | {ms:.1f} | {t['ms_per_round']:.1f} | {t['ms_per_round'] / ms:.2f}x | {b['GFLOP/s']:.1f} |")
PY
