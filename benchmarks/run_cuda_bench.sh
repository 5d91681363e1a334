#!/usr/bin/env bash
# GPU benchmark: builds bench_cuda (COORDIFF_CUDA=ON), runs the PyTorch peer on the same GPU (it writes the
# shared weights and a float64 parity sample), then bench_cuda (which checks parity before timing), and
# prints a markdown table: CFG steps/s, trajectories/s, speed-up over PyTorch eager and torch.compile,
# achieved TFLOP/s and the fraction of the GPU's FP32 peak.
# Usage: benchmarks/run_cuda_bench.sh [min_time_seconds] [--tf32]
# Needs nvcc, a GPU and python3 with torch (CUDA). Set COORDIFF_SKIP_DEPS=1 where apt is unavailable and
# CMAKE_PREFIX_PATH to unpacked dependencies.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
min_time=${1:-1.0}
tf32=${2:-}
[ "${COORDIFF_SKIP_DEPS:-0}" = 1 ] || scripts/install_deps.sh bench
build=${COORDIFF_BENCH_BUILD_DIR:-build/bench-cuda}
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc_bin" \
  -DCOORDIFF_BUILD_BENCHMARKS=ON -DCOORDIFF_BUILD_TESTS=OFF -DCOORDIFF_BUILD_EXAMPLES=OFF -DCOORDIFF_BUILD_APPS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_cuda
out="${COORDIFF_BENCH_OUT:-$build/results}"
mkdir -p "$out"
python=${COORDIFF_PYTHON:-python3}
"$python" benchmarks/peer/bench_cuda_torch.py --min-time "$min_time" ${tf32:+--tf32} \
  --weights "$out/cuda_weights.npz" --json "$out/cuda_torch.json"
"$build/benchmarks/bench_cuda" --weights="$out/cuda_weights.npz" ${tf32:+--tf32} --benchmark_min_time="${min_time}s" \
  --benchmark_format=json --benchmark_out="$out/cuda_coordiff.json" --benchmark_out_format=json >/dev/null
"$python" - "$out/cuda_torch.json" "$out/cuda_coordiff.json" <<'PY'
import json, sys
peer, ours = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
# FP32 (non-tensor-core) peaks, TFLOP/s; TF32 tensor-core dense peaks in brackets in the header.
peaks = {"H100": 67.0, "H200": 67.0, "A100": 19.5}
peak = next((v for k, v in peaks.items() if k in peer["device"]), None)
print(f"{peer['device']}, CUDA {peer['driver']}, torch {peer['torch']}, TF32 {'on' if peer['tf32'] else 'off'}\n")
torch_runs = {(r["variant"], r["horizon"], r["batch"]): r for r in peer["runs"]}
print("| H | batch | coordiff CFG steps/s | trajectories/s | PyTorch eager steps/s | speed-up | torch.compile steps/s | speed-up | coordiff TFLOP/s | of FP32 peak |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for b in ours["benchmarks"]:
    parts = b["name"].split("/")
    if parts[1] != "cfg_ddim":
        continue
    H, B = int(parts[2]), int(parts[3].split("/")[0])
    steps = b["items_per_second"]
    eager = torch_runs.get(("eager", H, B))
    comp = torch_runs.get(("compile", H, B))
    flops = peer["flops_per_sample"][str(H)] * 2 * B  # both guidance branches per step
    tflops = steps * flops / 1e12
    row = [H, B, f"{steps:.1f}", f"{b['trajectories/s']:.0f}",
           f"{eager['cfg_steps_per_s']:.1f}" if eager else "—", f"{steps / eager['cfg_steps_per_s']:.2f}x" if eager else "—",
           f"{comp['cfg_steps_per_s']:.1f}" if comp else "—", f"{steps / comp['cfg_steps_per_s']:.2f}x" if comp else "—",
           f"{tflops:.2f}", f"{100 * tflops / peak:.1f} %" if peak else "—"]
    print("| " + " | ".join(map(str, row)) + " |")
PY
