#!/usr/bin/python3
"""PyTorch twin of benchmarks/bench_nn.cpp: the same U-Nets (MADiff MPE denoiser: dim 128, mults (1,4,8),
3 agents, 18 features, horizon 8), the same weights and batches, forward and forward+backward timings.

Writes the weights plus a parity sample (inputs and outputs) to --weights so the C++ benchmark checks that
it computes the same thing before timing, and the timings (+ FLOP counts) as JSON to --json.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "golden"))
import torch_unet as tu  # noqa: E402

H, F, A = 8, 18, 3


def build():
    torch.manual_seed(0)
    multi = tu.MultiAgentUNet(H, F, A, dim=128, dim_mults=(1, 4, 8), returns_condition=True).float()
    single = tu.TemporalUNet(H, F, dim=128, dim_mults=(1, 4, 8), returns_condition=True).float()
    with torch.no_grad():
        for i, m in enumerate(multi.self_attn):
            m.gamma.fill_(0.1 * (i + 1))  # attention active, as in a trained model
    return multi, single


def count_flops(model, args):
    """Multiply-adds x 2 of convolutions, linear layers and attention products for one forward call."""
    macs = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0]
        if isinstance(m, nn.ConvTranspose1d):
            macs[0] += inp[0].numel() * m.out_channels * k
        else:
            macs[0] += out.numel() * (m.in_channels // m.groups) * k

    def lin_hook(m, inp, out):
        macs[0] += out.numel() * m.in_features

    def attn_hook(m, inp, out):
        B, Aa, C, L = inp[0].shape
        qk = m.query_layer.out_channels
        macs[0] += B * Aa * Aa * (qk * L + C * L)  # QK^T and PV

    hs = []
    for mod in model.modules():
        if isinstance(mod, (nn.Conv1d, nn.ConvTranspose1d)):
            hs.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hs.append(mod.register_forward_hook(lin_hook))
        elif isinstance(mod, tu.AgentSelfAttention):
            hs.append(mod.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(*args)
    for h in hs:
        h.remove()
    return 2 * macs[0]


def inputs(which, B, g):
    if which == "multi":
        return (torch.randn(B, H, A, F, generator=g), torch.full((B,), 17.0), torch.full((B, A), 0.9))
    return (torch.randn(B, H, F, generator=g), torch.full((B,), 17.0), torch.full((B, 1), 0.9))


def time_it(fn, min_time):
    fn()  # warm-up
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        el = time.perf_counter() - start
        if el >= min_time and reps >= 3 or el >= 4 * min_time:
            return el / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--min-time", type=float, default=2.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    multi, single = build()
    g = torch.Generator().manual_seed(1)
    out = {}
    for name, m in (("multi", multi), ("single", single)):
        for k, v in m.state_dict().items():
            out[f"{name}.param.{k}"] = v.numpy()
        x, t, r = inputs(name, 2, g)
        with torch.no_grad():
            y = m(x, t, r)
        out[f"{name}.input.x"], out[f"{name}.input.time"], out[f"{name}.input.returns"] = x.numpy(), t.numpy(), r.numpy()
        out[f"{name}.output.y"] = y.double().numpy()
    np.savez(a.weights, **out)
    results = {"torch": torch.__version__, "threads": a.threads, "runs": []}
    for name, m, label in (("multi", multi, "MultiAgentUNet"), ("single", single, "TemporalUNet")):
        flops = count_flops(m, inputs(name, 1, g))
        for B in (int(b) for b in a.batches.split(",")):
            args = inputs(name, B, g)
            dy = torch.randn(m(*args).shape, generator=g)

            def fwd():
                with torch.no_grad():
                    m(*args)

            def fwd_bwd():
                m.zero_grad(set_to_none=True)
                xs = args[0].clone().requires_grad_(True)
                m(xs, *args[1:]).backward(dy)

            for mode, fn, mult in (("forward", fwd, 1), ("forward_backward", fwd_bwd, 3)):
                sec = time_it(fn, a.min_time)
                results["runs"].append({"name": f"{label}/{mode}/{B}", "seconds": sec, "flops": mult * flops * B})
                print(f"torch {label}/{mode}/{B}: {sec * 1e3:.2f} ms, {mult * flops * B / sec / 1e9:.1f} GFLOP/s", flush=True)
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
