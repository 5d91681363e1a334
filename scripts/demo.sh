#!/usr/bin/env bash
# Installs what is missing, builds the examples and runs the main job on its embedded default data.
# For now: trains a small temporal U-Net denoiser on toy 2-D trajectories and prints the loss falling.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install_deps.sh demo
build=${COORDIFF_BUILD_DIR:-build/demo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_BUILD_TESTS=OFF -DCOORDIFF_BUILD_EXAMPLES=ON
cmake --build "$build" -j"$(nproc)" --target train_toy_denoiser
out=${COORDIFF_DEMO_OUT:-$root/coordiff-demo-out}
"$build/examples/train_toy_denoiser" --out "$out" "$@"
echo "demo outputs are in $out"
