#!/usr/bin/python3
"""PyTorch twin of benchmarks/bench_sampling.cpp: reverse DDPM steps (one forward + the ancestral update),
classifier-free-guided DDPM steps (two forwards + combination + update) and, for reference, the plain
forward of a small MASTARS-like MultiAgentUNet (dim 32, mults (1, 2, 4), 3 agents, 18 features, horizon 8,
return conditioning) under the cosine schedule with 100 training steps, 10 strided levels per timed call,
batches 1, 32 and 256.

The network comes from bench_nn_torch.py's model module (tools/golden/torch_unet.py, identical state_dict
names). Writes the weights plus a parity sample to --weights: a two-step walk (levels k1 -> k2 -> clean)
with and without guidance, whose step noise is drawn from the same counter-based Philox4x32-10 streams as
coordiff's diffusion::SampleNoise, so the C++ benchmark can check that it computes the same thing before
timing. Timed calls draw their noise with torch.randn. Timings go to --json.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_nn_torch as bnt  # noqa: E402  (network module `tu`, time_it, count_flops)

H, F, A = bnt.H, bnt.F, bnt.A  # 8, 18, 3: the MPE shapes of bench_nn
K = 100                 # cosine schedule length
STEPS_PER_CALL = 10     # reverse steps per timed call
GUIDANCE_W = 1.2        # MADiff's classifier-free guidance weight
NOISE_SEED = 5          # SampleNoise seed of the parity sample
PARITY_LEVELS = (63, 21)
PURPOSE_STEP = 1        # diffusion::NoisePurpose::Step


def build():
    torch.manual_seed(0)
    m = bnt.tu.MultiAgentUNet(H, F, A, dim=32, dim_mults=(1, 2, 4), kernel_size=5, groups=8,
                              returns_condition=True).float()
    with torch.no_grad():
        for mod in m.self_attn:
            mod.gamma.fill_(0.5)  # attention active, as in a trained model
    return m.eval()


def cosine_alpha_bars(n, offset=0.008, max_beta=0.999):
    """schedule::Cosine: abar(s) = cos^2((s + offset)/(1 + offset) pi/2), beta capped, running product."""
    f = lambda s: math.cos((s + offset) / (1.0 + offset) * 1.5707963267948966) ** 2  # noqa: E731
    betas = [min(1.0 - f((k + 1) / n) / f(k / n), max_beta) for k in range(n)]
    out, prod = [], 1.0
    for b in betas:
        prod *= 1.0 - b
        out.append(prod)
    return out


def strided_levels(n_train, n_steps):
    """TimestepPlan::strided with Spacing::Leading, highest level first."""
    return sorted({i * (n_train // n_steps) for i in range(n_steps)}, reverse=True)


# ---- coordiff's SampleNoise (Philox4x32-10 + Box-Muller), only for the parity sample -----------------
_M32 = np.uint64(0xFFFFFFFF)


def _philox_normal4(seed, stream, blocks):
    """Normals of Philox blocks `blocks` of stream (seed, stream) -> [len(blocks), 4] float64."""
    blocks = np.asarray(blocks, dtype=np.uint64)
    c0, c1 = blocks & _M32, blocks >> np.uint64(32)
    c2 = np.full_like(blocks, np.uint64(stream) & _M32)
    c3 = np.full_like(blocks, np.uint64(stream) >> np.uint64(32))
    k0, k1 = np.uint64(seed) & _M32, np.uint64(seed) >> np.uint64(32)
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
    for r in range(10):
        if r > 0:
            k0, k1 = (k0 + w0) & _M32, (k1 + w1) & _M32
        p0, p1 = m0 * c0, m1 * c2
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _M32, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _M32
    u = lambda bits: (bits.astype(np.float64) + 0.5) * 2.3283064365386963e-10  # noqa: E731
    out = np.empty((len(blocks), 4))
    for lane, (a, b) in enumerate(((c0, c1), (c2, c3))):
        rad, theta = np.sqrt(-2.0 * np.log(u(a))), 6.283185307179586 * u(b)
        out[:, 2 * lane], out[:, 2 * lane + 1] = rad * np.cos(theta), rad * np.sin(theta)
    return out


def sample_noise(seed, shape, purpose, event, first_sample=0, round_=0):
    """diffusion::SampleNoise(seed, first_sample, round_).normal<float>(shape, purpose, event)."""
    B, per = shape[0], int(np.prod(shape[1:]))
    padded = (per + 3) // 4 * 4
    out = np.empty((B, per), dtype=np.float32)
    for b in range(B):
        stream = ((first_sample + b) << 12) | (round_ << 2) | purpose
        blocks = event * padded // 4 + np.arange((per + 3) // 4, dtype=np.uint64)
        out[b] = _philox_normal4(seed, stream, blocks).reshape(-1)[:per]
    return torch.from_numpy(out.reshape(shape))


# ---- the reverse process ---------------------------------------------------------------------------
def model_output(m, x, k, returns, w):
    t = torch.full((x.shape[0],), float(k))
    if w is None:
        return m(x, t, returns)
    cond = m(x, t, returns, torch.ones_like(returns))
    uncond = m(x, t, returns, torch.zeros_like(returns))
    return uncond + w * (cond - uncond)


def ddpm_step(x, eps, ab_t, ab_prev, z):
    """Sampler::step for Solver::Ddpm, Variance::FixedSmall, epsilon prediction, x0^ clipped to [-1, 1]."""
    alpha_t = ab_t / ab_prev
    beta_t = 1.0 - alpha_t
    x0 = ((x - math.sqrt(1.0 - ab_t) * eps) / math.sqrt(ab_t)).clamp(-1.0, 1.0)
    nxt = (math.sqrt(ab_prev) * beta_t / (1.0 - ab_t)) * x0 + (math.sqrt(alpha_t) * (1.0 - ab_prev) / (1.0 - ab_t)) * x
    if ab_prev < 1.0:
        nxt = nxt + math.sqrt(max(beta_t * (1.0 - ab_prev) / (1.0 - ab_t), 1e-20)) * z
    return nxt


def walk(m, x, levels, abar, returns, w, noise):
    """Reverse steps through `levels`, then to clean; noise(event) gives the step noise."""
    for e, k in enumerate(levels):
        prev = levels[e + 1] if e + 1 < len(levels) else -1
        ab_prev = abar[prev] if prev >= 0 else 1.0
        eps = model_output(m, x, k, returns, w)
        z = noise(e, x) if prev >= 0 else None
        x = ddpm_step(x, eps, abar[k], ab_prev, z)
    return x


def parity_walk(m, x, abar, returns, w):
    """As walk() with the step update in float64 and x stored as float32 after each step (as coordiff)."""
    for e, k in enumerate(PARITY_LEVELS):
        prev = PARITY_LEVELS[e + 1] if e + 1 < len(PARITY_LEVELS) else -1
        ab_prev = abar[prev] if prev >= 0 else 1.0
        eps = model_output(m, x, k, returns, w).double()
        z = sample_noise(NOISE_SEED, tuple(x.shape), PURPOSE_STEP, e).double() if prev >= 0 else None
        x = ddpm_step(x.double(), eps, abar[k], ab_prev, z).float()
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--min-time", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = build()
    abar = cosine_alpha_bars(K)
    g = torch.Generator().manual_seed(1)
    out = {f"param.{k}": v.numpy() for k, v in m.state_dict().items()}
    x = torch.randn(2, H, A, F, generator=g)
    returns = torch.tensor([[0.9, 0.5, -0.3], [0.1, 0.8, 0.4]])
    with torch.no_grad():
        out["parity.ddpm"] = parity_walk(m, x, abar, returns, None).double().numpy()
        out["parity.cfg"] = parity_walk(m, x, abar, returns, GUIDANCE_W).double().numpy()
    out["parity.x"], out["parity.returns"] = x.numpy(), returns.numpy()
    out["parity.levels"] = np.array(PARITY_LEVELS, dtype=np.int64)
    np.savez(a.weights, **out)

    flops = bnt.count_flops(m, (torch.randn(1, H, A, F, generator=g), torch.full((1,), 17.0), torch.full((1, A), 0.9)))
    levels = strided_levels(K, STEPS_PER_CALL)
    results = {"torch": torch.__version__, "threads": a.threads, "forward_flops_per_sample": flops, "runs": []}
    for mode, w in (("forward", None), ("ddpm_step", None), ("cfg_step", GUIDANCE_W)):
        for B in (int(b) for b in a.batches.split(",")):
            x_start = torch.randn(B, H, A, F, generator=g)
            ret = torch.full((B, A), 0.9)
            t50 = torch.full((B,), 50.0)

            def call():
                with torch.no_grad():
                    if mode == "forward":  # the denoiser alone, one forward per call
                        m(x_start, t50, ret)
                    else:
                        walk(m, x_start, levels, abar, ret, w, lambda e, x: torch.randn(x.shape))

            sec = bnt.time_it(call, a.min_time) / (1 if mode == "forward" else STEPS_PER_CALL)
            results["runs"].append({"name": f"Sampling/{mode}/{B}", "seconds_per_step": sec, "steps_per_s": 1.0 / sec,
                                    "rows_steps_per_s": B / sec})
            print(f"torch Sampling/{mode}/{B}: {1.0 / sec:.1f} steps/s, {B / sec:.0f} rows*steps/s", flush=True)
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
