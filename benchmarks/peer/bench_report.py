"""Shared by the run_*_bench.sh scripts: pairs each Google Benchmark result of coordiff with the PyTorch
peer's run of the same name and describes the machine, for their markdown tables."""
import json
import re


def load(peer_path, ours_path):
    """(peer JSON, coordiff JSON, the 'machine: ...' line)."""
    peer = json.load(open(peer_path))
    ours = json.load(open(ours_path))
    ctx = ours["context"]
    machine = (f"machine: {ctx.get('host_name', '?')}, {ctx['num_cpus']} CPUs @ {ctx['mhz_per_cpu']} MHz; "
               f"threads {peer['threads']}; torch {peer['torch']}")
    return peer, ours, machine


def pairs(peer, ours):
    """(name, coordiff benchmark, peer run) for every benchmark the peer ran too."""
    torch = {r["name"]: r for r in peer["runs"]}
    for b in ours["benchmarks"]:
        name = re.sub(r"/(min_time:[0-9.]+|real_time)", "", b["name"])
        if name in torch:
            yield name, b, torch[name]
