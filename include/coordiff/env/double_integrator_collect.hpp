#pragma once
// Offline datasets of the double-integrator task (env/double_integrator.hpp) for the safety experiments:
// episodes of a behaviour policy with per-agent rewards and Definition 3 costs.
//   Random   uniform accelerations in [-a_max, a_max]^2;
//   Nominal  the LQR controller toward the goals (ignores the others and the obstacles);
//   Noisy    LQR plus Gaussian noise of standard deviation noise * a_max, and with probability
//            `random_fraction` per agent and episode uniformly random actions throughout: the data then
//            hold both safe and unsafe segments.
// Every draw is Philox keyed by (seed, episode), so episode e does not depend on the batch it ran in.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>

#include "coordiff/core/philox.hpp"
#include "coordiff/core/progress.hpp"
#include "coordiff/data/dataset.hpp"
#include "coordiff/env/double_integrator.hpp"

namespace coordiff::env {

enum class DoubleIntegratorBehaviour { Random, Nominal, Noisy };

inline DoubleIntegratorBehaviour parse_double_integrator_behaviour(const std::string& s) {
  if (s == "random") return DoubleIntegratorBehaviour::Random;
  if (s == "nominal") return DoubleIntegratorBehaviour::Nominal;
  require<ConfigError>(s == "noisy", "double-integrator behaviour must be random, nominal or noisy, got '", s, "'");
  return DoubleIntegratorBehaviour::Noisy;
}

struct DoubleIntegratorCollectOptions {
  DoubleIntegratorBehaviour behaviour = DoubleIntegratorBehaviour::Noisy;
  LqrGains gains = double_integrator_lqr(1.0, 0.5, 1.0);
  double noise = 0.5;             ///< Noisy: std of the added noise, in units of a_max
  double random_fraction = 0.2;   ///< Noisy: agents acting at random for a whole episode
  index_t parallel = 64;
};

/// E episodes of cfg.episode_length steps: observations/next_observations [E, T, N, O], actions
/// [E, T, N, 2], rewards and costs [E, T, N], terminals [E, T] (all 0: episodes run to the horizon),
/// states [E, T, N * 6] (each agent's position, velocity and goal).
inline data::OfflineDataset<float> collect_double_integrator(const DoubleIntegratorConfig& cfg, index_t episodes,
                                                              std::uint64_t seed, const DoubleIntegratorCollectOptions& o,
                                                              std::ostream* progress = nullptr) {
  cfg.validate();
  require<ConfigError>(episodes >= 1 && o.parallel >= 1, "collect_double_integrator: episodes and parallel must be >= 1");
  require<ConfigError>(o.noise >= 0 && o.random_fraction >= 0 && o.random_fraction <= 1,
                       "collect_double_integrator: need noise >= 0 and random_fraction in [0, 1]");
  const index_t T = cfg.episode_length, N = cfg.agents, O = cfg.obs_dim();
  data::OfflineDataset<float> d;
  d.observations = Tensor<float>({episodes, T, N, O});
  d.next_observations = Tensor<float>({episodes, T, N, O});
  d.actions = Tensor<float>({episodes, T, N, 2});
  d.rewards = Tensor<float>({episodes, T, N});
  d.costs = Tensor<float>({episodes, T, N});
  d.terminals = Tensor<float>({episodes, T});
  d.states = Tensor<float>({episodes, T, N * 6});
  const double amax = cfg.max_accel;
  for (index_t e0 = 0; e0 < episodes; e0 += o.parallel) {
    const index_t B = std::min(o.parallel, episodes - e0);
    DoubleIntegratorEnv env(B, cfg);
    env.reset(seed, static_cast<std::uint64_t>(e0));
    Tensor<double> obs = env.observations();
    for (index_t t = 0; t < T; ++t) {
      Tensor<double> a = o.behaviour == DoubleIntegratorBehaviour::Random ? Tensor<double>({B, N, 2})
                                                                          : nominal_actions(env, o.gains);
      for (index_t b = 0; b < B; ++b) {
        // Two streams per episode: which agents act at random, and the actions' draws.
        const Philox which(seed ^ 0x6469776869636800ull, static_cast<std::uint64_t>(e0 + b));
        const Philox gen(seed ^ 0x6469626568617669ull, static_cast<std::uint64_t>(e0 + b));
        for (index_t i = 0; i < N; ++i) {
          const bool random_agent = o.behaviour == DoubleIntegratorBehaviour::Random ||
                                    (o.behaviour == DoubleIntegratorBehaviour::Noisy &&
                                     which.uniform(static_cast<std::uint64_t>(i)) < o.random_fraction);
          for (index_t c = 0; c < 2; ++c) {
            const auto k = static_cast<std::uint64_t>((t * N + i) * 2 + c);
            if (random_agent) a(b, i, c) = amax * (2 * gen.uniform(k) - 1);
            else if (o.behaviour == DoubleIntegratorBehaviour::Noisy)
              a(b, i, c) = std::clamp(a(b, i, c) + o.noise * amax * gen.normal(k), -amax, amax);
          }
        }
      }
      for (index_t b = 0; b < B; ++b)
        for (index_t i = 0; i < N; ++i) {
          float* s = d.states.data() + ((e0 + b) * T + t) * N * 6 + i * 6;
          for (index_t c = 0; c < 2; ++c)
            s[c] = static_cast<float>(env.positions()(b, i, c)), s[2 + c] = static_cast<float>(env.velocities()(b, i, c)),
            s[4 + c] = static_cast<float>(env.goals()(b, i, c));
        }
      const auto r = env.step(a);
      for (index_t b = 0; b < B; ++b)
        for (index_t i = 0; i < N; ++i) {
          const index_t e = e0 + b;
          for (index_t k = 0; k < O; ++k) {
            d.observations(e, t, i, k) = static_cast<float>(obs(b, i, k));
            d.next_observations(e, t, i, k) = static_cast<float>(r.obs(b, i, k));
          }
          for (index_t c = 0; c < 2; ++c) d.actions(e, t, i, c) = static_cast<float>(std::clamp(a(b, i, c), -amax, amax));
          d.rewards(e, t, i) = static_cast<float>(r.reward(b, i));
          d.costs(e, t, i) = static_cast<float>(r.cost(b, i));
        }
      obs = r.obs;
    }
    if (progress) draw_progress(*progress, "episodes", e0 + B, episodes);
  }
  return d;
}

/// Mean over episodes of the per-episode sums (over steps, averaged over agents) of rewards and of costs,
/// and the fraction of episodes without any cost (the safe rate).
struct DatasetSafetyStats {
  double mean_return = 0, mean_cost = 0, safe_rate = 0;
};
inline DatasetSafetyStats safety_stats(const data::OfflineDataset<float>& d) {
  require<ShapeError>(!d.costs.empty(), "safety_stats: the dataset has no costs");
  DatasetSafetyStats s;
  const index_t E = d.episodes(), A = d.agents();
  for (index_t e = 0; e < E; ++e) {
    double r = 0, c = 0;
    for (index_t t = 0; t < d.episode_length(e); ++t)
      for (index_t i = 0; i < A; ++i) r += d.rewards(e, t, i) / double(A), c += d.costs(e, t, i) / double(A);
    s.mean_return += r / double(E), s.mean_cost += c / double(E), s.safe_rate += (c == 0) / double(E);
  }
  return s;
}

}  // namespace coordiff::env
