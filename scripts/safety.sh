#!/usr/bin/env bash
# The paper-001 measurement: behaviour data with costs, two diffusion planners per task (return-conditioned
# = unconstrained; (CBF satisfaction, return)-conditioned = paper 001) with their CBF, then closed-loop
# episodes of every planner variant and of the nominal controller over seeds. Tasks: the multi-agent double
# integrator (one per team size, results in docs/results/safety/N<agents>/) and SafeSpread (3 agents,
# docs/results/safety/safe_spread/). Existing result files are kept (the script resumes); the datasets and
# models go to runs/safety.
#   scripts/safety.sh [--task double-integrator|safe-spread] [--agents "4 8"] [--seeds "0 1 2"] [--episodes 100]
#                     [--data-episodes N (double integrator 500, SafeSpread 1000)]
#                     [--conditions "return cbf_return cbf_expectile cbf_cost_return"] (models to train; rows of
#                      missing ones are skipped; cbf_cost_return: the CBF condition labelled by cost, not trained
#                      by default)
#                     [--train-steps N] (diffusion steps; other than the config's, the work and record folders get a
#                      _steps<N> suffix). Diffusion training resumes from its checkpoint, so a stopped run continues.
#                     [--rows "unconstrained cbf_conditioned ..."] (rows to run; default all; the *_shield rows add
#                      the braking shield, plan --shield 1; the *_cbf_shield rows the learned CBF as a CBF-QP shield,
#                      plan --cbf-shield 1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
task=double-integrator; agents="4 8"; seeds="0 1 2"; episodes=100; data_episodes=""
conditions="return cbf_return cbf_expectile"; train_steps=""
all_rows="nominal unconstrained cbf_conditioned cbf_guided cbf_guided_g10 cbf_guided_filtered cbf_expectile cbf_expectile_guided_g10 cbf_cost_conditioned cbf_cost_guided_g10 nominal_shield unconstrained_shield cbf_conditioned_shield cbf_cost_conditioned_shield nominal_cbf_shield unconstrained_cbf_shield cbf_conditioned_cbf_shield"
rows=$all_rows
while [ $# -gt 0 ]; do
  case "$1" in
    --task) task=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --episodes) episodes=$2; shift 2 ;;
    --data-episodes) data_episodes=$2; shift 2 ;;
    --conditions) conditions=$2; shift 2 ;;
    --train-steps) train_steps=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    *) echo "safety.sh: unknown flag '$1'" >&2; exit 2 ;;
  esac
done
case "$task" in
  double-integrator) config=data/safety/double_integrator.json; target=0; data_episodes=${data_episodes:-500} ;;
  safe-spread) config=data/safety/safe_spread.json; target=1; data_episodes=${data_episodes:-1000}; agents=3 ;;
  *) echo "safety.sh: --task must be double-integrator or safe-spread, got '$task'" >&2; exit 2 ;;
esac
for row in $rows; do
  case " $all_rows " in *" $row "*) ;; *) echo "safety.sh: --rows takes $all_rows; got '$row'" >&2; exit 2 ;; esac
done
config_steps=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["diffusion"]["train_steps"])' "$config")
case "$train_steps" in
  ""|"$config_steps") train_steps=$config_steps; suffix="" ;;
  *[!0-9]*|0) echo "safety.sh: --train-steps must be a positive integer, got '$train_steps'" >&2; exit 2 ;;
  *) suffix=_steps$train_steps ;;
esac
scripts/install_deps.sh demo
build=${COORDIFF_BUILD_DIR:-build/table1}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOORDIFF_BUILD_TESTS=OFF -DCOORDIFF_BUILD_EXAMPLES=OFF \
  -DCOORDIFF_BUILD_APPS=ON -DCOORDIFF_NATIVE=ON > /dev/null
cmake --build "$build" -j"$(nproc)" --target coordiff_cli
tool="$build/apps/coordiff"
# A model is trained once its diffusion part has run --train-steps and train-aux has written its inverse
# dynamics into the report. Each part is trained only when missing: a second train-aux would warm-start the
# auxiliary models of a model copied from a shorter run, mixing a second change into a comparison.
report_has() {  # model dir, "diffusion" or "auxiliary"
  [ -f "$1/report.json" ] && python3 - "$1/report.json" "$train_steps" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if sys.argv[3] == "diffusion":
    sys.exit(0 if r.get("diffusion", {}).get("steps", 0) >= int(sys.argv[2]) else 1)
sys.exit(0 if "inverse_dynamics" in r.get("auxiliary", {}) else 1)
PY
}
trained() { report_has "$1" diffusion && report_has "$1" auxiliary; }
# One thread per process: the networks are small, and runs share the machine with other jobs.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for n in $agents; do
  if [ "$task" = safe-spread ]; then
    work=runs/safety/safe_spread$suffix; records=docs/results/safety/safe_spread$suffix; team=()
  else
    work=runs/safety/N$n$suffix; records=docs/results/safety/N$n$suffix; team=(--agents "$n")
  fi
  mkdir -p "$work" "$records"
  data=$work/noisy.npz
  [ -f "$data" ] || "$tool" gen-data --env "$task" --quality noisy "${team[@]}" --episodes "$data_episodes" \
    --seed 100 --out "$data"
  # return: the unconstrained planner; cbf_return: paper 001's (CBF, return-to-go) condition; cbf_expectile:
  # the same with the expectile return of eqs. 15-16.
  for cond in $conditions; do
    case "$cond" in return|cbf_return|cbf_expectile|cbf_cost_return) ;;
      *) echo "safety.sh: --conditions takes return, cbf_return, cbf_expectile, cbf_cost_return; got '$cond'" >&2
         exit 2 ;;
    esac
    model=$work/model_$cond
    if ! report_has "$model" diffusion; then
      python3 - "$config" "$cond" "$work/config_$cond.json" "$train_steps" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); cond = sys.argv[2]
c["diffusion"]["train_steps"] = int(sys.argv[4])
c["safety"]["condition"] = "return" if cond == "return" else "cbf_return"
if cond == "cbf_expectile":
    c["safety"]["return_value"] = "expectile"
if cond == "cbf_cost_return":
    c["safety"]["cbf_label"] = "cost"
json.dump(c, open(sys.argv[3], "w"), indent=1)
PY
      "$tool" train-diffusion --dataset "$data" --model "$model" --config "$work/config_$cond.json" --resume 1
    fi
    report_has "$model" auxiliary || "$tool" train-aux --dataset "$data" --model "$model"
  done
  for seed in $seeds; do
    run() {  # name, then plan flags
      local name=$1; shift
      case " $rows " in *" $name "*) ;; *) return 0 ;; esac
      # A row whose model is not trained (see --conditions) is skipped.
      local args=("$@") i
      for ((i = 0; i + 1 < ${#args[@]}; i++)); do
        if [ "${args[i]}" = --model ] && ! trained "${args[i+1]}"; then return 0; fi
      done
      local out=$records/${name}_s$seed.json
      [ -f "$out" ] || "$tool" plan --env "$task" "${team[@]}" --episodes "$episodes" --seed "$seed" \
        --target-return "$target" --out "$out" "$@"
    }
    run nominal --planner nominal
    run unconstrained --planner diffusion --model "$work/model_return"
    run cbf_conditioned --planner diffusion --model "$work/model_cbf_return"
    run cbf_guided --planner guided --model "$work/model_cbf_return"
    run cbf_guided_g10 --planner guided --cbf-guidance 10 --model "$work/model_cbf_return"
    run cbf_guided_filtered --planner guided-filtered --model "$work/model_cbf_return"
    run cbf_expectile --planner diffusion --model "$work/model_cbf_expectile"
    run cbf_expectile_guided_g10 --planner guided --cbf-guidance 10 --model "$work/model_cbf_expectile"
    run cbf_cost_conditioned --planner diffusion --model "$work/model_cbf_cost_return"
    run cbf_cost_guided_g10 --planner guided --cbf-guidance 10 --model "$work/model_cbf_cost_return"
    # The braking shield: a model-based CBF-QP on every action, beyond paper 001.
    run nominal_shield --planner nominal --shield 1
    run unconstrained_shield --planner diffusion --shield 1 --model "$work/model_return"
    run cbf_conditioned_shield --planner diffusion --shield 1 --model "$work/model_cbf_return"
    run cbf_cost_conditioned_shield --planner diffusion --shield 1 --model "$work/model_cbf_cost_return"
    # The model's learned CBF as a CBF-QP shield on every action (every model of a task has the same CBF).
    run nominal_cbf_shield --planner nominal --cbf-shield 1 --model "$work/model_cbf_return"
    run unconstrained_cbf_shield --planner diffusion --cbf-shield 1 --model "$work/model_return"
    run cbf_conditioned_cbf_shield --planner diffusion --cbf-shield 1 --model "$work/model_cbf_return"
  done
done
echo "safety.sh: results in docs/results/safety"
