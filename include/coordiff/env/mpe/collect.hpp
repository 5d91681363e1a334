#pragma once
// Rolls a behaviour policy out in a batched MPE scenario and returns the episodes as an offline dataset
// (docs/formats.md layout): observations, actions, rewards, next observations and the global state of
// the learners, E episodes of exactly 25 steps. Episode e is reset from the stream (seed, e), so the data
// do not depend on how many environments run in parallel. terminals are 0: MPE episodes end by the time
// limit only, and OMAR's learners bootstrap through it.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/core/progress.hpp"
#include "coordiff/data/dataset.hpp"
#include "coordiff/env/mpe/batched_env.hpp"

namespace coordiff::env::mpe {

/// policy(obs [B, L, O], episode index of row 0, step) -> actions [B, L, 2].
using BehaviourPolicy = std::function<Tensor<double>(const Tensor<double>&, std::uint64_t, index_t)>;

/// Uniform random actions in [-1, 1]^2 from Philox(seed, episode): the "random" quality.
inline BehaviourPolicy uniform_random_policy(std::uint64_t seed) {
  return [seed](const Tensor<double>& obs, std::uint64_t first_episode, index_t step) {
    const index_t B = obs.dim(0), L = obs.dim(1);
    Tensor<double> a({B, L, 2});
    for (index_t b = 0; b < B; ++b) {
      const Philox gen(seed ^ 0x72616e646f6dull, first_episode + static_cast<std::uint64_t>(b));
      for (index_t j = 0; j < L * 2; ++j)
        a[b * L * 2 + j] = 2 * gen.uniform(static_cast<std::uint64_t>(step * L * 2 + j)) - 1;
    }
    return a;
  };
}

namespace detail {
/// An empty dataset of E episodes in the layout collect_episodes writes.
template <class Env>
data::OfflineDataset<float> allocate_episodes(index_t E) {
  constexpr index_t T = kEpisodeLength, L = Env::kLearners, O = Env::kObsDim;
  data::OfflineDataset<float> d;
  d.observations = Tensor<float>({E, T, L, O});
  d.next_observations = Tensor<float>({E, T, L, O});
  d.actions = Tensor<float>({E, T, L, 2});
  d.rewards = Tensor<float>({E, T, L});
  d.terminals = Tensor<float>({E, T});
  d.states = Tensor<float>({E, T, Env::kStateDim});
  if constexpr (Env::kHasCosts) d.costs = Tensor<float>({E, T, L});
  return d;
}
/// Stores step t of environments b = 0..B-1 as episodes e0 + b.
template <class Env>
void record_step(data::OfflineDataset<float>& d, index_t e0, index_t t, const Tensor<double>& obs, const Tensor<double>& state,
                 const Tensor<double>& actions, const typename Env::StepResult& r) {
  constexpr index_t L = Env::kLearners, O = Env::kObsDim, S = Env::kStateDim;
  for (index_t b = 0; b < obs.dim(0); ++b) {
    const index_t e = e0 + b;
    for (index_t i = 0; i < L; ++i) {
      for (index_t k = 0; k < O; ++k) {
        d.observations(e, t, i, k) = static_cast<float>(obs(b, i, k));
        d.next_observations(e, t, i, k) = static_cast<float>(r.obs(b, i, k));
      }
      for (index_t u = 0; u < 2; ++u) d.actions(e, t, i, u) = static_cast<float>(actions(b, i, u));
      d.rewards(e, t, i) = static_cast<float>(r.reward(b, i));
      if constexpr (Env::kHasCosts) d.costs(e, t, i) = static_cast<float>(r.cost(b, i));
    }
    for (index_t k = 0; k < S; ++k) d.states(e, t, k) = static_cast<float>(state(b, k));
  }
}
}  // namespace detail

/// `episodes` episodes, `parallel` environments at a time; progress (if given) gets a progress bar.
template <class Env>
data::OfflineDataset<float> collect_episodes(index_t episodes, std::uint64_t seed, const BehaviourPolicy& policy,
                                             index_t parallel = 16, std::ostream* progress = nullptr) {
  require<ConfigError>(episodes >= 1 && parallel >= 1, "collect_episodes: episodes and parallel must be >= 1, got ",
                       episodes, " and ", parallel);
  data::OfflineDataset<float> d = detail::allocate_episodes<Env>(episodes);
  for (index_t e0 = 0; e0 < episodes; e0 += parallel) {
    const index_t B = std::min(parallel, episodes - e0);
    Env env(B);
    env.reset(seed, static_cast<std::uint64_t>(e0));
    Tensor<double> obs = env.observations();
    for (index_t t = 0; t < kEpisodeLength; ++t) {
      const Tensor<double> state = env.state();
      const Tensor<double> a = policy(obs, static_cast<std::uint64_t>(e0), t);
      require_shape(a.shape(), {B, Env::kLearners, 2}, "collect_episodes: policy actions");
      const auto r = env.step(a);
      detail::record_step<Env>(d, e0, t, obs, state, a, r);
      obs = r.obs;
    }
    if (progress) draw_progress(*progress, "episodes", e0 + B, episodes);
  }
  return d;
}

/// The OMAR evaluation return of each episode: spread sum_t mean_i r_i; tag and world sum_t r_0 (all
/// adversaries share the reward).
inline std::vector<double> episode_returns(const data::OfflineDataset<float>& d, bool mean_over_agents) {
  std::vector<double> out(static_cast<std::size_t>(d.episodes()), 0.0);
  for (index_t e = 0; e < d.episodes(); ++e)
    for (index_t t = 0; t < d.steps(); ++t) {
      double r = 0;
      if (mean_over_agents) {
        for (index_t i = 0; i < d.agents(); ++i) r += d.rewards(e, t, i) / static_cast<double>(d.agents());
      } else {
        r = d.rewards(e, t, 0);
      }
      out[static_cast<std::size_t>(e)] += r;
    }
  return out;
}

}  // namespace coordiff::env::mpe
