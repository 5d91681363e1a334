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
  o.validate();
  const index_t B = e.batch(), N = S::kAgents;
  require_shape(actions.shape(), {B, N, 2}, "safe_spread_shield: actions");
  require_finite(actions, "safe_spread_shield actions");
  const double scale = S::entities()[0].force_scale;  // command per unit of action
  const Tensor<double>&p = e.positions(), &v = e.velocities();
  Tensor<double> out(actions.shape());
  safety::PlanarView view;
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < N; ++i) {
      safety::start_view(i, N, [&](index_t j, index_t k) { return p(b, j, k); }, [&](index_t j, index_t k) { return v(b, j, k); },
                         view);
      for (index_t h = S::kEntities - S::kHazards; h < S::kEntities; ++h)
        view.obstacles.insert(view.obstacles.end(), {p(b, h, 0) - p(b, i, 0), p(b, h, 1) - p(b, i, 1), S::kHazardRadius});
      const auto u = safety::braking_shield(view, {scale * actions(b, i, 0), scale * actions(b, i, 1)}, o);
      out(b, i, 0) = u.x / scale, out(b, i, 1) = u.y / scale;
    }
  return out;
}

}  // namespace coordiff::env::mpe
