#pragma once
// simple_spread (cooperative navigation) in the OMAR variant (OMAR multiagent/scenarios/simple_spread.py): 3 agents (size
// 0.15, collide, force 5a, no speed limit) and 3 landmarks (size 0.05, no collision); all drawn
// uniformly in [-1,1]^2 at reset.
// Observation of agent i (18): [vel_i(2), pos_i(2), landmark_l - pos_i (3x2), pos_j - pos_i for the
// other agents in index order (2x2), comm of the other agents (2x2, always zero: agents are silent)].
// Reward of agent i (OMAR, per agent, not shared): sum_l min(1 / min_a d(a, l), 10) - 5 per *other*
// agent overlapping i (d < 0.3).
#include <algorithm>
#include <array>
#include <limits>

#include "coordiff/env/mpe/batched_env.hpp"
#include "coordiff/env/mpe/physics.hpp"

namespace coordiff::env::mpe {

struct SpreadScenario {
  static constexpr const char* kName = "spread";
  static constexpr index_t kAgents = 3, kLearners = 3, kLandmarks = 3, kEntities = 6;
  static constexpr index_t kMaxObsDim = 18;
  static constexpr double kLandmarkRange = 1.0;
  static constexpr double kAgentSize = 0.15;

  static constexpr std::array<EntitySpec, 6> entities() {
    std::array<EntitySpec, 6> s{};
    for (std::size_t i = 0; i < 3; ++i) s[i] = {kAgentSize, true, true, -1.0, action_force_scale(0)};
    for (std::size_t l = 3; l < 6; ++l) s[l] = {0.05, false, false, -1.0, 0.0};
    return s;
  }
  static constexpr index_t obs_dim(index_t /*agent*/) { return 18; }

  static void observe(const double* pos, const double* vel, index_t i, double* o) {
    const double* p = pos + 2 * i;
    *o++ = vel[2 * i];
    *o++ = vel[2 * i + 1];
    *o++ = p[0];
    *o++ = p[1];
    for (index_t l = kAgents; l < kEntities; ++l) *o++ = pos[2 * l] - p[0], *o++ = pos[2 * l + 1] - p[1];
    for (index_t j = 0; j < kAgents; ++j)
      if (j != i) *o++ = pos[2 * j] - p[0], *o++ = pos[2 * j + 1] - p[1];
    for (index_t k = 0; k < 4; ++k) *o++ = 0.0;
  }

  static void rewards(const double* pos, const double* /*vel*/, double* r) {
    double cover = 0.0;
    for (index_t l = kAgents; l < kEntities; ++l) {
      double dmin = std::numeric_limits<double>::infinity();
      for (index_t a = 0; a < kAgents; ++a) dmin = std::min(dmin, distance(pos + 2 * a, pos + 2 * l));
      cover += std::min(1.0 / dmin, 10.0);  // d == 0 gives +inf -> 10, as in NumPy
    }
    for (index_t i = 0; i < kAgents; ++i) {
      r[i] = cover;
      for (index_t j = 0; j < kAgents; ++j)
        if (j != i && is_collision(pos + 2 * i, pos + 2 * j, kAgentSize, kAgentSize)) r[i] -= 5.0;
    }
  }
};

using SpreadEnv = BatchedEnv<SpreadScenario>;

}  // namespace coordiff::env::mpe
