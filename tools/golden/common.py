"""Shared helpers for the PyTorch golden-fixture generators (run with Debian's /usr/bin/python3).

Conventions for every fixture tests/fixtures/golden/<name>.npz:
  input.<name>        float32 inputs fed to the module
  param.<state_dict>  float32 parameters, keyed by PyTorch state_dict name
  output.<name>       outputs computed in float64 from the float32 inputs/params, stored rounded to float32
  upstream.<name>     float32 upstream gradient; the scalar loss is sum(output * upstream)
  grad.input.<name>   d(loss)/d(input)   (computed in float64, stored as float32 to keep fixtures small:
  grad.param.<name>   d(loss)/d(param)    the rounding, ~6e-8 relative, is far below the 1e-4 test tolerance)
Tests run coordiff in float32 on the same inputs and compare with relative tolerance 1e-4.
"""
import os

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "golden")


def seeded(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def f32_round(t):
    """Rounds a tensor to float32-representable values, returned as float64."""
    return t.detach().to(torch.float32).to(torch.float64)


def round_module_params(module):
    """Makes every parameter float32-representable and switches the module to float64."""
    module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32_round(p))
    return module


def save(name, arrays, keep_float64=False):
    """Writes arrays to tests/fixtures/golden/<name>.npz (compressed), float arrays as float32 unless
    keep_float64 (small fixtures checked at double precision, e.g. optimizer trajectories)."""
    os.makedirs(OUT_DIR, exist_ok=True)
    out = {}
    for k, v in arrays.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        v = np.asarray(v)
        if v.dtype == np.float64 and not keep_float64:
            v = v.astype(np.float32)
        out[k] = v
    path = os.path.join(OUT_DIR, name + ".npz")
    np.savez_compressed(path, **out)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes, {len(out)} arrays)")


def run_case(module, inputs, seed=0):
    """Runs module(*inputs) in float64 with loss = sum(out * upstream); returns the fixture dict.

    inputs: dict name -> tensor (float inputs get gradients; others, e.g. integer timesteps, do not).
    """
    round_module_params(module)
    module.zero_grad(set_to_none=True)  # a module reused across fixtures must not carry gradients over
    g = torch.Generator().manual_seed(seed + 1000)
    leaves = {}
    for k, v in inputs.items():
        if v.is_floating_point():
            v = f32_round(v).requires_grad_(True)
        leaves[k] = v
    out = module(*leaves.values())
    upstream = f32_round(torch.randn(out.shape, generator=g, dtype=torch.float64))
    (out * upstream).sum().backward()
    d = {}
    for k, v in leaves.items():
        d["input." + k] = v.detach()
        if v.is_floating_point():
            d["grad.input." + k] = v.grad
    for n, p in module.named_parameters():
        d["param." + n] = p.detach()
        d["grad.param." + n] = p.grad if p.grad is not None else torch.zeros_like(p)
    d["output.y"] = out.detach()
    d["upstream.y"] = upstream
    return d
