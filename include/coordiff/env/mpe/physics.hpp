#pragma once
// Shared physics of the multi-agent particle environments (MPE) in the OMAR variant
// (OMAR's multiagent/core.py and environment.py). All masses are 1 (the density is never
// used), so the OMAR mass-ratio scaling of contact forces is a no-op and F/m = F.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "coordiff/core/tensor.hpp"

namespace coordiff::env::mpe {

inline constexpr double kDt = 0.1;
inline constexpr double kDamping = 0.25;
inline constexpr double kContactForce = 100.0;
inline constexpr double kContactMargin = 1e-3;
/// OMAR/CFCQL run exactly this many steps per episode; the original MPE never terminates.
inline constexpr index_t kEpisodeLength = 25;

/// One particle. Agents come first in an environment's entity list, then landmarks.
struct EntitySpec {
  double size = 0.05;
  bool movable = false;
  bool collide = false;
  double max_speed = -1.0;    ///< negative: no speed limit
  double force_scale = 0.0;   ///< agents: F = force_scale * action (see action_force_scale)
};

/// OMAR maps a Box(-1,1)^2 action a to u = s*a with s = accel or 5, and its core multiplies again by
/// m*accel when accel is set: spread 5a, tag/world adversary 9a, prey 16a (OMAR environment.py and core.py).
constexpr double action_force_scale(double accel) { return accel > 0 ? accel * accel : 5.0; }

/// softplus(x) = log(1 + e^x) without overflow for large |x|.
inline double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); }

/// Contact force on entity a from entity b (openai core L180-196): k*softplus(-(d - dmin)/k) along
/// delta/d, scaled by the contact force. At d == 0 the direction is undefined (the Python code yields
/// NaN); we return zero there so that coincident particles do not poison the state.
inline std::array<double, 2> contact_force(double dx, double dy, double dmin) {
  const double d = std::sqrt(dx * dx + dy * dy);
  if (d == 0.0) return {0.0, 0.0};
  const double pen = kContactMargin * softplus(-(d - dmin) / kContactMargin);
  const double f = kContactForce * pen / d;
  return {f * dx, f * dy};
}

/// Strict overlap test used by every reward: d < size_a + size_b.
inline bool is_collision(const double* pa, const double* pb, double size_a, double size_b) {
  const double dx = pa[0] - pb[0], dy = pa[1] - pb[1];
  return std::sqrt(dx * dx + dy * dy) < size_a + size_b;
}

inline double distance(const double* pa, const double* pb) {
  const double dx = pa[0] - pb[0], dy = pa[1] - pb[1];
  return std::sqrt(dx * dx + dy * dy);
}

/// One semi-implicit step of one environment (openai core L158-169, OMAR core L237-250):
/// F = action force + pairwise contact forces; v <- v(1 - damping) + F dt; clamp |v|; p <- p + v dt.
/// pos, vel: [E, 2] contiguous; actions: [N, 2] for the first N entities (the agents), not clipped.
template <std::size_t E>
void step_physics(const std::array<EntitySpec, E>& spec, index_t n_agents, double* pos, double* vel,
                  const double* actions) {
  std::array<double, 2 * E> force{};
  for (index_t i = 0; i < n_agents; ++i) {
    const auto& s = spec[static_cast<std::size_t>(i)];
    force[2 * static_cast<std::size_t>(i)] = s.force_scale * actions[2 * i];
    force[2 * static_cast<std::size_t>(i) + 1] = s.force_scale * actions[2 * i + 1];
  }
  for (std::size_t a = 0; a < E; ++a) {
    for (std::size_t b = a + 1; b < E; ++b) {
      if (!spec[a].collide || !spec[b].collide || (!spec[a].movable && !spec[b].movable)) continue;
      const auto f =
          contact_force(pos[2 * a] - pos[2 * b], pos[2 * a + 1] - pos[2 * b + 1], spec[a].size + spec[b].size);
      if (spec[a].movable) force[2 * a] += f[0], force[2 * a + 1] += f[1];
      if (spec[b].movable) force[2 * b] -= f[0], force[2 * b + 1] -= f[1];
    }
  }
  for (std::size_t i = 0; i < E; ++i) {
    if (!spec[i].movable) continue;
    double vx = vel[2 * i] * (1.0 - kDamping) + force[2 * i] * kDt;
    double vy = vel[2 * i + 1] * (1.0 - kDamping) + force[2 * i + 1] * kDt;
    if (spec[i].max_speed >= 0) {
      const double speed = std::sqrt(vx * vx + vy * vy);
      if (speed > spec[i].max_speed) {
        vx = vx / speed * spec[i].max_speed;
        vy = vy / speed * spec[i].max_speed;
      }
    }
    vel[2 * i] = vx;
    vel[2 * i + 1] = vy;
    pos[2 * i] += vx * kDt;
    pos[2 * i + 1] += vy * kDt;
  }
}

/// Per-coordinate boundary penalty of the prey (openai simple_tag L100-107).
inline double boundary_penalty(double coord) {
  const double x = std::abs(coord);
  if (x < 0.9) return 0.0;
  if (x < 1.0) return (x - 0.9) * 10.0;
  return std::min(std::exp(2.0 * x - 2.0), 10.0);
}

}  // namespace coordiff::env::mpe
