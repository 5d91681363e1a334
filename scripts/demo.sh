#!/usr/bin/env bash
# Installs what is missing, builds the coordiff tool and runs the main job on the bundled data: MASTARS
# augmentation (last-observation-value order) of the Spread medium-replay dataset with the bundled
# models, writing the augmented dataset, a JSON report and an SVG figure.
#   scripts/demo.sh [--train] [--num N]
#     --train  retrain the diffusion and auxiliary models from scratch (bundled config) before augmenting
#     --num N  windows to generate (default 500)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
train=0
num=500
while [ $# -gt 0 ]; do
  case "$1" in
    --train) train=1; shift ;;
    --num) num=${2:?--num needs a value}; shift 2 ;;
    *) echo "demo.sh: unknown flag '$1' (expected --train or --num N)" >&2; exit 2 ;;
  esac
done
scripts/install_deps.sh demo
build=${COORDIFF_BUILD_DIR:-build/demo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_BUILD_TESTS=OFF -DCOORDIFF_BUILD_EXAMPLES=OFF \
  -DCOORDIFF_BUILD_APPS=ON
cmake --build "$build" -j"$(nproc)" --target coordiff_cli
tool="$build/apps/coordiff"
out=${COORDIFF_DEMO_OUT:-$root/coordiff-demo-out}
mkdir -p "$out"
data="$root/data/spread_medium_replay.npz"
model="$root/data/mastars/spread_medium_replay"
if [ "$train" = 1 ]; then
  echo "coordiff demo: retraining the models into $out/model (bundled config)"
  rm -rf "$out/model"
  "$tool" train-aux --dataset "$data" --model "$out/model" --config "$model/config.json"
  "$tool" train-diffusion --dataset "$data" --model "$out/model"
  model="$out/model"
fi
start=$(date +%s)
"$tool" augment --dataset "$data" --model "$model" --order lov --num "$num" --seed 0 --out "$out/aug.npz"
echo "coordiff demo: augmentation took $(( $(date +%s) - start )) s"
"$tool" inspect "$out/aug.npz"
echo "demo outputs are in $out: aug.npz (original + generated windows), aug.json (report), aug.svg (figure)"
