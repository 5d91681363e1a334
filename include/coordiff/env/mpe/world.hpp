#pragma once
// OMAR simple_world (OMAR multiagent/scenarios/simple_world.py; the task MASTARS/MADiff/CFCQL call "World"): 3 adversaries
// (size 0.075, force 9a, max speed 1.0) chase 1 prey (size 0.045, force 16a, max speed 1.3). Landmarks,
// in this order: 1 obstacle (size 0.2, collides), 2 food (size 0.03), 2 forests (size 0.3); food and
// forests do not collide. Agents are drawn in [-1,1]^2, all landmarks in [-0.9,0.9]^2. Every agent is
// a silent leader in OMAR, so there is no communication and forest masking never hides anyone.
// Observation (adversary 24, prey 22): [vel(2), pos(2), landmark - pos (5x2), other - pos for the
// other agents in index order (3x2), velocity of each non-adversary other agent (2 for an adversary),
// in_forest(2): +1 if the agent overlaps forest f (d < size + 0.3), else -1 (openai world_comm)].
// Rewards (OMAR L201-245):
//   adversary (identical for all): +5 per (prey, adversary) overlapping pair - 0.1 * sum_adv d(prey, adv);
//   prey: -5 per overlapping adversary + 0.1 * sum_adv d(prey, adv) - 2 * sum_coord bound(|p_c|)
//         + 2 per food it overlaps + 0.05 * min_food d(prey, food) (the OMAR sign, kept on purpose).
#include <algorithm>
#include <array>
#include <limits>

#include "coordiff/env/mpe/batched_env.hpp"
#include "coordiff/env/mpe/physics.hpp"

namespace coordiff::env::mpe {

struct WorldScenario {
  static constexpr const char* kName = "world";
  static constexpr index_t kAgents = 4, kLearners = 3, kLandmarks = 5, kEntities = 9;
  static constexpr index_t kMaxObsDim = 24;
  static constexpr double kLandmarkRange = 0.9;
  static constexpr double kAdversarySize = 0.075, kPreySize = 0.045;
  static constexpr double kObstacleSize = 0.2, kFoodSize = 0.03, kForestSize = 0.3;
  static constexpr index_t kObstacle = 4, kFood0 = 5, kForest0 = 7;

  static constexpr std::array<EntitySpec, 9> entities() {
    std::array<EntitySpec, 9> s{};
    for (std::size_t i = 0; i < 3; ++i) s[i] = {kAdversarySize, true, true, 1.0, action_force_scale(3.0)};
    s[3] = {kPreySize, true, true, 1.3, action_force_scale(4.0)};
    s[4] = {kObstacleSize, false, true, -1.0, 0.0};
    s[5] = s[6] = {kFoodSize, false, false, -1.0, 0.0};
    s[7] = s[8] = {kForestSize, false, false, -1.0, 0.0};
    return s;
  }
  static constexpr index_t obs_dim(index_t agent) { return agent < kLearners ? 24 : 22; }

  static void observe(const double* pos, const double* vel, index_t i, double* o) {
    const double* p = pos + 2 * i;
    const double size = i < kLearners ? kAdversarySize : kPreySize;
    *o++ = vel[2 * i];
    *o++ = vel[2 * i + 1];
    *o++ = p[0];
    *o++ = p[1];
    for (index_t l = kAgents; l < kEntities; ++l) *o++ = pos[2 * l] - p[0], *o++ = pos[2 * l + 1] - p[1];
    for (index_t j = 0; j < kAgents; ++j)
      if (j != i) *o++ = pos[2 * j] - p[0], *o++ = pos[2 * j + 1] - p[1];
    for (index_t j = kLearners; j < kAgents; ++j)
      if (j != i) *o++ = vel[2 * j], *o++ = vel[2 * j + 1];
    for (index_t f = kForest0; f < kForest0 + 2; ++f)
      *o++ = is_collision(p, pos + 2 * f, size, kForestSize) ? 1.0 : -1.0;
  }

  static void rewards(const double* pos, const double* /*vel*/, double* r) {
    const double* prey = pos + 2 * kLearners;
    double adv = 0.0, good = 0.0;
    for (index_t a = 0; a < kLearners; ++a) {
      const double d = distance(prey, pos + 2 * a);
      adv -= 0.1 * d;
      good += 0.1 * d;
      if (is_collision(prey, pos + 2 * a, kPreySize, kAdversarySize)) adv += 5.0, good -= 5.0;
    }
    good -= 2.0 * (boundary_penalty(prey[0]) + boundary_penalty(prey[1]));
    double food_min = std::numeric_limits<double>::infinity();
    for (index_t f = kFood0; f < kFood0 + 2; ++f) {
      if (is_collision(prey, pos + 2 * f, kPreySize, kFoodSize)) good += 2.0;
      food_min = std::min(food_min, distance(prey, pos + 2 * f));
    }
    good += 0.05 * food_min;
    for (index_t a = 0; a < kLearners; ++a) r[a] = adv;
    r[kLearners] = good;
  }
};

using WorldEnv = BatchedEnv<WorldScenario>;

}  // namespace coordiff::env::mpe
