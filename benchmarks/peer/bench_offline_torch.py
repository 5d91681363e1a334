#!/usr/bin/env python3
"""PyTorch peer of benchmarks/bench_offline.cpp: the same MA-TD3+BC, OMAR and CFCQL update rounds
(Spread size: 3 agents, 18 observations, 2 actions, 6,000 transitions, batch 1024, 64-64 networks,
published Spread medium-replay settings), written the way the reference implementations write them
(OMAR's maddpg.py, CFCQL's maddpg_cc.py): penalty rows are full critic forwards. Prints rounds/s as JSON."""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F

A, O, U, N, B, H = 3, 18, 2, 6000, 1024, 64
GAMMA, TAU, LR, CLIP, L2 = 0.95, 0.01, 1e-2, 0.5, 1e-3


def mlp(i, o):
    return nn.Sequential(nn.Linear(i, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, o))


class Twin(nn.Module):
    def __init__(self, i):
        super().__init__()
        self.q1, self.q2 = mlp(i, 1), mlp(i, 1)


def soft(src, dst):
    with torch.no_grad():
        for p, q in zip(src.parameters(), dst.parameters()):
            q.mul_(1 - TAU).add_(TAU * p)


class Learner:
    def __init__(self, algo):
        self.algo = algo
        self.central = algo == "cfcql"
        width = A * (O + U) if self.central else O + U
        self.actors = [mlp(O, U) for _ in range(A)]
        self.actor_t = [mlp(O, U) for _ in range(A)]
        self.critics = [Twin(width) for _ in range(1 if self.central else A)]
        self.critic_t = [Twin(width) for _ in self.critics]
        for a, t in zip(self.actors + self.critics, self.actor_t + self.critic_t):
            t.load_state_dict(a.state_dict())
        self.aopt = [torch.optim.Adam(a.parameters(), lr=LR) for a in self.actors]
        self.copt = [torch.optim.Adam(c.parameters(), lr=LR) for c in self.critics]
        self.cql = {"td3bc": 0.0, "omar": 1.0, "cfcql": 1.0}[algo]
        self.rounds = 0
        g = torch.Generator().manual_seed(7)
        self.obs = torch.randn(N, A, O, generator=g)
        self.act = torch.rand(N, A, U, generator=g) * 2 - 1
        self.rew = torch.randn(N, A, generator=g)
        self.nobs = torch.randn(N, A, O, generator=g)

    def inp(self, c, o, a):
        if self.central:
            return torch.cat([o.reshape(len(o), -1), a.reshape(len(a), -1)], 1)
        return torch.cat([o[:, c], a[:, c]], 1)

    def critic_step(self, idx):
        o, a, r, no = self.obs[idx], self.act[idx], self.rew[idx], self.nobs[idx]
        with torch.no_grad():
            na = torch.stack([torch.tanh(t(no[:, i])) for i, t in enumerate(self.actor_t)], 1)
            if self.algo == "td3bc":
                na = (na + (0.2 * torch.randn_like(na)).clamp(-0.5, 0.5)).clamp(-1, 1)
            elif self.algo == "cfcql":
                na = (na + 0.05 * torch.randn_like(na)).clamp(-1, 1)
        for c, (q, qt, opt) in enumerate(zip(self.critics, self.critic_t, self.copt)):
            with torch.no_grad():
                xn = self.inp(c, no, na)
                y = r[:, 0 if self.central else c:][:, :1] + GAMMA * torch.min(qt.q1(xn), qt.q2(xn))
            x = self.inp(c, o, a)
            loss = 0
            for head in (q.q1, q.q2):
                qd = head(x)
                loss = loss + F.mse_loss(qd, y)
                if self.cql > 0:
                    agents = range(A) if self.central else [c]
                    pen = 0
                    for g in agents:  # one agent's action resampled, 10 samples per row
                        rep = a.unsqueeze(0).repeat(10, 1, 1, 1)
                        rep[:, :, g] = torch.rand(10, B, U) * 2 - 1
                        xs = torch.stack([self.inp(c, o, rep[k]) for k in range(10)])
                        qs = head(xs).squeeze(-1) - U * math.log(0.5)
                        pen = pen + torch.logsumexp(qs, 0) / len(agents)
                    loss = loss + self.cql * (pen - qd.squeeze(-1)).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q.parameters(), CLIP)
            opt.step()

    def actor_step(self, idx):
        o, a = self.obs[idx], self.act[idx]
        for i, (actor, opt) in enumerate(zip(self.actors, self.aopt)):
            q = self.critics[0 if self.central else i]
            pi = torch.tanh(actor(o[:, i]))
            acts = a.clone()
            acts[:, i] = pi
            qpi = q.q1(self.inp(0 if self.central else i, o, acts))
            if self.algo == "td3bc":
                lam = 2.5 / qpi.abs().mean().detach()
                loss = -lam * qpi.mean() + F.mse_loss(pi, a[:, i])
            elif self.algo == "omar":
                with torch.no_grad():  # zeroth-order search, 3 x 10 samples
                    mu, sigma = torch.zeros(B, U), torch.full((B, U), 2.0)
                    for _ in range(3):
                        cand = (mu + sigma * torch.randn(10, B, U)).clamp(-1, 1)
                        rep = acts.detach().unsqueeze(0).repeat(10, 1, 1, 1)
                        rep[:, :, i] = cand
                        qs = q.q1(torch.stack([self.inp(i, o, rep[k]) for k in range(10)])).squeeze(-1)
                        w = torch.softmax(qs, 0).unsqueeze(-1)
                        mu = (w * cand).sum(0)
                        sigma = ((cand - mu) ** 2).mean(0).sqrt()
                    best = cand.gather(0, qs.argmax(0).view(1, B, 1).expand(1, B, U)).squeeze(0)
                    target = torch.where((qs.max(0).values > qpi.squeeze(-1)).unsqueeze(-1), best, pi.detach())
                loss = F.mse_loss(pi, target)  # omar_coe 1 on spread
            else:
                loss = -qpi.mean()
            loss = loss + L2 * (pi ** 2).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(actor.parameters(), CLIP)
            opt.step()
        for s, t in zip(self.actors + self.critics, self.actor_t + self.critic_t):
            soft(s, t)

    def update(self):
        for _ in range(5 if self.algo == "cfcql" else 1):
            idx = torch.randint(0, N, (B,))
            self.critic_step(idx)
        if self.algo != "td3bc" or self.rounds % 2 == 0:
            self.actor_step(idx)
        self.rounds += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runs = []
    for algo in ("td3bc", "omar", "cfcql"):
        learner = Learner(algo)
        for _ in range(2):
            learner.update()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.min_time or n < 4:
            learner.update()
            n += 1
        dt = time.perf_counter() - t0
        runs.append({"name": f"Offline/{algo}", "rounds_per_s": n / dt, "ms_per_round": 1e3 * dt / n})
    json.dump({"torch": torch.__version__, "threads": args.threads, "runs": runs}, open(args.json, "w"), indent=1)
    for r in runs:
        print(f"{r['name']}: {r['ms_per_round']:.1f} ms per round")


if __name__ == "__main__":
    main()
