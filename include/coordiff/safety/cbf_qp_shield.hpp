#pragma once
// A CBF-QP shield on any Barrier of one agent's feature row (the learned MLP of eq. 12, or an analytic
// one): every agent replaces the action its policy asks for by the closest one in the action box that
// keeps eq. 12's derivative condition on the next step,
//     (h(z_i') - h(z_i)) / dt + alpha h(z_i) >= gamma,          z_i' = agent i's features after the step,
// linearised in its own action around the current iterate a: h(z_i'(u)) ~ h(z_i'(a)) + g_i.(u - a), with
// g_i from forward differences of a one-step prediction (the environment's own step: the barrier is
// learned, the dynamics are not). Each agent holds the others at their planned actions, since it cannot
// know their corrections (a decentralised shield), so it is one half-plane per agent and the exact
// two-variable QP of braking_shield.hpp; `iterations` > 1 re-linearises its own action at the last
// solution (sequential QP), still toward the policy's action. Unlike the braking shield it needs no safe set by hand, and it is only as good as
// the barrier: where h misjudges a dangerous state as safe it lets the agent in.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/safety/barrier.hpp"
#include "coordiff/safety/braking_shield.hpp"
#include "coordiff/safety/cbf_training.hpp"

namespace coordiff::safety {

struct CbfQpShieldOptions {
  double bound = 1.0;         ///< the action box |a_x|, |a_y| <= bound
  double step = 1e-2;         ///< forward-difference step, as a fraction of bound
  index_t iterations = 2;     ///< linearisations (sequential QP)
  CbfLossOptions condition;   ///< gamma, alpha, dt of the condition (those the barrier was trained with)

  void validate() const {
    require<ConfigError>(bound > 0 && std::isfinite(bound) && step > 0 && step <= 0.5 && iterations >= 1,
                         "CbfQpShieldOptions: need bound > 0, 0 < step <= 0.5 and iterations >= 1; got ", bound, ", ", step,
                         ", ", iterations);
    condition.validate();
  }
};

/// Shielded actions [B, N, 2] for the actions [B, N, 2] a policy chose, given every agent's present
/// features now [B, N, F] and predict(actions [B, N, 2]) -> Tensor<T> [B, N, F], every agent's features
/// after one step with those actions. predict is called 1 + 2N times in the first iteration and 3N in each
/// later one; `where` names the caller in errors.
template <class T, class H, class Predict>
Tensor<double> cbf_qp_shield(const H& barrier, const Tensor<T>& now, const Tensor<double>& actions, Predict&& predict,
                             const CbfQpShieldOptions& o, const std::string& where) {
  static_assert(check_barrier<H, T>());
  o.validate();
  require<ShapeError>(actions.rank() == 3 && actions.dim(2) == 2, where, ": expected actions [B, N, 2], got ",
                      to_string(actions.shape()));
  const index_t B = actions.dim(0), N = actions.dim(1);
  require<ShapeError>(now.rank() == 3 && now.dim(0) == B && now.dim(1) == N, where, ": expected features [", B, ", ", N,
                      ", F] for actions ", to_string(actions.shape()), ", got ", to_string(now.shape()));
  require_finite(actions, where + " actions");
  const index_t F = now.dim(2);
  const auto values_of = [&](const Tensor<T>& z, const char* what) {
    require<ShapeError>(z.rank() == 3 && z.dim(0) == B && z.dim(1) == N && z.dim(2) == F, where, ": ", what,
                        " features: expected [", B, ", ", N, ", ", F, "], got ", to_string(z.shape()));
    require_finite(z, where + " " + what + " features");
    return barrier.values(z.reshape({B * N, F}));
  };
  const Tensor<T> h_now = values_of(now, "present");
  const CbfLossOptions& c = o.condition;
  const double delta = o.step * o.bound;
  Tensor<double> planned(actions.shape());
  for (index_t k = 0; k < planned.size(); ++k) planned[k] = std::clamp(actions[k], -o.bound, o.bound);
  Tensor<double> a = planned;  // the iterate
  // Agent i's view of the next step: its own action at the iterate, every other agent's at its plan.
  const auto own_at_iterate = [&](index_t i) {
    Tensor<double> u = planned;
    for (index_t b = 0; b < B; ++b) u(b, i, 0) = a(b, i, 0), u(b, i, 1) = a(b, i, 1);
    return u;
  };
  std::vector<double> h_next(static_cast<std::size_t>(B * N)), gradient(static_cast<std::size_t>(B * N * 2));
  for (index_t it = 0; it < o.iterations; ++it) {
    // h(z_i') at the iterate; while every agent is at its plan one prediction serves them all.
    if (it == 0) {
      const Tensor<T> h = values_of(predict(planned), "predicted");
      for (index_t r = 0; r < B * N; ++r) h_next[static_cast<std::size_t>(r)] = static_cast<double>(h[r]);
    } else {
      for (index_t i = 0; i < N; ++i) {
        const Tensor<T> h = values_of(predict(own_at_iterate(i)), "predicted");
        for (index_t b = 0; b < B; ++b) h_next[static_cast<std::size_t>(b * N + i)] = static_cast<double>(h[b * N + i]);
      }
    }
    // d h(z_i') / d a_i by axis (a forward difference, inward at the box's edge).
    for (index_t i = 0; i < N; ++i)
      for (index_t axis = 0; axis < 2; ++axis) {
        Tensor<double> moved = own_at_iterate(i);
        std::vector<double> signed_step(static_cast<std::size_t>(B));
        for (index_t b = 0; b < B; ++b) {
          double& v = moved(b, i, axis);
          signed_step[static_cast<std::size_t>(b)] = v + delta <= o.bound ? delta : -delta;
          v += signed_step[static_cast<std::size_t>(b)];
        }
        const Tensor<T> h_moved = values_of(predict(moved), "predicted");
        for (index_t b = 0; b < B; ++b)
          gradient[static_cast<std::size_t>((b * N + i) * 2 + axis)] =
              (static_cast<double>(h_moved[b * N + i]) - h_next[static_cast<std::size_t>(b * N + i)]) /
              signed_step[static_cast<std::size_t>(b)];
      }
    Tensor<double> solved(a.shape());
    for (index_t b = 0; b < B; ++b)
      for (index_t i = 0; i < N; ++i) {
        const auto r = static_cast<std::size_t>(b * N + i);
        const double gx = gradient[2 * r], gy = gradient[2 * r + 1], h = static_cast<double>(h_now[b * N + i]);
        // h(z') >= h(z) + dt (gamma - alpha h(z)), in u: g.u >= that - h(z'(a)) + g.a.
        const double need = h + c.dt * (c.margin - c.alpha * h);
        const HalfPlane keep{gx, gy, need - h_next[r] + gx * a(b, i, 0) + gy * a(b, i, 1)};
        const PlanarAccel u = closest_admissible({actions(b, i, 0), actions(b, i, 1)}, {keep}, o.bound);
        solved(b, i, 0) = u.x, solved(b, i, 1) = u.y;
      }
    a = std::move(solved);
  }
  return a;
}

}  // namespace coordiff::safety
