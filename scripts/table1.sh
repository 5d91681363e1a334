#!/usr/bin/env bash
# The Table-1 experiment: offline MARL learners (MA-TD3+BC, OMAR, CFCQL) trained on original and
# augmented (MASTARS-LOV, MASTARS-SG, Joint) Spread datasets, plus the generation-order ablation, over
# seeds; writes docs/results.md. Installs what is missing and builds the tool for this CPU first.
#   scripts/table1.sh [coordiff table1 flags...]
# Defaults: Spread x {medium-replay, medium} x {td3bc, omar, cfcql} x seeds {0, 1, 2}, 1000 generated
# windows at epsilon 0.03 per augmented dataset, two cells at a time. The measurements (each cell's result,
# each augmentation's report) are kept in docs/results/table1 with the report; the datasets and models they
# need are made under runs/table1, only when a missing cell needs them. It resumes: every file that exists
# is kept, so re-running after an interruption continues where it stopped, and deleting one cell's JSON
# re-makes that cell alone. Expect hours on a 2-core machine (docs/results.md
# lists the wall time per cell).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install_deps.sh demo
build=${COORDIFF_BUILD_DIR:-build/table1}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_BUILD_TESTS=OFF -DCOORDIFF_BUILD_EXAMPLES=OFF \
  -DCOORDIFF_BUILD_APPS=ON -DCOORDIFF_NATIVE=ON
cmake --build "$build" -j"$(nproc)" --target coordiff_cli
# The harness re-runs its own binary for every step: keep a copy, so rebuilding during a run is harmless.
mkdir -p runs/bin
cp "$build/apps/coordiff" runs/bin/coordiff.tmp && mv runs/bin/coordiff.tmp runs/bin/coordiff
exec runs/bin/coordiff table1 --dir runs/table1 --records docs/results/table1 --jobs "$(nproc)" --out docs/results.md "$@"
