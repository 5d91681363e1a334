#!/usr/bin/python3
"""Generates the PyTorch golden fixtures under tests/fixtures/golden (Debian python3-torch, CPU).

Every layer and network is built in PyTorch with random float32-representable weights and inputs, run in
float64, and its output and gradients (loss = sum(output * upstream)) are stored; see common.py for the key
conventions. Optimizer fixtures replay fixed gradients through torch.optim.
Usage: /usr/bin/python3 tools/golden/gen_golden.py   (also runs gen_layers.py's extra layer cases)
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import f32_round, run_case, save, seeded  # noqa: E402
import gen_layers  # noqa: E402
import torch_unet as tu  # noqa: E402


def perturb_affine(module, g):
    """Moves norm weights away from 1/0 and attention gates away from 0 so they are exercised."""
    gates = 0
    with torch.no_grad():
        for name, p in module.named_parameters():
            if isinstance(dict(module.named_modules()).get(name.rsplit(".", 1)[0]), (nn.GroupNorm, nn.LayerNorm)):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn(p.shape, generator=g))
            if name.endswith("gamma"):
                p.fill_(0.3 + 0.1 * (gates % 4))
                gates += 1


class Wrap(nn.Module):
    """Adapts a module to take (x, t) where t is a non-differentiable second input."""

    def __init__(self, m, fn):
        super().__init__()
        self.m = m
        self.fn = fn

    def forward(self, *args):
        return self.fn(self.m, *args)


def layers():
    seeded(0)  # the modules below draw their default initialisation from torch's global generator
    g = torch.Generator().manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    cases = {
        "layer_linear": (nn.Linear(5, 3), {"x": rnd(2, 4, 5)}),
        "layer_conv1d_k5": (nn.Conv1d(3, 4, 5, padding=2), {"x": rnd(2, 3, 7)}),
        "layer_conv1d_stride_dilation": (nn.Conv1d(4, 6, 3, stride=2, padding=3, dilation=2), {"x": rnd(2, 4, 9)}),
        "layer_conv_transpose1d": (nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1), {"x": rnd(2, 4, 5)}),
        "layer_conv_transpose1d_odd": (nn.ConvTranspose1d(2, 3, 3, stride=3, padding=1, output_padding=2, dilation=2), {"x": rnd(2, 2, 4)}),
        "layer_group_norm": (nn.GroupNorm(8, 16), {"x": rnd(3, 16, 5) * 2 + 1}),
        "layer_layer_norm": (nn.LayerNorm([4, 3]), {"x": rnd(2, 5, 4, 3)}),
        "layer_mish": (nn.Mish(), {"x": rnd(4, 9) * 4}),
        "layer_silu": (nn.SiLU(), {"x": rnd(4, 9) * 4}),
        "layer_relu": (nn.ReLU(), {"x": rnd(4, 9)}),
        "layer_sinusoidal": (tu.SinusoidalPosEmb(16), {"x": torch.tensor([0.0, 1.0, 7.0, 199.0], dtype=torch.float64)}),
        "layer_mlp_relu": (nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)), {"x": rnd(5, 6)}),
    }
    cases["layer_residual_temporal_block"] = (tu.ResidualTemporalBlock(4, 16, 6, 5, groups=4),
                                              {"x": rnd(2, 4, 6), "emb": rnd(2, 6)})
    for name, (m, inputs) in cases.items():
        seeded(1)
        perturb_affine(m, g)
        save(name, run_case(m, inputs))


def attention():
    g = torch.Generator().manual_seed(1)
    seeded(2)
    m = tu.AgentSelfAttention(32, 2, 8, 16, heads=4)
    with torch.no_grad():
        m.gamma.fill_(0.5)
    x = torch.randn(2, 3, 32, 4, generator=g, dtype=torch.float64)
    e = torch.randn(2, 3, 16, generator=g, dtype=torch.float64)
    save("attn_agent", run_case(m, {"x": x, "emb": e}))
    seeded(3)
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_bias.copy_(0.1 * torch.randn(48, generator=g))
        mha.out_proj.bias.copy_(0.1 * torch.randn(16, generator=g))
    x = torch.randn(2, 5, 3, 16, generator=g, dtype=torch.float64)

    def over_axis(mod, x, axis):
        B, T, A, E = x.shape
        if axis == 1:  # attend over time: batch = (B, A)
            z = x.permute(0, 2, 1, 3).reshape(B * A, T, E)
            y = mod(z, z, z, need_weights=False)[0]
            return y.reshape(B, A, T, E).permute(0, 2, 1, 3)
        z = x.reshape(B * T, A, E)
        return mod(z, z, z, need_weights=False)[0].reshape(B, T, A, E)

    save("attn_mhsa_time", run_case(Wrap(mha, lambda m, x: over_axis(m, x, 1)), {"x": x}))
    save("attn_mhsa_agents", run_case(Wrap(mha, lambda m, x: over_axis(m, x, 2)), {"x": x}))


def strip_prefix(d, prefix="param.m."):
    return {("param." + k[len(prefix):] if k.startswith(prefix) else k.replace("grad.param.m.", "grad.param.")): v
            for k, v in d.items()}


def unets():
    g = torch.Generator().manual_seed(4)
    seeded(5)
    # groups=2 keeps >= 8 values per normalisation group at every level: GroupNorm over a handful of values
    # is ill-conditioned and would turn float32 rounding into 1e-3 gradient differences.
    net = tu.TemporalUNet(horizon=8, transition_dim=4, dim=8, dim_mults=(1, 2, 4), groups=2, returns_condition=True)
    perturb_affine(net, g)
    x = torch.randn(3, 8, 4, generator=g, dtype=torch.float64)
    extra = {"time": torch.tensor([0.0, 57.0, 199.0], dtype=torch.float64),
             "returns": f32_round(torch.rand(3, 1, generator=g, dtype=torch.float64)),
             "keep": torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)}
    fn = Wrap(net, lambda m, x: m(x, extra["time"], extra["returns"], extra["keep"]))
    d = strip_prefix(run_case(fn, {"x": x}))
    d.update({"input." + k: v for k, v in extra.items()})
    save("unet_temporal", d)

    seeded(6)
    multi = tu.MultiAgentUNet(horizon=8, transition_dim=5, n_agents=3, dim=16, dim_mults=(1, 2, 4), returns_condition=True)
    perturb_affine(multi, g)
    x = torch.randn(2, 8, 3, 5, generator=g, dtype=torch.float64)
    for name, keep in (("unet_multi_agent", torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])),
                       ("unet_multi_agent_unconditional", torch.zeros(2, 3))):
        extra = {"time": torch.tensor([3.0, 150.0], dtype=torch.float64),
                 "returns": f32_round(torch.rand(2, 3, generator=g, dtype=torch.float64)),
                 "keep": keep.double()}
        fn = Wrap(multi, lambda m, x: m(x, extra["time"], extra["returns"], extra["keep"]))
        d = strip_prefix(run_case(fn, {"x": x}))
        d.update({"input." + k: v for k, v in extra.items()})
        if name.endswith("unconditional"):  # same weights as unet_multi_agent: keep only inputs, output, dx
            d = {k: v for k, v in d.items() if not k.startswith(("param.", "grad.param."))}
        save(name, d)


def optimizers():
    g = torch.Generator().manual_seed(7)
    p0 = [f32_round(torch.randn(3, 4, generator=g, dtype=torch.float64)), f32_round(torch.randn(5, generator=g, dtype=torch.float64))]
    steps = 6
    grads = [[f32_round(torch.randn(p.shape, generator=g, dtype=torch.float64)) for p in p0] for _ in range(steps)]
    out = {"init.0": p0[0], "init.1": p0[1]}
    for s in range(steps):
        out[f"grad.{s}.0"], out[f"grad.{s}.1"] = grads[s]
    configs = {
        "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.05),
        "amsgrad": lambda ps: torch.optim.Adam(ps, lr=3e-2, betas=(0.8, 0.99), amsgrad=True),
    }
    for name, make in configs.items():
        ps = [p.clone().requires_grad_(True) for p in p0]
        opt = make(ps)
        for s in range(steps):
            for p, gr in zip(ps, grads[s]):
                p.grad = gr.clone()
            opt.step()
            for i, p in enumerate(ps):
                out[f"{name}.{s}.{i}"] = p.detach().clone()
    ps = [p.clone().requires_grad_(True) for p in p0]
    for p, gr in zip(ps, grads[0]):
        p.grad = gr.clone()
    out["clip.total_norm"] = torch.nn.utils.clip_grad_norm_(ps, 0.5).reshape(1)
    for i, p in enumerate(ps):
        out[f"clip.grad.{i}"] = p.grad.clone()
    save("optim_adam", out, keep_float64=True)


if __name__ == "__main__":
    layers()
    gen_layers.main()
    attention()
    unets()
    optimizers()
