"""PyTorch versions of coordiff's MADiff-layout networks, with identical state_dict names.

Written from the architecture description (Diffuser temporal U-Net + MADiff inter-agent attention) so
that golden fixtures and the peer benchmark run the very computation coordiff runs. Plain torch only.
"""
import math

import torch
import torch.nn as nn


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        freq = torch.exp(torch.arange(half, dtype=t.dtype) * -(math.log(10000) / (half - 1)))
        a = t[:, None] * freq[None, :]
        return torch.cat((a.sin(), a.cos()), dim=-1)


class Conv1dBlock(nn.Module):
    def __init__(self, cin, cout, k, groups=8):
        super().__init__()
        # indices 0 (conv), 2 (norm), 3 (Mish) as in Diffuser's Sequential with Rearranges at 1 and 3
        self.block = nn.Sequential(nn.Conv1d(cin, cout, k, padding=k // 2), nn.Identity(), nn.GroupNorm(groups, cout), nn.Mish())

    def forward(self, x):
        return self.block(x)


class ResidualTemporalBlock(nn.Module):
    def __init__(self, cin, cout, embed_dim, k=5, groups=8):
        super().__init__()
        self.blocks = nn.ModuleList([Conv1dBlock(cin, cout, k, groups), Conv1dBlock(cout, cout, k, groups)])
        self.time_mlp = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, cout))
        self.residual_conv = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, t):
        out = self.blocks[0](x) + self.time_mlp(t)[:, :, None]
        return self.blocks[1](out) + self.residual_conv(x)


class Downsample1d(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv1d(c, c, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Upsample1d(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.ConvTranspose1d(c, c, 4, 2, 1)

    def forward(self, x):
        return self.conv(x)


class TemporalUNet(nn.Module):
    def __init__(self, horizon, transition_dim, dim=128, dim_mults=(1, 4, 8), kernel_size=5, groups=8, returns_condition=False):
        super().__init__()
        dims = [transition_dim] + [dim * m for m in dim_mults]
        in_out = list(zip(dims[:-1], dims[1:]))
        self.returns_condition = returns_condition
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))
        embed_dim = dim
        if returns_condition:
            self.returns_mlp = nn.Sequential(nn.Linear(1, dim), nn.Mish(), nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))
            embed_dim = 2 * dim
        self.embed_dim = embed_dim
        self.downs = nn.ModuleList()
        for i, (a, b) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.downs.append(nn.ModuleList([ResidualTemporalBlock(a, b, embed_dim, kernel_size, groups),
                                             ResidualTemporalBlock(b, b, embed_dim, kernel_size, groups),
                                             Downsample1d(b) if not last else nn.Identity()]))
        self.mid_block1 = ResidualTemporalBlock(dims[-1], dims[-1], embed_dim, kernel_size, groups)
        self.mid_block2 = ResidualTemporalBlock(dims[-1], dims[-1], embed_dim, kernel_size, groups)
        self.ups = nn.ModuleList()
        for a, b in reversed(in_out[1:]):
            self.ups.append(nn.ModuleList([ResidualTemporalBlock(2 * b, a, embed_dim, kernel_size, groups),
                                           ResidualTemporalBlock(a, a, embed_dim, kernel_size, groups),
                                           Upsample1d(a)]))
        self.final_conv = nn.Sequential(Conv1dBlock(dim, dim, kernel_size, groups), nn.Conv1d(dim, transition_dim, 1))

    def embed(self, time, returns=None, keep=None):
        t = self.time_mlp(time)
        if self.returns_condition:
            r = self.returns_mlp(returns)
            if keep is not None:
                r = r * keep[:, None]
            t = torch.cat([t, r], dim=-1)
        return t

    def trunk(self, x, t, bottleneck_hook=None, skip_hook=None):
        h = []
        for r1, r2, down in self.downs:
            x = r2(r1(x, t), t)
            h.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_block1(x, t), t)
        if bottleneck_hook is not None:
            x = bottleneck_hook(x)
        for j, (r1, r2, up) in enumerate(self.ups):
            s = h.pop()
            if skip_hook is not None:
                s = skip_hook(j, s)
            x = up(r2(r1(torch.cat((x, s), dim=1), t), t))
        return self.final_conv(x)

    def forward(self, x, time, returns=None, keep=None):
        t = self.embed(time, returns, keep)
        return self.trunk(x.permute(0, 2, 1), t).permute(0, 2, 1)


class AgentSelfAttention(nn.Module):
    """MADiff's TemporalSelfAttention: tokens are agents; features are (channels/head x horizon)."""

    def __init__(self, c, qk, v, embed_dim, heads=4, residual=True):
        super().__init__()
        self.heads = heads
        self.residual = residual
        self.query_layer = nn.Conv1d(c, qk * heads, 1)
        self.key_layer = nn.Conv1d(c, qk * heads, 1)
        self.value_layer = nn.Conv1d(c, v * heads, 1)
        self.query_time_mlp = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, qk * heads))
        self.key_time_mlp = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, qk * heads))
        self.value_time_mlp = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, v * heads))
        if residual:
            self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x, emb):
        B, A, C, L = x.shape
        xf = x.reshape(B * A, C, L)
        e = emb.reshape(B * A, -1)
        q = self.query_layer(xf) + self.query_time_mlp(e)[:, :, None]
        k = self.key_layer(xf) + self.key_time_mlp(e)[:, :, None]
        v = self.value_layer(xf) + self.value_time_mlp(e)[:, :, None]
        h = self.heads

        def split(z):  # (b a) (h d) t -> h b a (d t)
            d = z.shape[1] // h
            return z.reshape(B, A, h, d, L).permute(2, 0, 1, 3, 4).reshape(h, B, A, d * L)

        q, k, v = split(q), split(k), split(v)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        out = (attn @ v).permute(1, 2, 0, 3).reshape(B, A, C, L)  # h b a f -> b a (h f) -> x's shape
        return x + self.gamma * out if self.residual else out


class MultiAgentUNet(nn.Module):
    """MADiff's SharedConvAttentionDeconv: shared TemporalUNet ('net') + agent attention ('self_attn')."""

    def __init__(self, horizon, transition_dim, n_agents, dim=128, dim_mults=(1, 4, 8), kernel_size=5, groups=8,
                 returns_condition=False, heads=4):
        super().__init__()
        self.n_agents = n_agents
        self.net = TemporalUNet(horizon, transition_dim, dim, dim_mults, kernel_size, groups, returns_condition)
        chans = [dim * m for m in dim_mults]
        E = self.net.embed_dim
        mods = [AgentSelfAttention(chans[-1], chans[-1] // 16, chans[-1] // heads, E, heads)]
        for c in reversed(chans):
            mods.append(AgentSelfAttention(c, c // 16, c // heads, E, heads))
        self.self_attn = nn.ModuleList(mods)

    def forward(self, x, time, returns=None, keep=None):
        B, H, A, F = x.shape
        t = time[:, None].expand(B, A).reshape(B * A)
        r = returns.reshape(B * A, 1) if returns is not None else None
        kp = keep.reshape(B * A) if keep is not None else None
        emb = self.net.embed(t, r, kp)
        embA = emb.reshape(B, A, -1)

        def attend(mod, z):
            BA, C, L = z.shape
            return mod(z.reshape(B, A, C, L), embA).reshape(BA, C, L)

        xr = x.permute(0, 2, 3, 1).reshape(B * A, F, H)
        y = self.net.trunk(xr, emb, lambda z: attend(self.self_attn[0], z),
                           lambda j, z: attend(self.self_attn[j + 1], z))
        return y.reshape(B, A, F, H).permute(0, 3, 1, 2)
