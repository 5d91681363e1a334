#pragma once
// A decentralised CBF safety filter (shield) for planar double integrators: each agent replaces the
// acceleration its policy asks for by the closest one that keeps an analytic braking barrier (Wang, Ames
// & Egerstedt 2017, "Safety barrier certificates for collisions-free multirobot systems", eqs. 9-13)
// non-decreasing at the rate dh/dt >= -alpha h, from its own view of its neighbours and obstacles.
//   Barrier of a pair (r = p_i - p_j, w = v_i - v_j, d = |r|, r^ = r/d, s = d - kappa):
//     h = sqrt(2 b s) + r^.w ,  h >= 0  <=>  d >= V^2/(2b) + kappa  for the closing speed V = -r^.w > 0,
//   Definition 3's safe set with deceleration b (so with b <= a_max and kappa >= kappa_s the shield's safe
//   set lies inside the one the costs use). Its time derivative is affine in the accelerations:
//     dh/dt = b (r^.w)/sqrt(2 b s) + (|w|^2 - (r^.w)^2)/d + r^.(a_i - a_j),
//   and each agent of a pair takes half of the condition dh/dt + alpha h >= 0 (its neighbour, running the
//   same shield, takes the other half); for a static obstacle (w = v_i, a_j = 0) the agent takes all of it.
//   With linear drag (MPE: dv/dt = u - c v) each agent's acceleration is its command u less c v, so the
//   relative one is u_i - u_j - c w: the drift gains -c (r^.w) and the QP's variable is the command u.
// Every condition is a half-plane g.a >= c in the agent's own acceleration, so the filter is a QP in two
// variables (min |a - a_ref|^2 over the half-planes and the box |a_x|, |a_y| <= a_max), solved exactly by
// enumerating its candidate optima. This is a model-based layer beyond paper 001 (which uses a learned CBF
// only to condition, guide and filter the generated plans): it needs the dynamics and the safe set.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::safety {

/// One half-plane g.a >= c of a planar acceleration a.
struct HalfPlane {
  double gx = 0, gy = 0, c = 0;
  double violation(double ax, double ay) const { return std::max(0.0, c - (gx * ax + gy * ay)); }
};

struct PlanarAccel {
  double x = 0, y = 0;
};

namespace detail {

/// The point of the box [-bound, bound]^2 nearest `want` that meets every half-plane up to `tol`, found
/// among the candidates a QP in two variables can have as its optimum: want itself, its projection on each
/// constraint line (box sides included), the intersections of two lines. false when none is feasible.
inline bool nearest_feasible(PlanarAccel want, const std::vector<HalfPlane>& conditions, double bound, double tol,
                             PlanarAccel& best) {
  std::vector<HalfPlane> lines = conditions;
  for (const HalfPlane& side : {HalfPlane{1, 0, -bound}, HalfPlane{-1, 0, -bound}, HalfPlane{0, 1, -bound}, HalfPlane{0, -1, -bound}})
    lines.push_back(side);
  std::vector<PlanarAccel> cand{want};
  for (const HalfPlane& h : lines) {
    const double g2 = h.gx * h.gx + h.gy * h.gy;
    if (g2 <= 0) continue;
    const double t = (h.c - (h.gx * want.x + h.gy * want.y)) / g2;
    cand.push_back({want.x + t * h.gx, want.y + t * h.gy});
  }
  for (std::size_t i = 0; i < lines.size(); ++i)
    for (std::size_t j = i + 1; j < lines.size(); ++j) {
      const double det = lines[i].gx * lines[j].gy - lines[i].gy * lines[j].gx;
      if (std::abs(det) < 1e-12) continue;
      cand.push_back({(lines[i].c * lines[j].gy - lines[i].gy * lines[j].c) / det,
                      (lines[i].gx * lines[j].c - lines[i].c * lines[j].gx) / det});
    }
  bool found = false;
  double best_d2 = std::numeric_limits<double>::infinity();
  for (const PlanarAccel& a : cand) {
    if (!(std::abs(a.x) <= bound + tol && std::abs(a.y) <= bound + tol)) continue;  // also drops NaN
    bool ok = true;
    for (const HalfPlane& h : conditions) ok = ok && h.violation(a.x, a.y) <= tol;
    const double d2 = (a.x - want.x) * (a.x - want.x) + (a.y - want.y) * (a.y - want.y);
    if (ok && d2 < best_d2) best = {std::clamp(a.x, -bound, bound), std::clamp(a.y, -bound, bound)}, best_d2 = d2, found = true;
  }
  return found;
}

/// min over the box of the largest violation max_k (c_k - g_k.a): a linear programme in (a_x, a_y, t) whose
/// optimum lies at a vertex where three of its constraints are tight (three half-planes; two and a box side;
/// or a box corner), so it is the best of those points.
inline double least_worst_violation(const std::vector<HalfPlane>& conditions, double bound) {
  const auto worst = [&](double x, double y) {
    double w = -std::numeric_limits<double>::infinity();
    for (const HalfPlane& h : conditions) w = std::max(w, h.c - (h.gx * x + h.gy * y));
    return w;
  };
  double best = std::numeric_limits<double>::infinity();
  const auto consider = [&](double x, double y) {
    if (std::isfinite(x) && std::isfinite(y) && std::abs(x) <= bound * (1 + 1e-12) && std::abs(y) <= bound * (1 + 1e-12))
      best = std::min(best, worst(std::clamp(x, -bound, bound), std::clamp(y, -bound, bound)));
  };
  for (double x : {-bound, bound})
    for (double y : {-bound, bound}) consider(x, y);
  const std::size_t n = conditions.size();
  // Two half-planes tight on a box side: c_i - g_i.a = c_j - g_j.a with x (or y) fixed.
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) {
      const HalfPlane &p = conditions[i], &q = conditions[j];
      const double dgx = p.gx - q.gx, dgy = p.gy - q.gy, dc = p.c - q.c;  // dg.a = dc
      for (double side : {-bound, bound}) {
        if (std::abs(dgy) > 1e-12) consider(side, (dc - dgx * side) / dgy);
        if (std::abs(dgx) > 1e-12) consider((dc - dgy * side) / dgx, side);
      }
      // Three half-planes tight: (g_i - g_k).a = c_i - c_k for k = j and every later one.
      for (std::size_t k = j + 1; k < n; ++k) {
        const HalfPlane& r = conditions[k];
        const double ex = p.gx - r.gx, ey = p.gy - r.gy, ec = p.c - r.c, det = dgx * ey - dgy * ex;
        if (std::abs(det) < 1e-12) continue;
        consider((dc * ey - dgy * ec) / det, (dgx * ec - dc * ex) / det);
      }
    }
  return best;
}

}  // namespace detail

/// The acceleration closest to `want` inside the box [-bound, bound]^2 that meets every half-plane (the
/// exact minimiser of |a - want|^2). When no point of the box meets them all, every half-plane is relaxed
/// by the least largest violation the box allows, and the closest point meeting the relaxed ones is taken:
/// the box is kept, the barriers are met as nearly as possible, all by the same amount.
inline PlanarAccel closest_admissible(PlanarAccel want, const std::vector<HalfPlane>& conditions, double bound) {
  require<ConfigError>(bound > 0 && std::isfinite(bound), "closest_admissible: the box bound must be > 0, got ", bound);
  double scale = bound;
  for (const HalfPlane& h : conditions) scale = std::max(scale, std::abs(h.c));
  const double tol = 1e-9 * scale;  // points on a line count as on it
  PlanarAccel best{std::clamp(want.x, -bound, bound), std::clamp(want.y, -bound, bound)};
  if (detail::nearest_feasible(want, conditions, bound, tol, best)) return best;
  const double slack = detail::least_worst_violation(conditions, bound);
  std::vector<HalfPlane> relaxed = conditions;
  for (HalfPlane& h : relaxed) h.c -= slack;
  detail::nearest_feasible(want, relaxed, bound, 1e3 * tol, best);  // feasible by construction
  return best;
}

/// Parameters of the braking shield.
struct BrakingShieldOptions {
  double max_accel = 2.0;   ///< a_max, per axis (the box of the QP)
  double braking = 1.6;     ///< b of the barrier: the deceleration a pair (or an agent, at an obstacle) may count on
  double stopped_gap = 0.25;        ///< kappa between two agents' centres (Definition 3's kappa_s)
  double obstacle_clearance = 0.1;  ///< added to an obstacle's radius (the agent's radius)
  double margin = 0.03;     ///< extra distance on every kappa, for the time between two decisions
  double alpha = 3.0;       ///< class-K slope of dh/dt >= -alpha h, per second
  double drag = 0.0;        ///< c of dv/dt = u - c v, per second (0: a pure double integrator)

  void validate() const {
    require<ConfigError>(max_accel > 0 && braking > 0 && braking <= 2 * max_accel && stopped_gap >= 0 &&
                             obstacle_clearance >= 0 && margin >= 0 && alpha > 0 && drag >= 0,
                         "BrakingShieldOptions: need max_accel > 0, 0 < braking <= 2 max_accel, stopped_gap, "
                         "obstacle_clearance, margin, drag >= 0 and alpha > 0; got ",
                         max_accel, ", ", braking, ", ", stopped_gap, ", ", obstacle_clearance, ", ", margin, ", ", drag, ", ", alpha);
  }
};

/// The braking barrier h = sqrt(2 b (d - kappa)) + r^.w of a relative position r and velocity w, and the
/// half-plane in the agent's acceleration that keeps dh/dt + alpha h >= share * (the whole condition):
/// share = 1/2 for a pair of agents, 1 for a static obstacle. Inside the gap (d <= kappa) h is -infinity
/// and the half-plane asks for the full push away, r^.a >= max_accel.
struct BrakingBarrier {
  double h = 0;
  HalfPlane condition;
};

inline BrakingBarrier braking_barrier(double rx, double ry, double wx, double wy, double kappa, double share,
                                      const BrakingShieldOptions& o) {
  const double d = std::hypot(rx, ry);
  BrakingBarrier out;
  if (d <= 0) return {-std::numeric_limits<double>::infinity(), {0, 0, 0}};  // coincident: no direction to push in
  const double ux = rx / d, uy = ry / d, s = d - kappa;
  if (s <= 0) {
    out.h = -std::numeric_limits<double>::infinity();
    out.condition = {ux, uy, o.max_accel};
    return out;
  }
  const double radial = ux * wx + uy * wy, root = std::sqrt(2 * o.braking * s);
  out.h = root + radial;
  // dh/dt = drift + r^.u_i - r^.u_j;  share of (drift + alpha h) + r^.u_i >= 0 for the agent.
  const double drift = o.braking * radial / root + (wx * wx + wy * wy - radial * radial) / d - o.drag * radial;
  out.condition = {ux, uy, -share * (drift + o.alpha * out.h)};
  return out;
}

/// What one agent sees: its velocity, its neighbours' positions and velocities relative to it (p_j - p_i,
/// v_j - v_i) and the obstacles' centres relative to it (c - p_i) with their radii.
struct PlanarView {
  double vx = 0, vy = 0;
  std::vector<double> neighbours;  ///< 4 per neighbour: dx, dy, dvx, dvy
  std::vector<double> obstacles;   ///< 3 per obstacle: dx, dy, radius
};

/// Starts agent i's view among n agents whose positions and velocities are pos(j, axis), vel(j, axis):
/// its velocity and every other agent relative to it; the obstacles are left for the caller to add.
template <class Position, class Velocity>
void start_view(std::int64_t i, std::int64_t n, const Position& pos, const Velocity& vel, PlanarView& view) {
  view.vx = vel(i, 0), view.vy = vel(i, 1);
  view.neighbours.clear();
  view.obstacles.clear();
  for (std::int64_t j = 0; j < n; ++j)
    if (j != i)
      view.neighbours.insert(view.neighbours.end(), {pos(j, 0) - pos(i, 0), pos(j, 1) - pos(i, 1), vel(j, 0) - vel(i, 0),
                                                      vel(j, 1) - vel(i, 1)});
}

/// The shielded acceleration of one agent.
inline PlanarAccel braking_shield(const PlanarView& view, PlanarAccel want, const BrakingShieldOptions& o) {
  std::vector<HalfPlane> conditions;
  for (std::size_t k = 0; k + 4 <= view.neighbours.size(); k += 4) {
    const double* n = view.neighbours.data() + k;
    conditions.push_back(braking_barrier(-n[0], -n[1], -n[2], -n[3], o.stopped_gap + o.margin, 0.5, o).condition);
  }
  for (std::size_t k = 0; k + 3 <= view.obstacles.size(); k += 3) {
    const double* m = view.obstacles.data() + k;
    conditions.push_back(
        braking_barrier(-m[0], -m[1], view.vx, view.vy, m[2] + o.obstacle_clearance + o.margin, 1.0, o).condition);
  }
  return closest_admissible(want, conditions, o.max_accel);
}

/// The shield on a batch: shielded actions [B, N, 2] for actions [B, N, 2] in action units (the command is
/// scale * action) of the N = `agents` agents that are the first N entities of pos and vel [B, E, 2];
/// every other agent is a neighbour, and add_obstacles(b, i, view) appends what agent i of environment b
/// sees as obstacles. `where` names the caller in errors.
template <class AddObstacles>
Tensor<double> shield_actions(const Tensor<double>& pos, const Tensor<double>& vel, index_t agents,
                              const Tensor<double>& actions, double scale, const BrakingShieldOptions& o,
                              const std::string& where, AddObstacles&& add_obstacles) {
  o.validate();
  const index_t B = pos.dim(0), N = agents;
  require_shape(actions.shape(), {B, N, 2}, where + ": actions");
  require<ShapeError>(N <= pos.dim(1), where, ": ", N, " agents' actions for ", pos.dim(1), " entities");
  require_finite(actions, where + " actions");
  Tensor<double> out(actions.shape());
  PlanarView view;
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < N; ++i) {
      start_view(i, N, [&](index_t j, index_t k) { return pos(b, j, k); }, [&](index_t j, index_t k) { return vel(b, j, k); },
                 view);
      add_obstacles(b, i, view);
      const auto u = braking_shield(view, {scale * actions(b, i, 0), scale * actions(b, i, 1)}, o);
      out(b, i, 0) = u.x / scale, out(b, i, 1) = u.y / scale;
    }
  return out;
}

}  // namespace coordiff::safety
