#!/usr/bin/python3
"""PyTorch golden fixtures for the attention modules beyond gen_golden.py's attn_agent / attn_mhsa_*:

  attn_agent_noresidual   MADiff inter-agent attention, residual=False (MADiff's default), 2 heads,
                          odd qk width, one batch of 4 agents over 5 steps
  attn_agent_madiff       MADiff's widths (qk = C/16, v = C/4, 4 heads), gamma = -0.8
  attn_mhsa_nobias_seq0   torch.nn.MultiheadAttention(12, 3, bias=False) in its default sequence-first
                          layout [S, N, E] (coordiff: seq_axis = 0)
  attn_mhsa_mask_agents   torch.nn.MultiheadAttention(16, 4, batch_first=True) over the agents of a
                          [B, T, A, E] input with a key_padding_mask (input.mask, bool [B, T, A])

The agent attention is re-implemented here with einsum, following MADiff's TemporalSelfAttention
rearranges literally, and cross-checked against tools/golden/torch_unet.py's version, so the fixtures
do not rest on a single transcription of the reshape semantics.
Usage: /usr/bin/python3 tools/golden/gen_attention.py   (see common.py for the fixture keys)
"""
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run_case, save, seeded  # noqa: E402
import torch_unet as tu  # noqa: E402


class EinsumAgentAttention(nn.Module):
    """TemporalSelfAttention: x [B, A, C, L], emb [B, A, E] -> [B, A, C, L]; tokens are agents."""

    def __init__(self, c, qk, v, embed_dim, heads, residual):
        super().__init__()
        self.heads = heads
        self.residual = residual
        # Same state_dict names as MADiff (index 1 of Sequential(Mish, Linear)).
        self.query_layer = nn.Conv1d(c, qk * heads, 1)
        self.key_layer = nn.Conv1d(c, qk * heads, 1)
        self.value_layer = nn.Conv1d(c, v * heads, 1)
        self.query_time_mlp = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, qk * heads))
        self.key_time_mlp = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, qk * heads))
        self.value_time_mlp = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, v * heads))
        if residual:
            self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x, emb):
        b, a, c, t = x.shape
        xf = x.flatten(0, 1)  # b a f t -> (b a) f t
        e = emb.flatten(0, 1)
        h = self.heads

        def heads_first(z):  # (b a) (h d) t -> h b a (d t)
            return z.unflatten(0, (b, a)).unflatten(2, (h, -1)).movedim(2, 0).flatten(3, 4)

        q = heads_first(self.query_layer(xf) + self.query_time_mlp(e).unsqueeze(-1))
        k = heads_first(self.key_layer(xf) + self.key_time_mlp(e).unsqueeze(-1))
        v = heads_first(self.value_layer(xf) + self.value_time_mlp(e).unsqueeze(-1))
        dots = torch.einsum("hbif,hbjf->hbij", q, k) / math.sqrt(q.shape[-1])
        out = torch.einsum("hbij,hbjf->hbif", dots.softmax(dim=-1), v)
        out = out.movedim(0, 2).flatten(2, 3).reshape(x.shape)  # h b a f -> b a (h f) -> x's shape
        return x + self.gamma * out if self.residual else out


class Wrap(nn.Module):
    """Calls fn(module, *inputs), so run_case sees the wrapped module's parameters under 'm.'."""

    def __init__(self, m, fn):
        super().__init__()
        self.m = m
        self.fn = fn

    def forward(self, *args):
        return self.fn(self.m, *args)


def agent_case(name, c, qk, v, e, heads, residual, gamma, shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    seeded(seed)
    m = EinsumAgentAttention(c, qk, v, e, heads, residual)
    if residual:
        with torch.no_grad():
            m.gamma.fill_(gamma)
    b, a, _, t = shape
    x = scale * torch.randn(b, a, c, t, generator=g, dtype=torch.float64)
    emb = torch.randn(b, a, e, generator=g, dtype=torch.float64)
    d = run_case(m, {"x": x, "emb": emb})
    # Independent transcription: the same parameters in torch_unet's AgentSelfAttention.
    ref = tu.AgentSelfAttention(c, qk, v, e, heads=heads, residual=residual).double()
    ref.load_state_dict(m.state_dict())
    with torch.no_grad():
        y = ref(d["input.x"], d["input.emb"])
    assert torch.allclose(y, d["output.y"], rtol=1e-12, atol=1e-12), name
    save(name, d)


def mhsa_cases():
    g = torch.Generator().manual_seed(7)
    seeded(7)
    # Sequence-first layout [S, N, E] is torch's default (batch_first=False): coordiff seq_axis = 0.
    mha = nn.MultiheadAttention(12, 3, bias=False)
    x = 1.5 * torch.randn(6, 2, 12, generator=g, dtype=torch.float64)
    save("attn_mhsa_nobias_seq0", run_case(Wrap(mha, lambda m, x: m(x, x, x, need_weights=False)[0]), {"x": x}))

    seeded(8)
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_bias.copy_(0.1 * torch.randn(48, generator=g))
        mha.out_proj.bias.copy_(0.1 * torch.randn(16, generator=g))
    B, T, A, E = 2, 3, 4, 16
    x = 1.5 * torch.randn(B, T, A, E, generator=g, dtype=torch.float64)
    mask = torch.rand(B, T, A, generator=g) < 0.4
    mask[0, 0] = torch.tensor([False, True, True, True])  # a single visible key
    mask[0, 1] = False  # nothing hidden
    mask[1, 2] = torch.tensor([True, False, True, False])
    assert not mask.all(dim=-1).any(), "every sequence needs a visible key"

    def over_agents(m, x, mask):
        z = x.reshape(B * T, A, E)
        y = m(z, z, z, key_padding_mask=mask.reshape(B * T, A), need_weights=False)[0]
        return y.reshape(B, T, A, E)

    save("attn_mhsa_mask_agents", run_case(Wrap(mha, over_agents), {"x": x, "mask": mask}))


def main():
    agent_case("attn_agent_noresidual", c=16, qk=3, v=8, e=8, heads=2, residual=False, gamma=0.0,
               shape=(1, 4, 16, 5), seed=11, scale=1.5)
    agent_case("attn_agent_madiff", c=48, qk=3, v=12, e=12, heads=4, residual=True, gamma=-0.8,
               shape=(2, 3, 48, 3), seed=12, scale=1.5)
    mhsa_cases()


if __name__ == "__main__":
    main()
