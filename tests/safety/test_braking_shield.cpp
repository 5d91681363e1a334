// The braking shield: the exact two-variable QP against a brute-force search, the braking barrier against
// Definition 3 and its time derivative against finite differences of the motion, and the shield on the
// double integrator and on SafeSpread (damped MPE bodies) keeping agents out of the dangerous set where the
// unshielded controller enters it.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/env/double_integrator_shield.hpp"
#include "coordiff/env/mpe/safe_spread_shield.hpp"
#include "coordiff/planning/closed_loop.hpp"
#include "coordiff/safety/braking_shield.hpp"
#include "coordiff/safety/safe_set.hpp"

using namespace coordiff;
using safety::HalfPlane;
using safety::PlanarAccel;

namespace {

double worst_violation(const std::vector<HalfPlane>& hs, double x, double y) {
  double w = 0;
  for (const auto& h : hs) w = std::max(w, h.violation(x, y));
  return w;
}

/// The box point minimising (largest violation, then distance to want) on a grid of step `step`.
PlanarAccel grid_best(PlanarAccel want, const std::vector<HalfPlane>& hs, double bound, double step) {
  PlanarAccel best{};
  double bv = std::numeric_limits<double>::infinity(), bd = bv;
  for (double x = -bound; x <= bound + 1e-12; x += step)
    for (double y = -bound; y <= bound + 1e-12; y += step) {
      const double v = worst_violation(hs, x, y), d = std::hypot(x - want.x, y - want.y);
      if (v < bv - 1e-12 || (v <= bv + 1e-12 && d < bd)) best = {x, y}, bv = v, bd = d;
    }
  return best;
}

}  // namespace

TEST_CASE("closest_admissible solves the two-variable QP exactly: brute force agrees, feasible wants are kept") {
  const Philox gen(7, 0);
  std::uint64_t k = 0;
  const auto u = [&](double lo, double hi) { return lo + (hi - lo) * gen.uniform(k++); };
  int feasible_cases = 0, infeasible_cases = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const PlanarAccel want{u(-3, 3), u(-3, 3)};
    std::vector<HalfPlane> hs;
    const int n = 1 + trial % 4;
    for (int i = 0; i < n; ++i) {
      const double th = u(0, 2 * M_PI);
      hs.push_back({std::cos(th), std::sin(th), u(-2.5, 1.5)});
    }
    const PlanarAccel got = safety::closest_admissible(want, hs, 2.0);
    REQUIRE(std::abs(got.x) <= 2.0 + 1e-12);
    REQUIRE(std::abs(got.y) <= 2.0 + 1e-12);
    const PlanarAccel grid = grid_best(want, hs, 2.0, 0.01);
    const double vg = worst_violation(hs, grid.x, grid.y), vq = worst_violation(hs, got.x, got.y);
    if (vg == 0) {
      ++feasible_cases;
      CHECK(vq <= 1e-9);
      // Optimal: no grid point that meets every half-plane is nearer (up to the grid's step).
      CHECK(std::hypot(got.x - want.x, got.y - want.y) <= std::hypot(grid.x - want.x, grid.y - want.y) + 1e-9);
      if (std::abs(want.x) <= 2 && std::abs(want.y) <= 2 && worst_violation(hs, want.x, want.y) == 0) {
        CHECK(got.x == want.x);
        CHECK(got.y == want.y);
      }
    } else {
      ++infeasible_cases;
      CHECK(vq <= vg + 1e-9);  // the least largest violation the box allows
    }
  }
  CHECK(feasible_cases > 50);  // both branches ran
  CHECK(infeasible_cases > 5);
}

TEST_CASE("braking_barrier: h >= 0 is Definition 3's safe set with deceleration b, and dh/dt matches the motion") {
  // Without drag and with the drag of damped bodies (dv/dt = u - c v: the relative acceleration is the
  // command difference less c w).
  for (const double drag : {0.0, 2.5}) {
    CAPTURE(drag);
    safety::BrakingShieldOptions o;
    o.braking = 1.5;
    o.alpha = 2.0;
    o.drag = drag;
    const double kappa = 0.3;
    const safety::SafeDistance rule{o.braking, kappa};
    const Philox gen(11, 0);
    std::uint64_t k = 0;
    const auto u = [&](double lo, double hi) { return lo + (hi - lo) * gen.uniform(k++); };
    for (int trial = 0; trial < 300; ++trial) {
      const double rx = u(-2, 2), ry = u(-2, 2), wx = u(-2, 2), wy = u(-2, 2);
      const double d = std::hypot(rx, ry);
      if (d <= kappa + 1e-3) continue;
      const auto bb = safety::braking_barrier(rx, ry, wx, wy, kappa, 0.5, o);
      CHECK(bb.h == doctest::Approx(std::sqrt(2 * o.braking * (d - kappa)) + (rx * wx + ry * wy) / d));
      // Definition 3 (closing speed) for the pair: agent i at r, j at the origin.
      const double pos[4] = {rx, ry, 0, 0}, vel[4] = {wx, wy, 0, 0};
      const double margin = safety::agent_margin(pos, vel, 2, 0, rule, {}, 0.0);
      if (std::abs(bb.h) > 1e-6 && std::abs(margin) > 1e-6) CHECK((bb.h >= 0) == (margin >= 0));
      // dh/dt along r(t) = r + w t + g t^2/2, w(t) = w + g t with the relative acceleration g = a - c w at
      // t = 0 for the command difference a = u_i - u_j (the drag's change of g is second order in t).
      const double ax = u(-2, 2), ay = u(-2, 2), eps = 1e-5;
      const double gx = ax - drag * wx, gy = ay - drag * wy;
      const auto h_at = [&](double t) {
        return safety::braking_barrier(rx + wx * t + 0.5 * gx * t * t, ry + wy * t + 0.5 * gy * t * t, wx + gx * t, wy + gy * t,
                                       kappa, 0.5, o).h;
      };
      const double hdot = (h_at(eps) - h_at(-eps)) / (2 * eps);
      // The half-plane is share * (drift + alpha h) + r^.u_i >= 0, with drift = dh/dt - r^.(u_i - u_j).
      const double radial_a = (rx * ax + ry * ay) / d, drift = hdot - radial_a;
      CHECK(bb.condition.gx == doctest::Approx(rx / d));
      CHECK(bb.condition.gy == doctest::Approx(ry / d));
      CHECK(bb.condition.c == doctest::Approx(-0.5 * (drift + o.alpha * bb.h)).epsilon(1e-4));
    }
    // Inside the gap: the full push away.
    const auto inside = safety::braking_barrier(0.2, 0, 0, 0, kappa, 0.5, o);
    CHECK(inside.h == -std::numeric_limits<double>::infinity());
    CHECK(inside.condition.gx == 1.0);
    CHECK(inside.condition.c == o.max_accel);
  }
}

TEST_CASE("double_integrator_shield keeps a head-on pair and an agent aimed at an obstacle safe where the LQR alone is not") {
  env::DoubleIntegratorConfig cfg;
  cfg.agents = 2;
  cfg.obstacles = 1;
  cfg.episode_length = 60;
  const env::LqrGains gains = env::DoubleIntegratorCollectOptions{}.gains;
  // Environment 0: the two agents swap places along the x axis, the obstacle far away. Environment 1: agent
  // 0's goal lies behind the obstacle, agent 1 stays put far away.
  Tensor<double> pos({2, 2, 2}), vel({2, 2, 2}), goals({2, 2, 2}), obst({2, 1, 2});
  pos(0, 0, 0) = -1.5, pos(0, 1, 0) = 1.5, goals(0, 0, 0) = 1.5, goals(0, 1, 0) = -1.5;
  pos(0, 0, 1) = 0.01;  // not exactly collinear, so that the agents can slide past each other
  obst(0, 0, 0) = 0, obst(0, 0, 1) = 1.8;
  pos(1, 0, 0) = -1.5, goals(1, 0, 0) = 1.5, obst(1, 0, 0) = 0, obst(1, 0, 1) = 0.02;
  pos(1, 1, 0) = 0, pos(1, 1, 1) = -1.8, goals(1, 1, 0) = 0, goals(1, 1, 1) = -1.8;
  const auto episode = [&](bool shield) {
    env::DoubleIntegratorEnv e(2, cfg);
    e.set_state(pos, vel, goals, obst);
    std::vector<double> cost(2, 0.0);
    const auto o = env::double_integrator_shield_options(cfg);
    for (index_t t = 0; t < cfg.episode_length; ++t) {
      Tensor<double> a = env::nominal_actions(e, gains);
      if (shield) a = env::double_integrator_shield(e, a, o);
      const auto r = e.step(a);
      for (index_t b = 0; b < 2; ++b) cost[static_cast<std::size_t>(b)] += r.cost(b, 0) + r.cost(b, 1);
    }
    return std::pair{cost, e.positions()};
  };
  const auto [plain_cost, plain_end] = episode(false);
  const auto [shield_cost, shield_end] = episode(true);
  CHECK(plain_cost[0] > 0);
  CHECK(plain_cost[1] > 0);
  CHECK(shield_cost[0] == 0);
  CHECK(shield_cost[1] == 0);
  // The shield deflects rather than freezes: agent 0 of the head-on pair ends past the middle.
  CHECK(shield_end(0, 0, 0) > 0.5);
  CHECK(shield_end(1, 0, 0) > 0.5);

  env::DoubleIntegratorEnv e(2, cfg);
  e.set_state(pos, vel, goals, obst);
  CHECK_THROWS_AS(env::double_integrator_shield(e, Tensor<double>({2, 3, 2}), env::double_integrator_shield_options(cfg)),
                  ShapeError);
  Tensor<double> nan_actions({2, 2, 2});
  nan_actions[3] = std::nan("");
  CHECK_THROWS_AS(env::double_integrator_shield(e, nan_actions, env::double_integrator_shield_options(cfg)), Error);
  safety::BrakingShieldOptions bad;
  bad.alpha = 0;
  CHECK_THROWS_WITH_AS(env::double_integrator_shield(e, Tensor<double>({2, 2, 2}), bad), doctest::Contains("alpha > 0"),
                       ConfigError);
}

TEST_CASE("safe_spread_shield keeps damped MPE agents out of a hazard and apart where full thrust alone does not") {
  using S = env::mpe::SafeSpreadScenario;
  // Environment 0: agent 0 thrusts at a hazard 0.8 ahead. Environment 1: agents 0 and 1 thrust head-on.
  // Environment 2: agent 0 starts inside a hazard, a violation no policy can prevent.
  const index_t B = 3, E = S::kEntities;
  Tensor<double> pos({B, E, 2}), vel({B, E, 2}), thrust({B, S::kAgents, 2});
  const auto place = [&](index_t b, index_t entity, double x, double y) { pos(b, entity, 0) = x, pos(b, entity, 1) = y; };
  for (index_t b = 0; b < B; ++b) {
    place(b, 0, -0.8, 0.01), place(b, 1, 0.8, 0.0), place(b, 2, 0.0, 0.9);
    place(b, 3, -0.5, -0.5), place(b, 4, 0.0, -0.5), place(b, 5, 0.5, -0.5);
    place(b, 6, -0.9, 0.9), place(b, 7, 0.9, -0.9);
  }
  place(0, 6, 0.0, 0.0), thrust(0, 0, 0) = 1;
  thrust(1, 0, 0) = 1, thrust(1, 1, 0) = -1;
  place(2, 6, -0.8, 0.0), thrust(2, 0, 1) = -1;
  const auto episode = [&](bool shield) {
    env::mpe::SafeSpreadEnv e(B);
    e.set_state(pos, vel);
    const auto o = env::mpe::safe_spread_shield_options();
    return planning::run_closed_loop(
        e, [&](const Tensor<double>&, index_t) { return shield ? env::mpe::safe_spread_shield(e, thrust, o) : thrust; },
        env::mpe::kEpisodeLength);
  };
  const auto plain = episode(false), shielded = episode(true);
  CHECK(plain.costs[0] > 0);
  CHECK(plain.costs[1] > 0);
  CHECK(shielded.costs[0] == 0);
  CHECK(shielded.costs[1] == 0);
  CHECK(shielded.costs[2] > 0);  // the start inside the hazard
  CHECK(shielded.start_costs == std::vector<double>{0, 0, 1});
  CHECK(shielded.unsafe_start_rate() == doctest::Approx(1.0 / 3));
  CHECK(shielded.safe_rate() == doctest::Approx(2.0 / 3));
  CHECK(shielded.safe_rate_of_safe_starts() == 1.0);

  env::mpe::SafeSpreadEnv e(B);
  e.set_state(pos, vel);
  // The shield keeps the action box [-1, 1] and passes actions that threaten nothing unchanged.
  const auto a = env::mpe::safe_spread_shield(e, thrust, env::mpe::safe_spread_shield_options());
  for (index_t k = 0; k < a.size(); ++k) CHECK(std::abs(a[k]) <= 1.0 + 1e-12);
  CHECK(a(1, 2, 0) == 0.0);
  CHECK(a(1, 2, 1) == 0.0);
  CHECK_THROWS_AS(env::mpe::safe_spread_shield(e, Tensor<double>({B, 2, 2}), env::mpe::safe_spread_shield_options()), ShapeError);
  Tensor<double> nan_actions = thrust;
  nan_actions[0] = std::nan("");
  CHECK_THROWS_AS(env::mpe::safe_spread_shield(e, nan_actions, env::mpe::safe_spread_shield_options()), Error);
  auto bad = env::mpe::safe_spread_shield_options();
  bad.drag = -1;
  CHECK_THROWS_WITH_AS(env::mpe::safe_spread_shield(e, thrust, bad), doctest::Contains("drag >= 0"), ConfigError);
}
