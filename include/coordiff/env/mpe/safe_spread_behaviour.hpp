#pragma once
// Scripted behaviour for SafeSpread (safe_spread.hpp), for paper 001's datasets and as the planners'
// reference controller.
//   nominal  every agent solves the same landmark assignment from its own observation (the permutation of
//            landmarks to agents with the smallest summed distance; all agents see the same geometry, so
//            they agree) and drives to its landmark with a PD law a = clip(k_p (l - p) - k_d v, -1, 1).
//            It ignores the hazards and the other agents: efficient and often unsafe.
//   noisy    nominal plus Gaussian noise of standard deviation `noise` (actions clipped to [-1, 1]), and
//            with probability `random_fraction` per agent and episode uniform random actions throughout,
//            so that the data hold both safe and unsafe segments (as the double integrator's).
//   random   uniform actions in [-1, 1]^2 (collect.hpp's uniform_random_policy).
// Every draw is Philox keyed by (seed, episode): an episode does not depend on the batch it ran in.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/env/mpe/safe_spread.hpp"

namespace coordiff::env::mpe {

enum class SafeSpreadBehaviour { Random, Nominal, Noisy };

inline SafeSpreadBehaviour parse_safe_spread_behaviour(const std::string& s) {
  if (s == "random") return SafeSpreadBehaviour::Random;
  if (s == "nominal") return SafeSpreadBehaviour::Nominal;
  require<ConfigError>(s == "noisy", "safe-spread behaviour must be random, nominal or noisy, got '", s, "'");
  return SafeSpreadBehaviour::Noisy;
}

struct SafeSpreadBehaviourOptions {
  SafeSpreadBehaviour behaviour = SafeSpreadBehaviour::Noisy;
  double kp = 2.0;               ///< PD gains of the nominal controller (actions are forces / 5)
  double kd = 1.0;
  double noise = 0.3;            ///< noisy: std of the added noise (actions live in [-1, 1])
  double random_fraction = 0.2;  ///< noisy: agents acting at random for a whole episode
  index_t parallel = 64;

  void validate() const {
    require<ConfigError>(kp >= 0 && kd >= 0 && noise >= 0 && random_fraction >= 0 && random_fraction <= 1,
                         "safe-spread behaviour: need kp, kd, noise >= 0 and random_fraction in [0, 1]");
  }
};

/// The landmark each agent of SafeSpread drives to under the nominal controller, from agent i's
/// observation o (22 values, layout in safe_spread.hpp): the index into the landmarks.
inline index_t nominal_landmark(const double* o, index_t i) {
  constexpr index_t A = SafeSpreadScenario::kAgents;
  // Positions relative to agent i: itself at 0, the others in index order skipping i.
  std::array<std::array<double, 2>, A> agent{};
  for (index_t j = 0, slot = 0; j < A; ++j) {
    if (j == i) continue;
    agent[static_cast<std::size_t>(j)] = {o[10 + 2 * slot], o[11 + 2 * slot]};
    ++slot;
  }
  std::array<index_t, A> perm{};
  std::iota(perm.begin(), perm.end(), index_t{0});
  double best = std::numeric_limits<double>::infinity();
  index_t mine = i;
  do {
    double total = 0;
    for (index_t j = 0; j < A; ++j) {
      const auto& p = agent[static_cast<std::size_t>(j)];
      const index_t l = perm[static_cast<std::size_t>(j)];
      total += std::hypot(o[4 + 2 * l] - p[0], o[5 + 2 * l] - p[1]);
    }
    if (total < best) best = total, mine = perm[static_cast<std::size_t>(i)];
  } while (std::next_permutation(perm.begin(), perm.end()));
  return mine;
}

/// Nominal actions [B, L, 2] for observations [B, L, 22].
inline Tensor<double> safe_spread_nominal_actions(const Tensor<double>& obs, double kp, double kd) {
  constexpr index_t O = SafeSpreadScenario::obs_dim(0);
  require<ShapeError>(obs.rank() == 3 && obs.dim(1) == SafeSpreadScenario::kLearners && obs.dim(2) == O,
                      "safe-spread nominal controller: expected observations [B, 3, 22], got ", to_string(obs.shape()));
  const index_t B = obs.dim(0), L = obs.dim(1);
  Tensor<double> a({B, L, 2});
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < L; ++i) {
      const double* o = obs.data() + (b * L + i) * O;
      const index_t l = nominal_landmark(o, i);
      for (index_t c = 0; c < 2; ++c) a(b, i, c) = std::clamp(kp * o[4 + 2 * l + c] - kd * o[c], -1.0, 1.0);
    }
  return a;
}

/// The behaviour of `o` as a collect_episodes policy.
inline BehaviourPolicy safe_spread_policy(const SafeSpreadBehaviourOptions& o, std::uint64_t seed) {
  o.validate();
  if (o.behaviour == SafeSpreadBehaviour::Random) return uniform_random_policy(seed);
  return [o, seed](const Tensor<double>& obs, std::uint64_t first_episode, index_t step) {
    Tensor<double> a = safe_spread_nominal_actions(obs, o.kp, o.kd);
    if (o.behaviour == SafeSpreadBehaviour::Nominal) return a;
    const index_t B = obs.dim(0), L = obs.dim(1);
    for (index_t b = 0; b < B; ++b) {
      // Two streams per episode: which agents act at random, and the actions' draws.
      const Philox which(seed ^ 0x7373776869636800ull, first_episode + static_cast<std::uint64_t>(b));
      const Philox gen(seed ^ 0x7373626568617669ull, first_episode + static_cast<std::uint64_t>(b));
      for (index_t i = 0; i < L; ++i) {
        const bool random_agent = which.uniform(static_cast<std::uint64_t>(i)) < o.random_fraction;
        for (index_t c = 0; c < 2; ++c) {
          const auto k = static_cast<std::uint64_t>((step * L + i) * 2 + c);
          a(b, i, c) = random_agent ? 2 * gen.uniform(k) - 1 : std::clamp(a(b, i, c) + o.noise * gen.normal(k), -1.0, 1.0);
        }
      }
    }
    return a;
  };
}

}  // namespace coordiff::env::mpe
