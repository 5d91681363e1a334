#!/usr/bin/python3
"""Independent NumPy reference of the OMAR variant of the multi-agent particle environments.

Written from the published equations (OMAR's multiagent-particle-envs: core.py, environment.py and the
simple_spread / simple_tag / simple_world scenarios):
openai/OMAR semi-implicit integration, softplus contact forces, OMAR action scaling and rewards.
For each scenario it takes fixed initial states and a fixed action sequence for every agent (prey
included, so the C++ test can feed the prey's actions through its prey-policy hook), steps 25 times
and writes tests/fixtures/mpe/<scenario>.npz:

  pos0, vel0 [B, E, 2]      initial state (agents first, then landmarks)
  obs0       [B, N, D]      initial observations, each zero-padded to D = largest observation size
  actions    [B, T, N, 2]   actions of every agent at every step
  pos, vel   [B, T, E, 2]   state after each step
  obs        [B, T, N, D]   observations after each step (zero-padded)
  rewards    [B, T, N]      rewards after each step

Usage: /usr/bin/python3 tools/mpe_reference.py [out_dir]   (default tests/fixtures/mpe)
"""
import os
import sys

import numpy as np

DT, DAMPING, CONTACT_FORCE, CONTACT_MARGIN, T = 0.1, 0.25, 100.0, 1e-3, 25


class Entity:
    def __init__(self, size, movable, collide, max_speed=None, accel=None, adversary=False):
        self.size, self.movable, self.collide = size, movable, collide
        self.max_speed, self.accel, self.adversary = max_speed, accel, adversary


def scenario(name):
    """Returns (agents, landmarks, observe, reward) for a scenario."""
    if name == "spread":
        agents = [Entity(0.15, True, True) for _ in range(3)]
        landmarks = [Entity(0.05, False, False) for _ in range(3)]
    elif name == "tag":
        agents = [Entity(0.075, True, True, 1.0, 3.0, True) for _ in range(3)]
        agents.append(Entity(0.05, True, True, 1.3, 4.0))
        landmarks = [Entity(0.2, False, True) for _ in range(2)]
    else:  # world: obstacle, 2 food, 2 forests
        agents = [Entity(0.075, True, True, 1.0, 3.0, True) for _ in range(3)]
        agents.append(Entity(0.045, True, True, 1.3, 4.0))
        landmarks = [Entity(0.2, False, True), Entity(0.03, False, False), Entity(0.03, False, False),
                     Entity(0.3, False, False), Entity(0.3, False, False)]
    return agents, landmarks


def dist(a, b):
    return float(np.sqrt(np.sum(np.square(a - b))))


def collide(pa, pb, sa, sb):
    return dist(pa, pb) < sa + sb


def bound(x):
    if x < 0.9:
        return 0.0
    if x < 1.0:
        return (x - 0.9) * 10
    return min(np.exp(2 * x - 2), 10)


def world_step(ents, p, v, actions):
    """p, v: [E, 2] arrays (modified copies returned); actions: [N, 2] for the agents."""
    p, v = p.copy(), v.copy()
    force = np.zeros_like(p)
    for i, a in enumerate(actions):
        e = ents[i]
        sens = e.accel if e.accel is not None else 5.0          # environment: u = a * sensitivity
        u = np.asarray(a, dtype=float) * sens
        force[i] = (e.accel if e.accel is not None else 1.0) * u  # core: F = mass * accel * u
    for i in range(len(ents)):
        for j in range(i + 1, len(ents)):
            ea, eb = ents[i], ents[j]
            if not (ea.collide and eb.collide) or not (ea.movable or eb.movable):
                continue
            delta = p[i] - p[j]
            d = np.sqrt(np.sum(np.square(delta)))
            dmin = ea.size + eb.size
            pen = np.logaddexp(0, -(d - dmin) / CONTACT_MARGIN) * CONTACT_MARGIN
            f = CONTACT_FORCE * delta / d * pen
            if ea.movable:
                force[i] += f
            if eb.movable:
                force[j] -= f
    for i, e in enumerate(ents):
        if not e.movable:
            continue
        v[i] = v[i] * (1 - DAMPING)
        v[i] += force[i] / 1.0 * DT
        if e.max_speed is not None:
            speed = np.sqrt(np.square(v[i][0]) + np.square(v[i][1]))
            if speed > e.max_speed:
                v[i] = v[i] / speed * e.max_speed
        p[i] += v[i] * DT
    return p, v


def observe(name, agents, landmarks, p, v, i):
    n = len(agents)
    me = p[i]
    parts = [v[i], me]
    parts += [p[n + l] - me for l in range(len(landmarks))]
    others = [j for j in range(n) if j != i]
    parts += [p[j] - me for j in others]
    if name == "spread":
        parts += [np.zeros(2) for _ in others]  # silent agents' comm
    else:
        parts += [v[j] for j in others if not agents[j].adversary]
    if name == "world":
        forests = [n + 3, n + 4]
        parts += [np.array([1.0 if collide(me, p[f], agents[i].size, landmarks[f - n].size) else -1.0])
                  for f in forests]
    return np.concatenate(parts)


def reward(name, agents, landmarks, p, i):
    n = len(agents)
    if name == "spread":
        r = 0.0
        for l in range(len(landmarks)):
            m = min(dist(p[a], p[n + l]) for a in range(n))
            r += min(1.0 / m, 10.0) if m > 0 else 10.0
        for j in range(n):
            if j != i and collide(p[i], p[j], agents[i].size, agents[j].size):
                r -= 5
        return r
    advs = [j for j in range(n) if agents[j].adversary]
    goods = [j for j in range(n) if not agents[j].adversary]
    hit = 10.0 if name == "tag" else 5.0
    r = 0.0
    if agents[i].adversary:
        r -= 0.1 * sum(min(dist(p[g], p[a]) for g in goods) for a in advs)
        for g in goods:
            for a in advs:
                if collide(p[g], p[a], agents[g].size, agents[a].size):
                    r += hit
        return r
    r += 0.1 * sum(dist(p[i], p[a]) for a in advs)
    for a in advs:
        if collide(p[i], p[a], agents[i].size, agents[a].size):
            r -= hit
    scale = 1.0 if name == "tag" else 2.0
    for c in range(2):
        r -= scale * bound(abs(p[i][c]))
    if name == "world":
        food = [n + 1, n + 2]
        for f in food:
            if collide(p[i], p[f], agents[i].size, landmarks[f - n].size):
                r += 2
        r += 0.05 * min(dist(p[i], p[f]) for f in food)
    return r


def padded_obs(name, agents, landmarks, p, v, dmax):
    out = np.zeros((len(agents), dmax))
    for i in range(len(agents)):
        o = observe(name, agents, landmarks, p, v, i)
        out[i, :len(o)] = o
    return out


def initial_states(name, agents, landmarks, rng, B):
    n, L = len(agents), len(landmarks)
    lr = 1.0 if name == "spread" else 0.9
    pos0 = np.zeros((B, n + L, 2))
    vel0 = np.zeros((B, n + L, 2))
    for b in range(B):
        pos0[b, :n] = rng.uniform(-1, 1, (n, 2))
        pos0[b, n:] = rng.uniform(-lr, lr, (L, 2))
    # env 0: moving start; env 1: overlapping agents, agent 0 next to an obstacle (or landmark), the
    # last agent beyond the 0.9 boundary band; env 2: crowded centre.
    vel0[0, :n] = rng.uniform(-0.5, 0.5, (n, 2))
    pos0[1, 1] = pos0[1, 0] + np.array([0.04, -0.03])
    pos0[1, n - 1] = np.array([0.95, -1.02])
    pos0[1, n] = pos0[1, 0] + np.array([0.1, 0.12])
    if name == "world":
        pos0[1, n + 1] = pos0[1, n - 1] + np.array([-0.03, 0.05])  # food under the prey
        pos0[1, n + 3] = pos0[1, 2] + np.array([0.1, 0.0])         # adversary 2 inside forest 0
        pos0[1, n - 1] = np.array([0.95, -0.88])
        pos0[1, n + 1] = pos0[1, n - 1] + np.array([-0.03, 0.05])
    pos0[2, :n] = rng.uniform(-0.25, 0.25, (n, 2))
    return pos0, vel0


def run(name, out_dir, B=3, seed=7):
    agents, landmarks = scenario(name)
    ents = agents + landmarks
    n = len(agents)
    dmax = {"spread": 18, "tag": 16, "world": 24}[name]
    rng = np.random.default_rng(seed)
    pos0, vel0 = initial_states(name, agents, landmarks, rng, B)
    actions = np.zeros((B, T, n, 2))
    pos = np.zeros((B, T) + pos0.shape[1:])
    vel = np.zeros_like(pos)
    obs = np.zeros((B, T, n, dmax))
    rew = np.zeros((B, T, n))
    obs0 = np.zeros((B, n, dmax))
    for b in range(B):
        p, v = pos0[b].copy(), vel0[b].copy()
        obs0[b] = padded_obs(name, agents, landmarks, p, v, dmax)
        for t in range(T):
            a = rng.uniform(-1.2, 1.2, (n, 2))  # beyond [-1,1] on purpose: OMAR does not clip
            if b == 2 and name != "spread":  # chasers head for the prey
                for i in range(n - 1):
                    d = p[n - 1] - p[i]
                    a[i] = d / max(np.sqrt(np.sum(d * d)), 1e-9)
            actions[b, t] = a
            p, v = world_step(ents, p, v, a)
            pos[b, t], vel[b, t] = p, v
            obs[b, t] = padded_obs(name, agents, landmarks, p, v, dmax)
            rew[b, t] = [reward(name, agents, landmarks, p, i) for i in range(n)]
    os.makedirs(out_dir, exist_ok=True)
    np.savez_compressed(os.path.join(out_dir, name + ".npz"), pos0=pos0, vel0=vel0, obs0=obs0,
                        actions=actions, pos=pos, vel=vel, obs=obs, rewards=rew)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests",
                                                               "fixtures", "mpe")
    for s in ("spread", "tag", "world"):
        run(s, out)
