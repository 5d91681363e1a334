#!/usr/bin/env python3
"""Prints the markdown table of docs/safety.md from the plan results under docs/results/safety/N<agents>/
(the double integrator) and docs/results/safety/safe_spread/, each with an optional _steps<S> suffix for
models trained S diffusion steps (<variant>_s<seed>.json, written by scripts/safety.sh): per task and variant, mean +- std over the seeds found (population std), each seed's
value of 100 or more episodes pooled into its mean. "safe % of safe starts" leaves out the episodes whose
reset state is already dangerous (recorded by plan since the shield; — in older records)."""
import functools
import json
import pathlib
import re
import statistics
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/safety")
variants = [("unconstrained", "unconstrained diffusion (return-conditioned)"),
            ("cbf_conditioned", "CBF-conditioned (paper 001)"),
            ("cbf_guided", "CBF-conditioned + CBF guidance"),
            ("cbf_guided_g10", "CBF-conditioned + CBF guidance, scale 10"),
            ("cbf_guided_filtered", "CBF-conditioned + guidance + CBF filter"),
            ("cbf_expectile", "CBF-conditioned, expectile return (eqs. 15-16)"),
            ("cbf_expectile_guided_g10", "CBF-conditioned, expectile return + CBF guidance, scale 10"),
            ("cbf_cost_conditioned", "CBF-conditioned, cost label"),
            ("cbf_cost_guided_g10", "CBF-conditioned, cost label + CBF guidance, scale 10"),
            ("nominal", "nominal controller"),
            ("nominal_shield", "nominal controller + braking shield"),
            ("unconstrained_shield", "unconstrained diffusion + braking shield"),
            ("cbf_conditioned_shield", "CBF-conditioned (paper 001) + braking shield"),
            ("cbf_cost_conditioned_shield", "CBF-conditioned, cost label + braking shield"),
            ("nominal_cbf_shield", "nominal controller + learned-CBF shield"),
            ("unconstrained_cbf_shield", "unconstrained diffusion + learned-CBF shield"),
            ("cbf_conditioned_cbf_shield", "CBF-conditioned (paper 001) + learned-CBF shield")]


def cell(values, scale=1.0, digits=1):
    if not values:
        return "—"
    m = statistics.fmean(values) * scale
    s = statistics.pstdev(values) * scale if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"


print("| task | planner | seeds | safe episodes % | safe % of safe starts | cost / episode | normalised return | "
      "plan ms / env step |")
print("|---|---|---|---:|---:|---:|---:|---:|")

def task_of(folder):
    """(sort key, label, folder) of a results folder, or None for other folders."""
    m = re.fullmatch(r"(?:N(\d+)|safe_spread)(?:_steps(\d+))?", folder.name)
    if not m or not folder.is_dir():
        return None
    agents, steps = m.group(1), m.group(2)
    label = f"DI N = {agents}" if agents else "SafeSpread"
    if steps:
        label += f", {int(steps):,} steps"
    return (int(agents) if agents else 10**6, int(steps or 0)), label, folder


@functools.lru_cache(maxsize=None)
def recorded_starts(team, seed, episodes):
    """The episodes' start costs from any record of the task and seed that has them for this many episodes
    (the reset states depend only on the seed and the episode), or None."""
    for p in sorted(team.glob(f"*_s{seed}.json")):
        starts = json.loads(p.read_text())["result"].get("start_costs")
        if starts and len(starts) == episodes:
            return tuple(starts)
    return None


def with_starts(team, seed, result):
    """Adds the safe rate of safe starts to an older record that lacks it."""
    starts = recorded_starts(team, seed, len(result["costs"]))
    if starts:
        kept = [c for c, s in zip(result["costs"], starts) if s == 0]
        if kept:
            result["safe_rate_of_safe_starts"] = sum(c == 0 for c in kept) / len(kept)


tasks = sorted((t for t in map(task_of, root.iterdir()) if t), key=lambda t: t[0]) if root.is_dir() else []
for _, name, team in tasks:
    for key, label in variants:
        runs = sorted(p for p in team.glob(f"{key}_s*.json") if re.fullmatch(rf"{key}_s\d+\.json", p.name))
        if not runs:
            continue
        rs = [json.loads(p.read_text()) for p in runs]
        seeds = ",".join(str(r["seed"]) for r in rs)
        res = [r["result"] for r in rs]
        for r, x in zip(rs, res):
            if "safe_rate_of_safe_starts" not in x:
                with_starts(team, r["seed"], x)
        print(f"| {name} | {label} | {seeds} ({res[0]['episodes']} ep.) | "
              f"{cell([x['safe_rate'] for x in res], 100)} | "
              f"{cell([x['safe_rate_of_safe_starts'] for x in res if 'safe_rate_of_safe_starts' in x], 100)} | "
              f"{cell([x['mean_cost'] for x in res], 1, 2)} | "
              f"{cell([x['normalised_return'] for x in res])} | "
              f"{cell([x['plan_ms_per_step'] for x in res]) if key != 'nominal' and key != 'nominal_shield' else '—'} |")
