#pragma once
// SafeSpread: simple_spread (spread.hpp) with two static circular hazards and a per-agent safety cost for
// paper 001. Hazards (radius 0.25, no collision force, drawn in [-1, 1]^2 at reset like the landmarks)
// are seen in the observation; an agent's cost is 1 at a step where it is in the dangerous set of
// Definition 3 (safety/safe_set.hpp): inside a hazard, or closer to another agent than V^2/(2b) + kappa_s
// (V the closing speed) with b = 5 (the agents' largest acceleration, force 5 on unit mass) and kappa_s =
// 0.35 (two agent radii, 0.3, plus 0.05). Rewards are Spread's.
// Observation of agent i (22): Spread's 18, then hazard_h - pos_i for both hazards (2x2).
#include <array>
#include <vector>

#include "coordiff/env/mpe/batched_env.hpp"
#include "coordiff/env/mpe/physics.hpp"
#include "coordiff/env/mpe/spread.hpp"
#include "coordiff/safety/safe_set.hpp"

namespace coordiff::env::mpe {

struct SafeSpreadScenario {
  static constexpr const char* kName = "safe-spread";
  static constexpr index_t kAgents = 3, kLearners = 3, kLandmarks = 3, kHazards = 2, kEntities = 8;
  static constexpr index_t kMaxObsDim = 22;
  static constexpr double kLandmarkRange = 1.0;
  static constexpr double kAgentSize = SpreadScenario::kAgentSize;
  static constexpr double kHazardRadius = 0.25;
  static constexpr safety::SafeDistance kSafeDistance{5.0, 0.35, safety::RelativeSpeed::Closing};

  static constexpr std::array<EntitySpec, 8> entities() {
    std::array<EntitySpec, 8> s{};
    const auto spread = SpreadScenario::entities();
    for (std::size_t e = 0; e < 6; ++e) s[e] = spread[e];
    for (std::size_t h = 6; h < 8; ++h) s[h] = {kHazardRadius, false, false, -1.0, 0.0};
    return s;
  }
  static constexpr index_t obs_dim(index_t /*agent*/) { return 22; }

  static void observe(const double* pos, const double* vel, index_t i, double* o) {
    SpreadScenario::observe(pos, vel, i, o);
    o += 18;
    for (index_t h = 6; h < kEntities; ++h) *o++ = pos[2 * h] - pos[2 * i], *o++ = pos[2 * h + 1] - pos[2 * i + 1];
  }

  static void rewards(const double* pos, const double* vel, double* r) { SpreadScenario::rewards(pos, vel, r); }

  static std::vector<safety::Hazard> hazards(const double* pos) {
    std::vector<safety::Hazard> h;
    for (index_t e = 6; e < kEntities; ++e) h.push_back({pos[2 * e], pos[2 * e + 1], kHazardRadius});
    return h;
  }
  /// 1 where agent i is in the dangerous set (agent centres inside a hazard count; agents' radii do not).
  static void costs(const double* pos, const double* vel, double* c) {
    const auto hz = hazards(pos);
    for (index_t i = 0; i < kAgents; ++i) c[i] = safety::agent_margin(pos, vel, kAgents, i, kSafeDistance, hz, 0.0) < 0 ? 1.0 : 0.0;
  }
};

using SafeSpreadEnv = BatchedEnv<SafeSpreadScenario>;

/// SafeSpread's costs [N, H, A] of observation windows [N, H, A, 22] (raw units, e.g. generated ones):
/// the dangerous set of Definition 3 (SafeSpreadScenario::costs) with every agent's position and velocity
/// read from its own observation and the hazards from agent i's for agent i's cost. On observations of
/// the environment this is its cost of the same state.
template <class T>
Tensor<T> safe_spread_costs_from_observations(const Tensor<T>& w) {
  using S = SafeSpreadScenario;
  constexpr index_t A = S::kAgents, O = S::obs_dim(0);
  require<ShapeError>(w.rank() == 4 && w.dim(2) == A && w.dim(3) == O,
                      "safe_spread_costs_from_observations: expected windows [N, H, 3, 22], got ", to_string(w.shape()));
  const index_t N = w.dim(0), H = w.dim(1);
  Tensor<T> c({N, H, A});
  std::array<double, 2 * A> pos{}, vel{};
  for (index_t n = 0; n < N; ++n)
    for (index_t t = 0; t < H; ++t) {
      const T* o = w.data() + (n * H + t) * A * O;
      for (index_t j = 0; j < A; ++j)
        for (index_t k = 0; k < 2; ++k) vel[2 * j + k] = o[j * O + k], pos[2 * j + k] = o[j * O + 2 + k];
      for (index_t i = 0; i < A; ++i) {
        const T* oi = o + i * O;
        std::vector<safety::Hazard> hz;
        for (index_t h = 0; h < S::kHazards; ++h)
          hz.push_back({pos[2 * i] + oi[18 + 2 * h], pos[2 * i + 1] + oi[19 + 2 * h], S::kHazardRadius});
        c(n, t, i) = safety::agent_margin(pos.data(), vel.data(), A, i, S::kSafeDistance, hz, 0.0) < 0 ? T(1) : T(0);
      }
    }
  return c;
}


}  // namespace coordiff::env::mpe
