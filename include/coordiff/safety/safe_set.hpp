#pragma once
// The safe set of paper 001 (Definition 3): agent i is safe at time t when its distance d to every other
// agent is at least the stopping distance of their relative speed plus a stopped gap,
//   d(s_i, o_i) >= V^2 / (2 b) + kappa_s,
// (V the relative speed, b the deceleration, kappa_s the minimal stopped gap), and outside every static
// hazard. The system is safe when every agent is. Labels from these rules train the decentralised CBF
// (eq. 12); the same rules give the environments' costs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::safety {

/// Which relative speed V enters Definition 3. Closing: the rate at which the gap shrinks,
/// max(0, -(p_i - p_j).(v_i - v_j)/|p_i - p_j|), so V^2/(2b) is the distance the pair needs to stop
/// closing (a receding pair only needs kappa_s); Magnitude: |v_i - v_j| (also counts receding pairs:
/// stricter).
enum class RelativeSpeed { Closing, Magnitude };

/// Constants of Definition 3. Defaults: b = 1 (unit deceleration, in the environment's units), kappa_s =
/// the sum of two agent radii plus a small gap, for MPE-sized agents (radius 0.15 in Spread), V the
/// closing speed.
struct SafeDistance {
  double deceleration = 1.0;  ///< b > 0
  double stopped_gap = 0.35;  ///< kappa_s >= 0: centre distance at which two stopped agents are too close
  RelativeSpeed speed = RelativeSpeed::Closing;

  void validate() const {
    require<ConfigError>(deceleration > 0 && std::isfinite(deceleration), "SafeDistance: deceleration must be > 0, got ",
                         deceleration);
    require<ConfigError>(stopped_gap >= 0 && std::isfinite(stopped_gap), "SafeDistance: stopped_gap must be >= 0, got ",
                         stopped_gap);
  }
  /// V^2/(2b) + kappa_s.
  double required(double relative_speed) const { return relative_speed * relative_speed / (2 * deceleration) + stopped_gap; }
};

/// A static circular hazard.
struct Hazard {
  double x = 0, y = 0, radius = 0;
};

/// Planar agents at one instant: positions and velocities [A, 2].
struct PlanarState {
  Tensor<double> position, velocity;
};

/// Safety margin of agent i among A planar agents (positions and velocities [A, 2], row-major): the
/// smallest of d_ij - (V_ij^2/(2b) + kappa_s) over the other agents j and of (distance to the centre -
/// radius - agent_radius) over the hazards; negative = in the dangerous set.
inline double agent_margin(const double* pos, const double* vel, index_t A, index_t i, const SafeDistance& rule,
                           const std::vector<Hazard>& hazards, double agent_radius) {
  double m = std::numeric_limits<double>::infinity();
  for (index_t j = 0; j < A; ++j) {
    if (j == i) continue;
    const double dx = pos[2 * i] - pos[2 * j], dy = pos[2 * i + 1] - pos[2 * j + 1];
    const double dvx = vel[2 * i] - vel[2 * j], dvy = vel[2 * i + 1] - vel[2 * j + 1], d = std::hypot(dx, dy);
    const double V = rule.speed == RelativeSpeed::Magnitude ? std::hypot(dvx, dvy)
                     : d > 0                                 ? std::max(0.0, -(dx * dvx + dy * dvy) / d)
                                                             : std::hypot(dvx, dvy);
    m = std::min(m, d - rule.required(V));
  }
  for (const Hazard& h : hazards) m = std::min(m, std::hypot(pos[2 * i] - h.x, pos[2 * i + 1] - h.y) - h.radius - agent_radius);
  return m;
}

/// agent_margin of every agent of a PlanarState.
inline std::vector<double> safety_margins(const PlanarState& s, const SafeDistance& rule, const std::vector<Hazard>& hazards = {},
                                          double agent_radius = 0.0) {
  require<ShapeError>(s.position.rank() == 2 && s.position.dim(1) == 2, "safety_margins: positions must be [A, 2], got ",
                      to_string(s.position.shape()));
  require_shape(s.velocity.shape(), s.position.shape(), "safety_margins: velocities");
  const index_t A = s.position.dim(0);
  std::vector<double> margin(static_cast<std::size_t>(A));
  for (index_t i = 0; i < A; ++i)
    margin[static_cast<std::size_t>(i)] = agent_margin(s.position.data(), s.velocity.data(), A, i, rule, hazards, agent_radius);
  return margin;
}

/// Definition 3 per agent: 1 = safe, 0 = in the dangerous set.
inline std::vector<std::uint8_t> safe_agents(const PlanarState& s, const SafeDistance& rule,
                                             const std::vector<Hazard>& hazards = {}, double agent_radius = 0.0) {
  const auto m = safety_margins(s, rule, hazards, agent_radius);
  std::vector<std::uint8_t> safe(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) safe[i] = m[i] >= 0 ? 1 : 0;
  return safe;
}

}  // namespace coordiff::safety
