// SafeSpread's scripted behaviours (the landmark assignment, the PD controller, the noisy mixture) and its
// costs recomputed from observations, against constructed states and the environment itself.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/env/mpe/safe_spread_behaviour.hpp"

using namespace coordiff;
namespace mpe = coordiff::env::mpe;

namespace {
/// One SafeSpread environment in the given state: agents' positions and velocities (3 x 2 each),
/// landmarks and hazards (3 x 2 and 2 x 2).
mpe::SafeSpreadEnv make_state(std::vector<double> agents, std::vector<double> vel, std::vector<double> landmarks,
                              std::vector<double> hazards) {
  mpe::SafeSpreadEnv e(1);
  Tensor<double> p({1, 8, 2}), v({1, 8, 2});
  for (index_t k = 0; k < 6; ++k) p[k] = agents[static_cast<std::size_t>(k)], v[k] = vel[static_cast<std::size_t>(k)];
  for (index_t k = 0; k < 6; ++k) p[6 + k] = landmarks[static_cast<std::size_t>(k)];
  for (index_t k = 0; k < 4; ++k) p[12 + k] = hazards[static_cast<std::size_t>(k)];
  e.set_state(p, v);
  return e;
}
}  // namespace

TEST_CASE("safe-spread: every agent derives the same landmark assignment, the one of least summed distance") {
  // Agents near (0,0), (1,0), (0,1); landmarks listed so that the identity is not the best assignment:
  // landmark 0 at (1.1, 0), landmark 1 at (0, 1.1), landmark 2 at (-0.1, 0). Best: agent 0 -> 2,
  // agent 1 -> 0, agent 2 -> 1 (summed distance 0.3 against >= 1.9 for any other).
  auto e = make_state({0, 0, 1, 0, 0, 1}, {0, 0, 0, 0, 0, 0}, {1.1, 0, 0, 1.1, -0.1, 0}, {3, 3, -3, -3});
  const Tensor<double> o = e.observations();
  CHECK(mpe::nominal_landmark(o.data() + 0 * 22, 0) == 2);
  CHECK(mpe::nominal_landmark(o.data() + 1 * 22, 1) == 0);
  CHECK(mpe::nominal_landmark(o.data() + 2 * 22, 2) == 1);
  // The PD law from rest: a = clip(kp (l - p), -1, 1), here kp = 2 on offsets of 0.1 (no velocity term).
  const Tensor<double> a = mpe::safe_spread_nominal_actions(o, 2.0, 1.0);
  CHECK(a(0, 0, 0) == doctest::Approx(-0.2));
  CHECK(a(0, 1, 0) == doctest::Approx(0.2));
  CHECK(a(0, 2, 1) == doctest::Approx(0.2));
  CHECK(a(0, 0, 1) == doctest::Approx(0.0));
  // ... and with a velocity it damps: agent 0 moving at (1, 0) brakes at -kd v - 0.2 = -1.2, clipped to -1.
  auto moving = make_state({0, 0, 1, 0, 0, 1}, {1, 0, 0, 0, 0, 0}, {1.1, 0, 0, 1.1, -0.1, 0}, {3, 3, -3, -3});
  CHECK(mpe::safe_spread_nominal_actions(moving.observations(), 2.0, 1.0)(0, 0, 0) == doctest::Approx(-1.0));
  CHECK_THROWS_AS(mpe::safe_spread_nominal_actions(Tensor<double>({1, 3, 18}), 2.0, 1.0), ShapeError);
}

TEST_CASE("safe-spread: the nominal controller covers the landmarks, the noisy behaviour mixes safe and unsafe episodes") {
  mpe::SafeSpreadBehaviourOptions o;
  o.behaviour = mpe::SafeSpreadBehaviour::Nominal;
  const auto nominal = mpe::collect_episodes<mpe::SafeSpreadEnv>(40, 3, mpe::safe_spread_policy(o, 3), 40);
  o.behaviour = mpe::SafeSpreadBehaviour::Random;
  const auto random = mpe::collect_episodes<mpe::SafeSpreadEnv>(40, 3, mpe::safe_spread_policy(o, 3), 40);
  o.behaviour = mpe::SafeSpreadBehaviour::Noisy;
  const auto noisy = mpe::collect_episodes<mpe::SafeSpreadEnv>(40, 3, mpe::safe_spread_policy(o, 3), 40);
  // At the last step every landmark has an agent on it under the nominal controller: each agent's
  // landmark offset (observation 4..9) has a near-zero entry for every landmark, over all episodes.
  double worst = 0;
  for (index_t e = 0; e < 40; ++e)
    for (index_t l = 0; l < 3; ++l) {
      double nearest = 1e9;
      for (index_t i = 0; i < 3; ++i)
        nearest = std::min<double>(nearest, std::hypot(nominal.next_observations(e, 24, i, 4 + 2 * l),
                                               nominal.next_observations(e, 24, i, 5 + 2 * l)));
      worst = std::max(worst, nearest);
    }
  CHECK(worst < 0.25);
  const auto sn = env::safety_stats(nominal), sr = env::safety_stats(random), sy = env::safety_stats(noisy);
  CHECK(sn.mean_return > sy.mean_return);
  CHECK(sy.mean_return > sr.mean_return);
  CHECK(sy.safe_rate > 0.0);
  CHECK(sy.safe_rate < 1.0);
  // Noisy differs from nominal only where it adds noise: actions stay in [-1, 1].
  for (float a : noisy.actions) CHECK(std::abs(a) <= 1.0f);
  // Deterministic per episode: episode 5 of a run in batches of 7 is episode 5 of a run in one batch.
  const auto again = mpe::collect_episodes<mpe::SafeSpreadEnv>(8, 3, mpe::safe_spread_policy(o, 3), 7);
  for (index_t t = 0; t < 25; ++t)
    for (index_t i = 0; i < 3; ++i) CHECK(again.actions(5, t, i, 0) == noisy.actions(5, t, i, 0));
  CHECK_THROWS_AS(mpe::parse_safe_spread_behaviour("expert"), ConfigError);
}

TEST_CASE("safe-spread: costs recomputed from observations equal the environment's costs of the same states") {
  mpe::SafeSpreadBehaviourOptions o;
  const auto d = mpe::collect_episodes<mpe::SafeSpreadEnv>(30, 5, mpe::safe_spread_policy(o, 5), 30);
  // The cost of step t is that of the state after it: next_observations [E, T, A, O] as windows.
  const Tensor<float> c = mpe::safe_spread_costs_from_observations(d.next_observations);
  REQUIRE(c.shape() == d.costs.shape());
  index_t unsafe = 0;
  for (index_t k = 0; k < c.size(); ++k) {
    CHECK(c[k] == d.costs[k]);
    unsafe += d.costs[k] > 0;
  }
  CHECK(unsafe > 0);                // the comparison covers both labels
  CHECK(unsafe < d.costs.size());
  CHECK_THROWS_AS(mpe::safe_spread_costs_from_observations(Tensor<float>({1, 2, 3, 18})), ShapeError);
}
