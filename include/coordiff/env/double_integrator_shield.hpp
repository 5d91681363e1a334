#pragma once
// The braking shield (safety/braking_shield.hpp) on the double integrator. Each agent filters its own
// action with its own QP, from what its sensors give: the relative positions and velocities of every
// other agent and every obstacle (not only the K nearest its policy observes: at N = 8 the agents a
// 3-neighbour view misses cause most of the violations left).
#include "coordiff/env/double_integrator.hpp"
#include "coordiff/safety/braking_shield.hpp"

namespace coordiff::env {

/// Shield constants from the task: the box a_max, 60 % of a_max as the deceleration the barrier counts on
/// and 0.1 of extra distance (reserves for the 0.1 s between decisions and for conflicting neighbours; the
/// costs' Definition 3 uses a_max itself and no margin), kappa_s between agents, the agent radius at obstacles.
inline safety::BrakingShieldOptions double_integrator_shield_options(const DoubleIntegratorConfig& cfg) {
  safety::BrakingShieldOptions o;
  o.max_accel = cfg.max_accel;
  o.braking = 0.6 * cfg.max_accel;
  o.margin = 0.1;
  o.alpha = 2.0;
  o.stopped_gap = cfg.safe_distance().stopped_gap;
  o.obstacle_clearance = cfg.agent_radius;
  return o;
}

/// Shielded actions [B, N, 2] for the actions [B, N, 2] a policy chose in the environment's present state.
inline Tensor<double> double_integrator_shield(const DoubleIntegratorEnv& e, const Tensor<double>& actions,
                                               const safety::BrakingShieldOptions& o) {
  const Tensor<double>&p = e.positions(), &c = e.obstacle_centres();
  const double radius = e.config().obstacle_radius;
  const index_t M = e.config().obstacles;
  return safety::shield_actions(p, e.velocities(), e.agents(), actions, 1.0, o, "double_integrator_shield",
                                [&](index_t b, index_t i, safety::PlanarView& view) {
                                  for (index_t m = 0; m < M; ++m)
                                    view.obstacles.insert(view.obstacles.end(),
                                                          {c(b, m, 0) - p(b, i, 0), c(b, m, 1) - p(b, i, 1), radius});
                                });
}

}  // namespace coordiff::env
