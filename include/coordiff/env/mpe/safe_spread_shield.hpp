#pragma once
// The braking shield (safety/braking_shield.hpp) on SafeSpread. An MPE agent's velocity follows
// v <- (1 - damping) v + dt F with F = 5 a for its action a in [-1, 1]^2 (physics.hpp), i.e. dv/dt = u - c v
// with the command u = 5 a and the drag c = damping / dt: the shield's box is |u| <= 5 per axis and its
// drag c. Each agent filters its own action from the positions and velocities of the other two agents and
// the hazards' centres.
#include "coordiff/env/mpe/safe_spread.hpp"
#include "coordiff/safety/braking_shield.hpp"

namespace coordiff::env::mpe {

/// Shield constants from the task: the command box 5 (force 5 a on unit mass), 60 % of it as the
/// deceleration the barrier counts on, the drag 2.5 per second, kappa_s = 0.35 between agents, a hazard's
/// radius itself (its cost counts the agent's centre), 0.05 of extra distance for the 0.1 s between
/// decisions (Definition 3 in the costs uses b = 5 and no margin) and alpha = 5. Braking, margin and alpha
/// were chosen on the nominal controller's episodes of seed 100 (docs/safety.md), not the evaluation seeds.
inline safety::BrakingShieldOptions safe_spread_shield_options() {
  using S = SafeSpreadScenario;
  safety::BrakingShieldOptions o;
  o.max_accel = S::entities()[0].force_scale;
  o.braking = 0.6 * o.max_accel;
  o.drag = kDamping / kDt;
  o.stopped_gap = S::kSafeDistance.stopped_gap;
  o.obstacle_clearance = 0.0;
  o.margin = 0.05;
  o.alpha = 5.0;
  return o;
}

/// Shielded actions [B, 3, 2] (action units, [-1, 1]) for the actions [B, 3, 2] a policy chose in the
/// environment's present state.
inline Tensor<double> safe_spread_shield(const SafeSpreadEnv& e, const Tensor<double>& actions,
                                         const safety::BrakingShieldOptions& o) {
  using S = SafeSpreadScenario;
  const Tensor<double>& p = e.positions();
  return safety::shield_actions(p, e.velocities(), S::kAgents, actions, S::entities()[0].force_scale, o,
                                "safe_spread_shield",
                                [&](index_t b, index_t i, safety::PlanarView& view) {
                                  for (index_t h = S::kEntities - S::kHazards; h < S::kEntities; ++h)
                                    view.obstacles.insert(view.obstacles.end(), {p(b, h, 0) - p(b, i, 0),
                                                                                 p(b, h, 1) - p(b, i, 1), S::kHazardRadius});
                                });
}

}  // namespace coordiff::env::mpe
