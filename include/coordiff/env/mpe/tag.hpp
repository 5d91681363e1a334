#pragma once
// simple_tag (predator-prey) in the OMAR variant (OMAR multiagent/scenarios/simple_tag.py): 3 adversaries (size 0.075,
// accel 3 -> force 9a, max speed 1.0) chase 1 prey (size 0.05, accel 4 -> force 16a, max speed 1.3)
// among 2 obstacles (size 0.2, collide, immovable). Agents are drawn in [-1,1]^2, obstacles in
// [-0.9,0.9]^2. The adversaries are the learners; the prey is driven inside the env (batched_env.hpp).
// Observation (adversary 16, prey 14): [vel(2), pos(2), obstacle - pos (2x2), other - pos for the other
// agents in index order (3x2), velocity of each non-adversary other agent (2 for an adversary, none
// for the prey)].
// Rewards (OMAR shape=True for both sides):
//   adversary (identical for all): +10 per (prey, adversary) overlapping pair
//                                  - 0.1 * sum_adv min_prey d(prey, adv);
//   prey: -10 per overlapping adversary + 0.1 * sum_adv d(prey, adv) - sum_coord bound(|p_c|).
#include <algorithm>
#include <array>
#include <limits>

#include "coordiff/env/mpe/batched_env.hpp"
#include "coordiff/env/mpe/physics.hpp"

namespace coordiff::env::mpe {

struct TagScenario {
  static constexpr const char* kName = "tag";
  static constexpr index_t kAgents = 4, kLearners = 3, kLandmarks = 2, kEntities = 6;
  static constexpr index_t kMaxObsDim = 16;
  static constexpr double kLandmarkRange = 0.9;
  static constexpr double kAdversarySize = 0.075, kPreySize = 0.05, kObstacleSize = 0.2;

  static constexpr std::array<EntitySpec, 6> entities() {
    std::array<EntitySpec, 6> s{};
    for (std::size_t i = 0; i < 3; ++i) s[i] = {kAdversarySize, true, true, 1.0, action_force_scale(3.0)};
    s[3] = {kPreySize, true, true, 1.3, action_force_scale(4.0)};
    for (std::size_t l = 4; l < 6; ++l) s[l] = {kObstacleSize, false, true, -1.0, 0.0};
    return s;
  }
  static constexpr index_t obs_dim(index_t agent) { return agent < kLearners ? 16 : 14; }

  static void observe(const double* pos, const double* vel, index_t i, double* o) {
    const double* p = pos + 2 * i;
    *o++ = vel[2 * i];
    *o++ = vel[2 * i + 1];
    *o++ = p[0];
    *o++ = p[1];
    for (index_t l = kAgents; l < kEntities; ++l) *o++ = pos[2 * l] - p[0], *o++ = pos[2 * l + 1] - p[1];
    for (index_t j = 0; j < kAgents; ++j)
      if (j != i) *o++ = pos[2 * j] - p[0], *o++ = pos[2 * j + 1] - p[1];
    for (index_t j = kLearners; j < kAgents; ++j)
      if (j != i) *o++ = vel[2 * j], *o++ = vel[2 * j + 1];
  }

  static void rewards(const double* pos, const double* /*vel*/, double* r) {
    const double* prey = pos + 2 * kLearners;
    double adv = 0.0, good = 0.0;
    for (index_t a = 0; a < kLearners; ++a) {
      const double d = distance(prey, pos + 2 * a);
      adv -= 0.1 * d;  // one prey: min over prey is this distance
      good += 0.1 * d;
      if (is_collision(prey, pos + 2 * a, kPreySize, kAdversarySize)) adv += 10.0, good -= 10.0;
    }
    good -= boundary_penalty(prey[0]) + boundary_penalty(prey[1]);
    for (index_t a = 0; a < kLearners; ++a) r[a] = adv;
    r[kLearners] = good;
  }
};

using TagEnv = BatchedEnv<TagScenario>;

}  // namespace coordiff::env::mpe
