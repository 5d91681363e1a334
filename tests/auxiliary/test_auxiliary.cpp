// The MASTARS auxiliary models on problems whose answers are known, and the dynamics-consistency filter
// (eq. 6) with exact and with learned models.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "coordiff/auxiliary/auxiliary.hpp"
#include "coordiff/filter/dynamics_consistency.hpp"

using namespace coordiff;
namespace aux = coordiff::auxiliary;

namespace {

// A damped double integrator per agent: o = (position, velocity), one action.
//   v' = 0.75 v + 0.5 a,  p' = p + 0.1 v'.
// Observations carry more than the action controls (p' follows from v'), so a window can break the
// dynamics in a way no action explains.
struct Integrator {
  static void step(const float* o, float a, float* next) {
    next[1] = 0.75f * o[1] + 0.5f * a;
    next[0] = o[0] + 0.1f * next[1];
  }
};

struct ExactInverse {
  Tensor<float> actions(const Tensor<float>& w) const {
    const index_t B = w.dim(0), H = w.dim(1), A = w.dim(2);
    Tensor<float> a({B, H - 1, A, 1});
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t + 1 < H; ++t)
        for (index_t i = 0; i < A; ++i) a(b, t, i, 0) = (w(b, t + 1, i, 1) - 0.75f * w(b, t, i, 1)) / 0.5f;
    return a;
  }
};

struct ExactTransition {
  Tensor<float> errors(const Tensor<float>& w, const Tensor<float>& act) const {
    const index_t B = w.dim(0), H = w.dim(1), A = w.dim(2);
    Tensor<float> e({B, H - 1, A});
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t + 1 < H; ++t)
        for (index_t i = 0; i < A; ++i) {
          float next[2];
          Integrator::step(&w(b, t, i, 0), act(b, t, i, 0), next);
          const double dp = next[0] - w(b, t + 1, i, 0), dv = next[1] - w(b, t + 1, i, 1);
          e(b, t, i) = static_cast<float>((dp * dp + dv * dv) / 2);
        }
    return e;
  }
};

/// B windows of H steps of A agents following the integrator under smooth pseudo-random actions.
Tensor<float> integrator_windows(index_t B, index_t H, index_t A, std::uint64_t seed) {
  Tensor<float> w({B, H, A, 2});
  const Philox gen(seed, 0);
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < A; ++i) {
      w(b, 0, i, 0) = static_cast<float>(2 * gen.uniform(static_cast<std::uint64_t>(4 * (b * A + i))) - 1);
      w(b, 0, i, 1) = static_cast<float>(2 * gen.uniform(static_cast<std::uint64_t>(4 * (b * A + i) + 1)) - 1);
      for (index_t t = 0; t + 1 < H; ++t) {
        const auto a = static_cast<float>(2 * gen.uniform(static_cast<std::uint64_t>(1000000 + (b * A + i) * H + t)) - 1);
        Integrator::step(&w(b, t, i, 0), a, &w(b, t + 1, i, 0));
      }
    }
  return w;
}

/// Transitions of the integrator with actions uniform in [-1, 1] and reward -|p'| per agent.
aux::Transitions<float> integrator_transitions(index_t N, index_t A, std::uint64_t seed) {
  aux::Transitions<float> t{Tensor<float>({N, A, 2}), Tensor<float>({N, A, 1}), Tensor<float>({N, A}),
                            Tensor<float>({N, A, 2}), Tensor<float>({N}, 0.f)};
  const Philox gen(seed, 1);
  for (index_t n = 0; n < N; ++n)
    for (index_t i = 0; i < A; ++i) {
      const auto k = static_cast<std::uint64_t>(3 * (n * A + i));
      t.obs(n, i, 0) = static_cast<float>(2 * gen.uniform(k) - 1);
      t.obs(n, i, 1) = static_cast<float>(2 * gen.uniform(k + 1) - 1);
      t.actions(n, i, 0) = static_cast<float>(2 * gen.uniform(k + 2) - 1);
      Integrator::step(&t.obs(n, i, 0), t.actions(n, i, 0), &t.next_obs(n, i, 0));
      t.rewards(n, i) = -std::abs(t.next_obs(n, i, 0));
    }
  return t;
}

}  // namespace

TEST_CASE("DynamicsConsistency: exact models accept dynamics-following windows and score a broken one exactly") {
  const index_t B = 3, H = 8, A = 2;
  const Tensor<float> truth = integrator_windows(B, H, A, 7);
  ExactInverse inverse;
  ExactTransition transition;
  auto filter = filter::dynamics_consistency(inverse, transition, 0.01);
  diffusion::Batch<float> batch;
  batch.data = truth;
  // Agent 1's steps after t = 3 count as generated: they differ from the batch's input window.
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 4; t < H; ++t) batch.data(b, t, 1, 0) += 1.0f;
  auto verdict = filter.check(truth, batch);
  CHECK(verdict.keep == std::vector<std::uint8_t>{1, 1, 1});
  for (double s : filter.score(truth, batch)) CHECK(s < 1e-12);

  // Sample 1: agent 1's position jumps by delta at t = 5 (generated). Transitions 4->5 and 5->6 each
  // miss by delta in position only: score = (delta^2 / 2) * 2 / ((H - 1) A).
  Tensor<float> broken = truth;
  const float delta = 0.5f;
  broken(1, 5, 1, 0) += delta;
  const auto s = filter.score(broken, batch);
  CHECK(s[1] == doctest::Approx(delta * delta / ((H - 1) * A)).epsilon(1e-5));
  CHECK(s[0] < 1e-12);
  verdict = filter.check(broken, batch);
  CHECK(verdict.keep == std::vector<std::uint8_t>{1, 0, 1});
  CHECK(verdict.reason[1].find("epsilon 0.01") != std::string::npos);
  filter.epsilon = 0.02;  // delta^2 / 14 = 0.0179
  CHECK(filter.check(broken, batch).keep[1] == 1);

  // A break inside the known region (identical in the batch) is not the generator's doing: ignored by
  // Scope::Generated, counted by Scope::All.
  Tensor<float> known_break = truth;
  known_break(2, 2, 0, 0) += delta;
  batch.data = known_break;
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 4; t < H; ++t) batch.data(b, t, 1, 0) += 1.0f;
  CHECK(filter.score(known_break, batch)[2] < 1e-12);
  filter.scope = decltype(filter)::Scope::All;
  CHECK(filter.score(known_break, batch)[2] == doctest::Approx(delta * delta / ((H - 1) * A)).epsilon(1e-5));
}

TEST_CASE("Regressor: fits a linear map to held-out rounding, reproducibly, and refuses bad input") {
  const index_t N = 2000;
  Tensor<float> x({N, 3}), y({N, 2});
  const Philox gen(3, 0);
  for (index_t n = 0; n < N; ++n) {
    for (index_t k = 0; k < 3; ++k) x(n, k) = static_cast<float>(2 * gen.uniform(static_cast<std::uint64_t>(3 * n + k)) - 1);
    y(n, 0) = 0.5f * x(n, 0) - x(n, 1) + 0.25f;
    y(n, 1) = 2.0f * x(n, 2) - 0.3f * x(n, 0);
  }
  aux::FitOptions opt;
  opt.steps = 1000, opt.batch_size = 128, opt.seed = 1;
  aux::Regressor<float> a(3, 2, 32, 5), b(3, 2, 32, 5);
  const auto ra = a.fit(x, y, opt), rb = b.fit(x, y, opt);
  MESSAGE("linear map: held-out mse ", ra.heldout_mse, " (variance ", ra.heldout_variance, ")");
  CHECK(ra.heldout_rows == 200);
  CHECK(ra.train_rows == 1800);
  CHECK(ra.relative_error() < 1e-3);
  CHECK(ra.heldout_mse == rb.heldout_mse);
  CHECK_THROWS_AS(a.fit(x, Tensor<float>({N, 3}), opt), ShapeError);
  Tensor<float> bad = x;
  bad(7, 1) = std::nanf("");
  CHECK_THROWS_AS(a.fit(bad, y, opt), NumericError);
  opt.heldout_fraction = 1.0;
  CHECK_THROWS_AS(a.fit(x, y, opt), ConfigError);
}

TEST_CASE("auxiliary models: learned inverse dynamics, transition and reward models, and the filter with learned models") {
  const aux::Transitions<float> data = integrator_transitions(6000, 2, 11);
  aux::FitOptions opt;
  opt.steps = 1500, opt.batch_size = 128, opt.seed = 2, opt.lr = 2e-3;
  aux::InverseDynamics<float> inverse(2, 1, 64, 1);
  aux::TransitionModel<float> transition(2, 1, 64, 2);
  aux::RewardModel<float> reward(2, 2, 1, 64, 3);
  const auto ri = inverse.fit(data, opt), rt = transition.fit(data, opt), rr = reward.fit(data, opt);
  MESSAGE("held-out relative errors: inverse ", ri.relative_error(), ", transition ", rt.relative_error(), ", reward ",
          rr.relative_error());
  CHECK(ri.relative_error() < 0.01);
  CHECK(rt.relative_error() < 0.01);
  CHECK(rr.relative_error() < 0.05);

  // Learned models in the filter: true windows pass, a position jump of 0.5 is caught.
  const index_t H = 8, A = 2;
  const Tensor<float> truth = integrator_windows(4, H, A, 9);
  Tensor<float> broken = truth;
  for (index_t b = 0; b < 4; ++b) broken(b, 5, 1, 0) += 0.5f;
  diffusion::Batch<float> batch;
  batch.data = Tensor<float>(truth.shape(), 9.0f);  // everything generated
  auto filter = filter::dynamics_consistency(inverse, transition, 0.01);
  const auto good = filter.score(truth, batch), bad = filter.score(broken, batch);
  for (index_t b = 0; b < 4; ++b) {
    CHECK(good[static_cast<std::size_t>(b)] < 1e-3);
    CHECK(bad[static_cast<std::size_t>(b)] > 0.01);
  }
  // Window helpers agree with the row-wise calls.
  const Tensor<float> acts = inverse.actions(truth);
  CHECK(acts.shape() == Shape{4, H - 1, A, 1});
  const Tensor<float> r = reward.rewards(truth, acts);
  CHECK(r.shape() == Shape{4, H - 1, A});
  const Tensor<float> one = inverse(Tensor<float>({1, 2}, {truth(2, 3, 1, 0), truth(2, 3, 1, 1)}),
                                    Tensor<float>({1, 2}, {truth(2, 4, 1, 0), truth(2, 4, 1, 1)}));
  CHECK(one[0] == doctest::Approx(acts(2, 3, 1, 0)).epsilon(1e-6));
}

TEST_CASE("ValueModel: TD(0) recovers the values of a chain with a terminal reward, and their order") {
  // Five states in a row, one-hot observations; each transition moves one state right; reaching state 4
  // pays 1 and ends the episode. V(s) = gamma^(3 - s) for s = 0..3.
  const double gamma = 0.5;
  const index_t N = 4 * 64;
  aux::Transitions<float> t{Tensor<float>({N, 1, 5}), Tensor<float>({N, 1, 1}), Tensor<float>({N, 1}),
                            Tensor<float>({N, 1, 5}), Tensor<float>({N})};
  for (index_t n = 0; n < N; ++n) {
    const index_t s = n % 4;
    t.obs(n, 0, s) = 1, t.next_obs(n, 0, s + 1) = 1;
    t.rewards(n, 0) = s == 3 ? 1.f : 0.f;
    t.done[n] = s == 3 ? 1.f : 0.f;
  }
  aux::ValueFitOptions opt;
  opt.gamma = gamma, opt.tau = 0.05;
  opt.fit.steps = 1500, opt.fit.batch_size = 64, opt.fit.lr = 1e-3, opt.fit.seed = 4;
  aux::ValueModel<float> v(5, 32, 6);
  const auto report = v.fit(t, opt);
  MESSAGE("chain: relative TD error ", report.relative_td_error);
  Tensor<float> states({4, 5});
  for (index_t s = 0; s < 4; ++s) states(s, s) = 1;
  const Tensor<float> values = v(states);
  for (index_t s = 0; s < 4; ++s) CHECK(values[s] == doctest::Approx(std::pow(gamma, 3 - s)).epsilon(0.03));
  CHECK(report.relative_td_error < 0.05);
  // As windows [1, H=4, A=1, O]: values rise along the chain, so the subgoal (argmax) is the last step.
  const Tensor<float> w = v.values(states.reshape({1, 4, 1, 5}));
  diffusion::Batch<float> batch;
  batch.data = Tensor<float>({1, 4, 1, 5});
  batch.values = w;
  CHECK(batch.subgoal(0, 0) == 3);
}

TEST_CASE("transitions_of: next observations from the dataset, or the following step with the last one dropped") {
  data::OfflineDataset<float> d;
  d.observations = Tensor<float>({2, 3, 1, 1});
  for (index_t i = 0; i < 6; ++i) d.observations[i] = static_cast<float>(i);
  d.actions = Tensor<float>({2, 3, 1, 1}, 0.5f);
  d.rewards = Tensor<float>({2, 3, 1});
  for (index_t i = 0; i < 6; ++i) d.rewards[i] = static_cast<float>(10 * i);
  d.terminals = Tensor<float>({2, 3});
  d.terminals(1, 1) = 1;  // episode 1 ends at its step 1
  auto t = aux::transitions_of(d);
  // Episode 0: steps 0, 1 (step 2 has no successor); episode 1: steps 0, 1 (terminal, o' = o).
  REQUIRE(t.size() == 4);
  CHECK(t.obs[0] == 0.f);
  CHECK(t.next_obs[0] == 1.f);
  CHECK(t.next_obs[1] == 2.f);
  CHECK(t.obs[2] == 3.f);
  CHECK(t.next_obs[3] == 4.f);
  CHECK(t.rewards[3] == 40.f);
  CHECK(t.done[3] == 1.f);
  CHECK(t.done[2] == 0.f);
  d.next_observations = Tensor<float>({2, 3, 1, 1}, 7.f);
  t = aux::transitions_of(d);
  CHECK(t.size() == 5);  // 3 + 2: the steps after episode 1's terminal are ignored
  CHECK(t.next_obs[2] == 7.f);
}
