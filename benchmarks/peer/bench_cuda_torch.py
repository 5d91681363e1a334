#!/usr/bin/python3
"""PyTorch twin of benchmarks/bench_cuda.cu on the same GPU: the MADiff-size MultiAgentUNet (dim 128, mults
(1, 4, 8), 3 agents, 18 features, return conditioning; tools/golden/torch_unet.py, identical state_dict
names) sampling with 20 DDIM steps of a 200-step cosine schedule under classifier-free guidance (w 1.2,
both branches as one doubled batch per step, x0^ clipped to [-1, 1]), and its forward pass alone, at
horizons 8 and 24 and batches 1, 32, 256, 1024; eager and (where it compiles) torch.compile.

Writes per horizon the weights ("h<H>.param.*") and a parity sample ("h<H>.parity.x/t/returns/out", the
output computed in float64) to --weights, timings to --json. TF32 is off unless --tf32.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_nn_torch as bnt  # noqa: E402  (network module `tu`, count_flops)

tu = bnt.tu

A, F = 3, 18
K, STEPS, W = 200, 20, 1.2


def build(horizon):
    torch.manual_seed(0)
    m = tu.MultiAgentUNet(horizon, F, A, dim=128, dim_mults=(1, 4, 8), kernel_size=5, groups=8, returns_condition=True)
    with torch.no_grad():
        for mod in m.self_attn:
            mod.gamma.fill_(0.5)  # attention active, as in a trained model
    return m.float().eval()


def cosine_alpha_bars(n, offset=0.008, max_beta=0.999):
    f = lambda s: math.cos((s + offset) / (1.0 + offset) * 1.5707963267948966) ** 2  # noqa: E731
    out, prod = [], 1.0
    for k in range(n):
        prod *= 1.0 - min(1.0 - f((k + 1) / n) / f(k / n), max_beta)
        out.append(prod)
    return out


def sampler(m, abar, levels):
    def run(x, returns):
        B = x.shape[0]
        r2 = torch.cat([returns, returns])
        keep = torch.cat([torch.ones_like(returns), torch.zeros_like(returns)])
        for e, k in enumerate(levels):
            prev = levels[e + 1] if e + 1 < len(levels) else -1
            ab, ab_prev = abar[k], (abar[prev] if prev >= 0 else 1.0)
            t = torch.full((2 * B,), float(k), device=x.device)
            out = m(torch.cat([x, x]), t, r2, keep)
            eps = out[B:] + W * (out[:B] - out[B:])
            x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev, 0.0)) * eps
        return x
    return run


def time_cuda(fn, min_time):
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    sync()
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        sync()
        reps += 1
        el = time.perf_counter() - start
        if (el >= min_time and reps >= 3) or el >= 4 * min_time:
            return el / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--horizons", default="8,24")
    ap.add_argument("--batches", default="1,32,256,1024")
    ap.add_argument("--compile-batches", default="256,1024", help="batches also timed with torch.compile ('' = none)")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--device", default="cuda", help="cpu only to smoke-test this script")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    dev = torch.device(a.device)
    abar = cosine_alpha_bars(K)
    levels = sorted({i * (K // STEPS) for i in range(STEPS)}, reverse=True)  # TimestepPlan::strided, leading
    out, results = {}, {"torch": torch.__version__, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "tf32": a.tf32,
                        "driver": torch.version.cuda, "flops_per_sample": {}, "runs": []}
    compile_batches = {int(b) for b in a.compile_batches.split(",") if b}
    for H in (int(h) for h in a.horizons.split(",")):
        m = build(H)
        g = torch.Generator().manual_seed(H)
        x = torch.randn(4, H, A, F, generator=g)
        t = torch.tensor([3.0, 50.0, 120.0, 199.0])
        r = torch.randn(4, A, generator=g)
        with torch.no_grad():
            ref = m.double().to(dev)(x.double().to(dev), t.double().to(dev), r.double().to(dev)).cpu()
        m = m.float()
        for k, v in m.state_dict().items():
            out[f"h{H}.param.{k}"] = v.cpu().numpy()
        out[f"h{H}.parity.x"], out[f"h{H}.parity.t"], out[f"h{H}.parity.returns"] = x.numpy(), t.numpy(), r.numpy()
        out[f"h{H}.parity.out"] = ref.numpy()
        flops = bnt.count_flops(m.cpu(), (x[:1], t[:1], r[:1]))
        results["flops_per_sample"][str(H)] = flops
        m = m.to(dev)
        variants = [("eager", m)]
        if compile_batches:
            try:
                variants.append(("compile", torch.compile(m, mode="max-autotune-no-cudagraphs")))
            except Exception as e:  # noqa: BLE001
                print(f"torch.compile unavailable: {e}", flush=True)
        for name, model in variants:
            for B in (int(b) for b in a.batches.split(",")):
                if name == "compile" and B not in compile_batches:
                    continue
                xs = torch.randn(B, H, A, F, device=dev)
                ret = torch.full((B, A), 0.9, device=dev)
                tt = torch.full((B,), 50.0, device=dev)
                run = sampler(model, abar, levels)
                try:
                    with torch.no_grad():
                        sec = time_cuda(lambda: run(xs, ret), a.min_time)
                        fwd = time_cuda(lambda: model(xs, tt, ret), a.min_time)
                except Exception as e:  # noqa: BLE001
                    print(f"torch {name} H={H} B={B} failed: {e}", flush=True)
                    continue
                results["runs"].append({"variant": name, "horizon": H, "batch": B, "cfg_steps_per_s": STEPS / sec,
                                        "trajectories_per_s": B / sec, "forward_s": fwd})
                print(f"torch {name} H={H} B={B}: {STEPS / sec:.1f} CFG steps/s, {B / sec:.0f} trajectories/s, "
                      f"forward {fwd * 1e3:.3f} ms", flush=True)
    np.savez(a.weights, **out)
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
