// Paper 001's safety pieces: the safe set of Definition 3, the CBF hinge losses of eq. 12, a learned
// barrier, CBF gradient guidance and the CBF filter, against hand computations and analytic barriers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/diffusion/batch.hpp"
#include "coordiff/env/double_integrator.hpp"
#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/env/mpe/safe_spread.hpp"
#include "coordiff/filter/accept_all.hpp"
#include "coordiff/filter/both.hpp"
#include "coordiff/filter/callable.hpp"
#include "coordiff/filter/cbf_safe.hpp"
#include "coordiff/guidance/cbf_gradient.hpp"
#include "coordiff/safety/barrier.hpp"
#include "coordiff/safety/cbf_training.hpp"
#include "coordiff/safety/expectile_value.hpp"
#include "coordiff/safety/safe_set.hpp"
#include "coordiff/safety/trajectory_condition.hpp"

using namespace coordiff;

namespace {
safety::PlanarState planar(std::vector<double> pos, std::vector<double> vel) {
  const auto A = static_cast<index_t>(pos.size() / 2);
  return {Tensor<double>({A, 2}, std::move(pos)), Tensor<double>({A, 2}, std::move(vel))};
}
}  // namespace

TEST_CASE("safety: Definition 3 labels constructed states (stopped gap, relative speed, hazards)") {
  const safety::SafeDistance rule{1.0, 0.35};
  // A and B stopped 0.3 apart (< kappa_s = 0.35); C far away.
  auto m = safety::safety_margins(planar({0, 0, 0.3, 0, 2, 0}, {0, 0, 0, 0, 0, 0}), rule);
  CHECK(m[0] == doctest::Approx(-0.05));
  CHECK(m[1] == doctest::Approx(-0.05));
  CHECK(m[2] == doctest::Approx(1.7 - 0.35));
  CHECK(safety::safe_agents(planar({0, 0, 0.3, 0, 2, 0}, {0, 0, 0, 0, 0, 0}), rule) == std::vector<std::uint8_t>{0, 0, 1});
  // 1.0 apart closing at relative speed 2: stopping distance 2^2/(2*1) + 0.35 = 2.35 > 1 -> both unsafe;
  // the same pair at rest is safe.
  CHECK(safety::safe_agents(planar({0, 0, 1, 0}, {1, 0, -1, 0}), rule) == std::vector<std::uint8_t>{0, 0});
  CHECK(safety::safe_agents(planar({0, 0, 1, 0}, {0, 0, 0, 0}), rule) == std::vector<std::uint8_t>{1, 1});
  CHECK(safety::safety_margins(planar({0, 0, 1, 0}, {1, 0, -1, 0}), rule)[0] == doctest::Approx(1 - 2.35));
  // Receding at relative speed 2: safe with the closing speed (the default), unsafe with the magnitude.
  CHECK(safety::safe_agents(planar({0, 0, 1, 0}, {-1, 0, 1, 0}), rule) == std::vector<std::uint8_t>{1, 1});
  const safety::SafeDistance strict{1.0, 0.35, safety::RelativeSpeed::Magnitude};
  CHECK(safety::safe_agents(planar({0, 0, 1, 0}, {-1, 0, 1, 0}), strict) == std::vector<std::uint8_t>{0, 0});
  // Passing side by side (velocity across the line of centres): no closing speed.
  CHECK(safety::safety_margins(planar({0, 0, 1, 0}, {0, 1, 0, -1}), rule)[0] == doctest::Approx(1 - 0.35));
  // A hazard of radius 0.5 at (3, 0): an agent of radius 0.1 at (3.55, 0) touches it (margin -0.05).
  const std::vector<safety::Hazard> hazards{{3, 0, 0.5}};
  m = safety::safety_margins(planar({3.55, 0, 0, 0}, {0, 0, 0, 0}), rule, hazards, 0.1);
  CHECK(m[0] == doctest::Approx(-0.05));
  CHECK(m[1] == doctest::Approx(2.5 - 0.1));  // nearest: the hazard (3 - 0.5 - 0.1), the other agent is 3.55 away
  CHECK_THROWS_AS(safety::SafeDistance({0.0, 0.35}).validate(), ConfigError);
}

TEST_CASE("safety: the eq. 12 hinge losses and their gradients match a hand computation") {
  const safety::CbfLossOptions o{0.02, 1.0, 0.1};
  const std::vector<double> h{0.5, -0.01, 0.3, -0.2}, hn{0.4, 0.0, 0.2, 0.0};
  const std::vector<std::uint8_t> safe{1, 1, 0, 0}, next{1, 1, 0, 0};
  const auto L = safety::cbf_loss(h, hn, safe, next, o);
  // safe: only row 1 violates (0.02 + 0.01) -> 0.03 / 2; derivative: row 0: 0.02 + 1 - 0.5 = 0.52 -> 0.52 / 2,
  // row 1: 0.02 - 0.1 + 0.01 < 0; unsafe: row 2: 0.02 + 0.3 = 0.32 -> 0.32 / 2, row 3 satisfied.
  CHECK(L.safe == doctest::Approx(0.015));
  CHECK(L.derivative == doctest::Approx(0.26));
  CHECK(L.unsafe == doctest::Approx(0.16));
  CHECK(L.total == doctest::Approx(0.435));
  CHECK(L.dh[0] == doctest::Approx((10.0 - 1.0) / 2));
  CHECK(L.dh_next[0] == doctest::Approx(-10.0 / 2));
  CHECK(L.dh[1] == doctest::Approx(-0.5));
  CHECK(L.dh[2] == doctest::Approx(0.5));
  CHECK(L.dh[3] == 0.0);
  // Central differences of the total, away from the hinges' kinks.
  for (std::size_t i = 0; i < h.size(); ++i)
    for (int which = 0; which < 2; ++which) {
      auto hp = h, hm = h, np = hn, nm = hn;
      (which ? np : hp)[i] += 1e-6, (which ? nm : hm)[i] -= 1e-6;
      const double fd = (safety::cbf_loss(hp, np, safe, next, o).total - safety::cbf_loss(hm, nm, safe, next, o).total) / 2e-6;
      CHECK((which ? L.dh_next : L.dh)[i] == doctest::Approx(fd).epsilon(1e-6));
    }
}

TEST_CASE("safety: a learned barrier separates a disc obstacle's inside from its outside (eq. 12 training)") {
  // Single-integrator points in [-2, 2]^2 moving 0.1 s at speed <= 1; dangerous inside radius 1.
  Rng rng(5);
  const index_t N = 4000;
  safety::CbfData<float> d;
  d.z = rng.uniform<float>({N, 2}, -2.0f, 2.0f);
  d.z_next = Tensor<float>({N, 2});
  for (index_t n = 0; n < N; ++n) {
    const double r = std::hypot(d.z(n, 0), d.z(n, 1));
    d.safe.push_back(r >= 1.0 ? 1 : 0);
    // safe demonstrations move outward (away from the obstacle), as a safe controller would
    d.z_next(n, 0) = static_cast<float>(d.z(n, 0) * (1 + 0.1 / r));
    d.z_next(n, 1) = static_cast<float>(d.z(n, 1) * (1 + 0.1 / r));
    d.has_next.push_back(1);
  }
  safety::MlpBarrier<float> h(2, 32, rng);
  safety::CbfTrainOptions o;
  o.steps = 1500;
  o.lr = 3e-3;
  const auto losses = safety::train_cbf(h, d, o);
  CHECK(losses.back() < 0.2 * losses.front());
  // Held-out rows.
  safety::CbfData<float> test;
  test.z = rng.uniform<float>({1000, 2}, -2.0f, 2.0f);
  test.z_next = test.z;
  for (index_t n = 0; n < 1000; ++n) {
    const double r = std::hypot(test.z(n, 0), test.z(n, 1));
    test.safe.push_back(r >= 1.0 ? 1 : 0);
    test.z_next(n, 0) = static_cast<float>(test.z(n, 0) * (1 + 0.1 / r));
    test.z_next(n, 1) = static_cast<float>(test.z(n, 1) * (1 + 0.1 / r));
    test.has_next.push_back(1);
  }
  const auto rep = safety::evaluate_cbf(h, test, o.loss);
  MESSAGE("held-out: safe ", rep.safe_satisfied, ", unsafe ", rep.unsafe_satisfied, ", derivative ", rep.derivative_satisfied);
  CHECK(rep.safe_satisfied > 0.93);
  CHECK(rep.unsafe_satisfied > 0.93);
  CHECK(rep.derivative_satisfied > 0.93);
  // Its input gradient against central differences.
  const Tensor<float> z({3, 2}, {1.5f, 0.2f, -0.4f, 1.1f, 0.3f, -1.7f});
  const Tensor<float> g = h.input_gradients(z);
  for (index_t n = 0; n < 3; ++n)
    for (index_t f = 0; f < 2; ++f) {
      Tensor<float> zp = z, zm = z;
      zp(n, f) += 1e-2f, zm(n, f) -= 1e-2f;
      const double fd = (h.values(zp)[n] - h.values(zm)[n]) / 2e-2;
      CHECK(g(n, f) == doctest::Approx(fd).epsilon(2e-2));
    }
}

TEST_CASE("safety: CBF gradient guidance moves a trajectory through an obstacle out of it") {
  // One agent, 6 steps along y = 0.2 from x = -1.5 to 1.5: steps 2-3 are inside the unit disc (h < 0).
  const safety::DiscBarrier<float> disc{0, 1, 0.0, 0.0, 1.0};
  Tensor<float> x0({1, 6, 1, 2});
  for (index_t t = 0; t < 6; ++t) x0(0, t, 0, 0) = static_cast<float>(-1.5 + 0.6 * t), x0(0, t, 0, 1) = 0.2f;
  const safety::CbfLossOptions o{0.02, 1.0, 0.6};
  const auto min_h = [&](const Tensor<float>& x) {
    const Tensor<float> h = disc.values(x.reshape({6, 2}));
    double m = 1e9;
    for (index_t t = 0; t < 6; ++t) m = std::min(m, double(h[t]));
    return m;
  };
  REQUIRE(min_h(x0) < -0.5);
  // A denoiser that predicts the clean sample x0 whatever its input: the guided prediction is x0 minus
  // scale times the hinge cost's gradient (PredictedClean), so repeated steps walk out of the disc.
  auto den = denoiser::from_function<float>([&](const Tensor<float>&, const Tensor<float>&, const Condition<float>&) {
    return x0;
  });
  auto guide = guidance::cbf_gradient(disc, 0.02, o);
  const guidance::StepInfo info{10, 0.5, denoiser::Prediction::Sample};
  const Tensor<float> k({1}, 10.0f);
  Tensor<float> guided = guide.model_output(den, x0, k, Condition<float>{}, info);
  const double c0 = safety::hinge_cost<float>(disc, x0, o).value[0], c1 = safety::hinge_cost<float>(disc, guided, o).value[0];
  CHECK(c1 < c0);
  CHECK(min_h(guided) > min_h(x0));
  for (int it = 0; it < 200 && min_h(x0) < 0.02; ++it) x0 = guide.model_output(den, x0, k, Condition<float>{}, info);
  CHECK(min_h(x0) >= 0.0);
  // The hinge cost's gradient against central differences.
  Tensor<float> xs({1, 6, 1, 2});
  for (index_t t = 0; t < 6; ++t) xs(0, t, 0, 0) = static_cast<float>(-1.5 + 0.6 * t), xs(0, t, 0, 1) = 0.3f;
  const auto cv = safety::hinge_cost<float>(disc, xs, o);
  for (index_t i = 0; i < xs.size(); ++i) {
    Tensor<float> p = xs, m = xs;
    p[i] += 1e-3f, m[i] -= 1e-3f;
    const double fd = (safety::hinge_cost<float>(disc, p, o).value[0] - safety::hinge_cost<float>(disc, m, o).value[0]) / 2e-3;
    CHECK(cv.gradient[i] == doctest::Approx(fd).epsilon(1e-2).scale(1.0));
  }
}

TEST_CASE("safety: the CBF filter rejects exactly the trajectories whose condition fails, naming where") {
  const safety::DiscBarrier<float> disc{0, 1, 0.0, 0.0, 1.0};
  // Sample 0: stays at radius 2 (h = 3 throughout). Sample 1: agent 1 enters the disc at step 2.
  // Sample 2: outside throughout but falls from h = 3 to h = 0.24 in one step of dt = 0.1 (derivative
  // condition (0.24 - 3)/0.1 + 3 = -24.6 < 0) without entering the disc.
  Tensor<float> x({3, 3, 2, 2});
  for (index_t b = 0; b < 3; ++b)
    for (index_t t = 0; t < 3; ++t)
      for (index_t i = 0; i < 2; ++i) x(b, t, i, 0) = 2.0f, x(b, t, i, 1) = 0.0f;
  x(1, 2, 1, 0) = 0.5f;
  x(2, 1, 0, 0) = 1.11355f;  // h = 1.11355^2 - 1 = 0.24
  x(2, 2, 0, 0) = 1.11355f;
  const auto f = filter::cbf_safe(disc, safety::CbfLossOptions{0.0, 1.0, 0.1});
  const auto v = f.check(x, diffusion::Batch<float>{});
  CHECK(v.keep == std::vector<std::uint8_t>{1, 0, 0});
  CHECK(v.reason[0].empty());
  // Sample 1's first failure is the plunge into the disc (steps 1-2), before h itself is negative.
  CHECK(v.reason[1].find("agent 1 steps 1-2: dh/dt + alpha h") != std::string::npos);
  CHECK(v.reason[2].find("agent 0 steps 0-1: dh/dt + alpha h") != std::string::npos);
  const auto without_derivative = filter::cbf_safe(disc, safety::CbfLossOptions{0.0, 1.0, 0.1}, false);
  const auto v2 = without_derivative.check(x, diffusion::Batch<float>{});
  CHECK(v2.keep == std::vector<std::uint8_t>{1, 0, 1});
  CHECK(v2.reason[1].find("agent 1 step 2: h = -0.75") != std::string::npos);
  static_assert(filter::ValidityFilter<filter::CbfSafe<safety::DiscBarrier<float>>, float>);
}

TEST_CASE("safety: filter::Both keeps what both filters keep and names the first filter that rejects") {
  // Three samples as in the CBF filter test (0 safe, 1 and 2 violate the CBF condition), with a third
  // feature that a threshold filter reads at step 0 of agent 0: it rejects samples 0 and 1.
  const safety::DiscBarrier<float> disc{0, 1, 0.0, 0.0, 1.0};
  Tensor<float> x({3, 3, 2, 3});
  for (index_t b = 0; b < 3; ++b)
    for (index_t t = 0; t < 3; ++t)
      for (index_t i = 0; i < 2; ++i) x(b, t, i, 0) = 2.0f, x(b, t, i, 1) = 0.0f, x(b, t, i, 2) = 0.0f;
  x(0, 0, 0, 2) = 5.0f, x(1, 0, 0, 2) = 5.0f;
  x(1, 2, 1, 0) = 0.5f;
  x(2, 1, 0, 0) = 1.11355f, x(2, 2, 0, 0) = 1.11355f;
  const auto first = filter::Threshold{[](const Tensor<float>& s, const diffusion::Batch<float>&) {
                                         std::vector<double> v;
                                         for (index_t b = 0; b < s.dim(0); ++b) v.push_back(s(b, 0, 0, 2));
                                         return v;
                                       },
                                       1.0};
  const auto cbf = filter::cbf_safe(disc, safety::CbfLossOptions{0.0, 1.0, 0.1});
  const auto v = filter::both(first, cbf).check(x, diffusion::Batch<float>{});
  CHECK(v.keep == std::vector<std::uint8_t>{0, 0, 0});
  CHECK(v.reason[0].find("score 5 >= threshold 1") != std::string::npos);   // the first filter's reason ...
  CHECK(v.reason[1].find("score 5 >= threshold 1") != std::string::npos);   // ... also where both reject
  CHECK(v.reason[2].find("CBF condition: agent 0 steps 0-1") == 0);         // the second's where only it does
  // With a first filter that keeps everything the verdict is the CBF filter's.
  const auto w = filter::both(filter::AcceptAll{}, cbf).check(x, diffusion::Batch<float>{});
  CHECK(w.keep == std::vector<std::uint8_t>{1, 0, 0});
  CHECK(w.reason[0].empty());
  static_assert(filter::ValidityFilter<filter::Both<filter::AcceptAll, filter::CbfSafe<safety::DiscBarrier<float>>>, float>);
}

TEST_CASE("safety: SafeSpread costs follow Definition 3 (hazards, stopped gap, relative speed) and its observation shows the hazards") {
  using Env = env::mpe::SafeSpreadEnv;
  Env e(1);
  // entities: agents 0-2, landmarks 3-5, hazards 6-7
  const auto state = [&](std::vector<double> agents, std::vector<double> agent_vel) {
    Tensor<double> pos({1, 8, 2}), vel({1, 8, 2});
    for (index_t i = 0; i < 6; ++i) pos(0, i / 2, i % 2) = agents[static_cast<std::size_t>(i)];
    for (index_t i = 0; i < 6; ++i) vel(0, i / 2, i % 2) = agent_vel[static_cast<std::size_t>(i)];
    pos(0, 3, 0) = 0.9, pos(0, 4, 1) = 0.9, pos(0, 5, 0) = -0.9;
    pos(0, 6, 0) = 1.5, pos(0, 6, 1) = 1.5, pos(0, 7, 0) = -1.0, pos(0, 7, 1) = -1.0;
    e.set_state(pos, vel);
  };
  // Agents 0 and 1 stopped 0.3 apart (< kappa_s 0.35); agent 2 inside the hazard at (1.5, 1.5).
  state({0, 0, 0.3, 0, 1.6, 1.4}, {0, 0, 0, 0, 0, 0});
  Tensor<double> c = e.costs();
  CHECK(c(0, 0) == 1.0);
  CHECK(c(0, 1) == 1.0);
  CHECK(c(0, 2) == 1.0);
  // 1.0 apart: closing at relative speed 3 needs 9/10 + 0.35 = 1.25 > 1 (unsafe), at 2 needs 0.75 (safe).
  state({0, 0, 1.0, 0, -0.5, 1.0}, {1.5, 0, -1.5, 0, 0, 0});
  c = e.costs();
  CHECK(c(0, 0) == 1.0);
  CHECK(c(0, 1) == 1.0);
  CHECK(c(0, 2) == 0.0);
  state({0, 0, 1.0, 0, -0.5, 1.0}, {1.0, 0, -1.0, 0, 0, 0});
  c = e.costs();
  CHECK(c(0, 0) == 0.0);
  CHECK(c(0, 1) == 0.0);
  const Tensor<double> o = e.observations();
  CHECK(o.shape() == Shape{1, 3, 22});
  CHECK(o(0, 2, 18) == doctest::Approx(1.5 - (-0.5)));  // hazard 0 relative to agent 2
  CHECK(o(0, 2, 21) == doctest::Approx(-1.0 - 1.0));    // hazard 1, y
  const auto r = e.step(Tensor<double>({1, 3, 2}));
  CHECK(r.cost.shape() == Shape{1, 3});
  static_assert(Env::kHasCosts && !env::mpe::SpreadEnv::kHasCosts);
}

TEST_CASE("safety: the double integrator's LQR gains solve the Riccati equation and its step is the exact hold") {
  const double qp = 2.0, qv = 0.5, r = 0.25;
  const auto k = env::double_integrator_lqr(qp, qv, r);
  // P from the gains (K = B^T P / r): p12 = r kp, p22 = r kd, p11 = p12 p22 / r; then the residual of
  // A^T P + P A - P B B^T P / r + Q with A = [[0, 1], [0, 0]], B = [0, 1]^T.
  const double p12 = r * k.kp, p22 = r * k.kd, p11 = p12 * p22 / r;
  CHECK(-p12 * p12 / r + qp == doctest::Approx(0.0).scale(1.0));
  CHECK(p11 - p12 * p22 / r == doctest::Approx(0.0).scale(1.0));
  CHECK(2 * p12 - p22 * p22 / r + qv == doctest::Approx(0.0).scale(1.0));
  CHECK(p11 > 0);
  CHECK(p11 * p22 - p12 * p12 > 0);  // P positive definite

  env::DoubleIntegratorConfig cfg;
  cfg.agents = 2;
  cfg.obstacles = 1;
  env::DoubleIntegratorEnv e(1, cfg);
  Tensor<double> pos({1, 2, 2}, {0, 0, 3, 3}), vel({1, 2, 2}, {0.5, -0.2, 0, 0}), goals({1, 2, 2}, {1, 1, -1, -1});
  e.set_state(pos, vel, goals, Tensor<double>({1, 1, 2}, {-3, 3}));
  Tensor<double> a({1, 2, 2}, {1.0, 0.5, 100.0, -100.0});  // agent 1's action is clipped to +-2
  for (int s = 0; s < 10; ++s) e.step(a);
  const double t = 1.0;
  CHECK(e.positions()(0, 0, 0) == doctest::Approx(0.5 * t + 0.5 * 1.0 * t * t));
  CHECK(e.positions()(0, 0, 1) == doctest::Approx(-0.2 * t + 0.5 * 0.5 * t * t));
  CHECK(e.velocities()(0, 1, 0) == doctest::Approx(2.0 * t));
  CHECK(e.positions()(0, 1, 1) == doctest::Approx(3 - 0.5 * 2.0 * t * t));
}

TEST_CASE("safety: double-integrator resets start safe and reproducibly, LQR reaches the goals, costs follow Definition 3") {
  env::DoubleIntegratorConfig cfg;
  cfg.agents = 8;
  env::DoubleIntegratorEnv batch(4, cfg), single(1, cfg);
  batch.reset(11);
  single.reset(11, 2);  // environment 2 of the batch, alone
  for (index_t i = 0; i < 8; ++i)
    for (index_t c = 0; c < 2; ++c) {
      CHECK(single.positions()(0, i, c) == batch.positions()(2, i, c));
      CHECK(single.goals()(0, i, c) == batch.goals()(2, i, c));
    }
  const Tensor<double> c0 = batch.costs();
  for (index_t i = 0; i < c0.size(); ++i) CHECK(c0[i] == 0.0);
  CHECK(batch.observations().shape() == Shape{4, 8, cfg.obs_dim()});
  CHECK(cfg.obs_dim() == 6 + 4 * 3 + 3 * 2);

  // LQR toward the goals, two agents far apart: the distance to the goal shrinks by > 90 %.
  env::DoubleIntegratorConfig two;
  two.agents = 2;
  two.obstacles = 0;
  env::DoubleIntegratorEnv e(1, two);
  e.set_state(Tensor<double>({1, 2, 2}, {-1, -1, 1, 1}), Tensor<double>({1, 2, 2}), Tensor<double>({1, 2, 2}, {-1, 0.5, 1, -0.5}),
              Tensor<double>({1, 0, 2}));
  const auto k = env::double_integrator_lqr(1.0, 0.5, 1.0);
  for (index_t s = 0; s < two.episode_length; ++s) e.step(env::nominal_actions(e, k));
  CHECK(std::hypot(e.positions()(0, 0, 0) + 1, e.positions()(0, 0, 1) - 0.5) < 0.15);
  CHECK(std::hypot(e.positions()(0, 1, 0) - 1, e.positions()(0, 1, 1) + 0.5) < 0.15);

  // Costs: two agents 0.3 apart closing at relative speed 1 need 1/(2*2) + 0.25 = 0.5 > 0.3; an agent
  // whose disc (radius 0.1) overlaps an obstacle (radius 0.3) 0.35 away.
  env::DoubleIntegratorConfig three;
  three.agents = 3;
  three.obstacles = 1;
  env::DoubleIntegratorEnv f(1, three);
  f.set_state(Tensor<double>({1, 3, 2}, {0, 0, 0.3, 0, 5, 0.35}), Tensor<double>({1, 3, 2}, {0.5, 0, -0.5, 0, 0, 0}),
              Tensor<double>({1, 3, 2}), Tensor<double>({1, 1, 2}, {5, 0}));
  const Tensor<double> m = f.margins();
  CHECK(m(0, 0) == doctest::Approx(0.3 - 0.5));
  CHECK(m(0, 2) == doctest::Approx(0.35 - 0.3 - 0.1));
  const Tensor<double> c = f.costs();
  CHECK(c(0, 0) == 1.0);
  CHECK(c(0, 1) == 1.0);
  CHECK(c(0, 2) == 1.0);
  // The observation lists the nearest agent first: for agent 0, agent 1 (0.3 away) before agent 2.
  const Tensor<double> o = f.observations();
  CHECK(o(0, 0, 6) == doctest::Approx(0.3));
  CHECK(o(0, 0, 10) == doctest::Approx(5.0));
  CHECK_THROWS_AS(f.step(Tensor<double>({1, 2, 2})), ShapeError);
}

TEST_CASE("safety: datasets carry Definition 3 costs (double integrator behaviours, SafeSpread collection)") {
  env::DoubleIntegratorConfig cfg;
  cfg.agents = 4;
  cfg.episode_length = 40;
  env::DoubleIntegratorCollectOptions o;
  o.parallel = 5;  // batches of 5: the episodes must not depend on it
  const auto noisy = env::collect_double_integrator(cfg, 12, 3, o);
  o.parallel = 12;
  const auto again = env::collect_double_integrator(cfg, 12, 3, o);
  const auto same = [](const Tensor<float>& a, const Tensor<float>& b) {
    return a.shape() == b.shape() && std::equal(a.data(), a.data() + a.size(), b.data());
  };
  CHECK(same(noisy.actions, again.actions));
  CHECK(same(noisy.costs, again.costs));
  noisy.validate("noisy double integrator");
  // The recorded cost of step t is the Definition 3 cost of the state after it: re-create episode 7 and check.
  env::DoubleIntegratorEnv e(1, cfg);
  e.reset(3, 7);
  for (index_t t = 0; t < cfg.episode_length; ++t) {
    Tensor<double> a({1, 4, 2});
    for (index_t j = 0; j < 8; ++j) a[j] = noisy.actions(7, t, j / 2, j % 2);
    const auto r = e.step(a);
    for (index_t i = 0; i < 4; ++i) REQUIRE(noisy.costs(7, t, i) == static_cast<float>(r.cost(0, i)));
  }
  // Each agent's cost from its own observation: the environment's with every other agent seen (N = 4), a
  // lower bound with only the 3 nearest seen (N = 8).
  const Tensor<float> from_obs = env::double_integrator_costs_from_observations(noisy.next_observations, cfg);
  CHECK(from_obs.shape() == noisy.costs.shape());
  CHECK(same(from_obs, noisy.costs));
  CHECK_THROWS_AS(env::double_integrator_costs_from_observations(noisy.observations.view().slice(3, 0, 20).contiguous(), cfg),
                  ShapeError);
  {
    env::DoubleIntegratorConfig eight = cfg;
    eight.agents = 8;
    const auto d8 = env::collect_double_integrator(eight, 6, 4, o);
    const Tensor<float> c8 = env::double_integrator_costs_from_observations(d8.next_observations, eight);
    index_t missed = 0, spurious = 0, dangerous = 0;
    for (index_t k = 0; k < c8.size(); ++k)
      missed += c8[k] < d8.costs[k], spurious += c8[k] > d8.costs[k], dangerous += d8.costs[k] > 0;
    MESSAGE("N = 8: ", missed, " of ", dangerous, " dangerous agent-steps are dangerous only through an unseen agent");
    CHECK(spurious == 0);
    CHECK(dangerous > 0);
    CHECK(missed * 5 < dangerous);  // the dangerous neighbour is mostly among the 3 nearest
  }
  o.behaviour = env::DoubleIntegratorBehaviour::Nominal;
  const auto nominal = env::collect_double_integrator(cfg, 12, 3, o);
  o.behaviour = env::DoubleIntegratorBehaviour::Random;
  const auto random = env::collect_double_integrator(cfg, 12, 3, o);
  const auto sn = env::safety_stats(nominal), sr = env::safety_stats(random), sy = env::safety_stats(noisy);
  MESSAGE("return/cost nominal ", sn.mean_return, "/", sn.mean_cost, ", noisy ", sy.mean_return, "/", sy.mean_cost, ", random ",
          sr.mean_return, "/", sr.mean_cost);
  CHECK(sn.mean_return > sy.mean_return);
  CHECK(sy.mean_return > sr.mean_return);
  CHECK(sy.mean_cost > 0);  // the behaviour data holds unsafe steps
  CHECK_THROWS_AS(env::parse_double_integrator_behaviour("expert"), ConfigError);

  // SafeSpread through the MPE collector: costs recorded next to the rewards.
  const auto d = env::mpe::collect_episodes<env::mpe::SafeSpreadEnv>(4, 1, env::mpe::uniform_random_policy(1), 4);
  CHECK(d.costs.shape() == Shape{4, 25, 3});
  CHECK(d.observations.shape() == Shape{4, 25, 3, 22});
  double total = 0;
  bool binary = true;
  for (float c : d.costs) {
    total += c;
    binary = binary && (c == 0.0f || c == 1.0f);
  }
  CHECK(binary);
  CHECK(env::mpe::collect_episodes<env::mpe::SpreadEnv>(1, 1, env::mpe::uniform_random_policy(1), 1).costs.empty());
  MESSAGE("SafeSpread random: ", total, " unsafe agent-steps of 300");
}

TEST_CASE("safety: expectile values (eqs. 15-16) and the CBF satisfaction of a window (eq. 8)") {
  // The tau-expectile of {0, 1} is tau; of a symmetric set at tau = 0.5, the mean.
  CHECK(safety::expectile_of({0.0, 1.0}, 0.7) == doctest::Approx(0.7));
  CHECK(safety::expectile_of({-2.0, 0.5, 1.5, 3.0}, 0.5) == doctest::Approx(0.75));
  CHECK(safety::expectile_loss(-2.0, 0.7) == doctest::Approx(0.3 * 4));
  CHECK(safety::expectile_loss_derivative(0.5, 0.7) == doctest::Approx((safety::expectile_loss(0.5 + 1e-6, 0.7) -
                                                                         safety::expectile_loss(0.5 - 1e-6, 0.7)) / 2e-6));
  // A one-step bandit: one state, rewards r = a for actions a in {-1, -0.5, 0, 1}: Q(z, a) = a and V(z)
  // converges to the tau-expectile of the data's rewards (not their maximum: no out-of-data actions).
  Rng rng(9);
  const index_t N = 512;
  safety::ValueData<float> d;
  d.z = Tensor<float>({N, 1});
  d.z_next = Tensor<float>({N, 1});
  d.action = Tensor<float>({N, 1});
  d.reward = Tensor<float>({N});
  const float acts[4] = {-1.0f, -0.5f, 0.0f, 1.0f};
  std::vector<double> rewards;
  for (index_t n = 0; n < N; ++n) {
    d.action(n, 0) = acts[n % 4], d.reward[n] = acts[n % 4], rewards.push_back(acts[n % 4]);
    d.done.push_back(1);
  }
  safety::ExpectileOptions o;
  o.tau = 0.8, o.steps = 1500, o.batch_size = 256, o.hidden = 32, o.lr = 2e-3;
  safety::ExpectileValue<float> vf(1, 1, o, rng);
  vf.train(d);
  const double want = safety::expectile_of(rewards, 0.8);
  const double got = vf.values(Tensor<float>({1, 1}))[0];
  // V is the expectile of the learned Q over the data's actions (eq. 15), and that of the rewards up to
  // Q's fitting error.
  std::vector<double> q_at_data;
  for (index_t n = 0; n < N; ++n)
    q_at_data.push_back(vf.q_values(Tensor<float>({1, 1}), Tensor<float>({1, 1}, acts[n % 4]))[0]);
  const double want_q = safety::expectile_of(q_at_data, 0.8);
  MESSAGE("V = ", got, ", 0.8-expectile of the learned Q ", want_q, ", of the rewards ", want);
  CHECK(got == doctest::Approx(want_q).epsilon(0.03).scale(1.0));
  CHECK(got == doctest::Approx(want).epsilon(0.06).scale(1.0));
  CHECK(vf.q_values(Tensor<float>({1, 1}), Tensor<float>({1, 1}, 1.0f))[0] == doctest::Approx(1.0).epsilon(0.1));

  // eq. 8 on a disc barrier: agent 0 stays out (h = 3, y = min(3, 0/dt + 3) = 3); agent 1 is labelled
  // dangerous at step 1 where h = 3: its -h = -3 gives y = -3.
  const safety::DiscBarrier<float> disc{0, 1, 0.0, 0.0, 1.0};
  Tensor<float> x({1, 2, 2, 2});
  for (index_t t = 0; t < 2; ++t)
    for (index_t i = 0; i < 2; ++i) x(0, t, i, 0) = 2.0f;
  Tensor<std::uint8_t> bad({1, 2, 2});
  bad(0, 1, 1) = 1;
  const Tensor<float> y = safety::cbf_satisfaction(disc, x, &bad, safety::CbfLossOptions{0.0, 1.0, 0.1});
  CHECK(y(0, 0) == doctest::Approx(3.0));
  CHECK(y(0, 1) == doctest::Approx(-3.0));
}
