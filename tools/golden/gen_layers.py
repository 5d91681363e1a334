#!/usr/bin/python3
"""PyTorch golden fixtures for configurations of the basic layers beyond gen_golden.py's layer cases:
no-bias and wider convolutions, a stride-1 transposed convolution, GroupNorm over two trailing dims with
a non-default eps, LayerNorm over one dim, activations across the softplus threshold and into saturation,
MLPs with Mish/SiLU, and the step embedding at large diffusion steps.

Reproducible: the torch seed is set before each module is built (default init draws from it) and inputs
come from a dedicated generator, so rerunning rewrites byte-identical arrays.
Usage: /usr/bin/python3 tools/golden/gen_layers.py
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run_case, save, seeded  # noqa: E402
from torch_unet import SinusoidalPosEmb  # noqa: E402


def perturb_norm_affine(module, g):
    """Moves GroupNorm/LayerNorm affine parameters away from 1/0 so their gradients are exercised."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                m.weight.copy_(1.0 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))


def cases(rnd):
    """name -> (module factory, inputs). Factories run after seeding, so init is reproducible."""
    spread = torch.cat([torch.linspace(-30.0, 30.0, 25, dtype=torch.float64), 4 * rnd(11)]).reshape(4, 9)
    return {
        "layer_conv1d_nobias": (lambda: nn.Conv1d(5, 4, 3, padding=1, bias=False), {"x": rnd(3, 5, 6)}),
        "layer_conv1d_wide": (lambda: nn.Conv1d(16, 24, 5, padding=2), {"x": rnd(4, 16, 8)}),
        "layer_conv_transpose1d_s1_nobias": (lambda: nn.ConvTranspose1d(3, 2, 3, bias=False), {"x": rnd(2, 3, 5)}),
        "layer_group_norm_4d_eps": (lambda: nn.GroupNorm(4, 8, eps=1e-3), {"x": rnd(2, 8, 3, 5) * 1.5 - 0.5}),
        "layer_layer_norm_last": (lambda: nn.LayerNorm(6), {"x": rnd(3, 4, 6) * 2 + 1}),
        "layer_mish_spread": (lambda: nn.Mish(), {"x": spread}),
        "layer_silu_spread": (lambda: nn.SiLU(), {"x": spread.clone()}),
        "layer_mlp_mish_last": (lambda: nn.Sequential(nn.Linear(4, 7), nn.Mish(), nn.Linear(7, 7), nn.Mish(),
                                                      nn.Linear(7, 2), nn.Mish()), {"x": rnd(3, 4)}),
        "layer_mlp_silu": (lambda: nn.Sequential(nn.Linear(3, 5), nn.SiLU(), nn.Linear(5, 2)), {"x": rnd(6, 3)}),
        "layer_sinusoidal_large_t": (lambda: SinusoidalPosEmb(32),
                                     {"x": torch.tensor([0.0, 0.5, 250.0, 999.0, 1000.0], dtype=torch.float64)}),
    }


def main():
    g = torch.Generator().manual_seed(20)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    for i, (name, (make, inputs)) in enumerate(cases(rnd).items()):
        seeded(100 + i)
        m = make()
        perturb_norm_affine(m, g)
        save(name, run_case(m, inputs, seed=i))


if __name__ == "__main__":
    main()
