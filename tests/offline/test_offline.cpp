// Offline learners on problems whose answer is known: the conservative penalty against a hand
// computation and finite differences, the zeroth-order search on a quadratic, the penalty pushing down
// out-of-data actions, TD3+BC's closed-form compromise between Q and the data, OMAR's rectified actor
// and CFCQL's centralised critic finding a known optimum, determinism and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "coordiff/offline/offline.hpp"
#include "docs/concepts_examples.hpp"

using namespace coordiff;
using namespace coordiff::offline;

namespace {

/// A one-step game: A agents, constant observation 1, actions uniform in [lo, hi]^A, team reward
/// reward(a) for every agent, every transition terminal (so Q = r).
template <class Reward>
rl::ReplayBuffer<float> bandit_data(index_t agents, index_t n, double lo, double hi, Reward reward, std::uint64_t seed = 3) {
  rl::ReplayBuffer<float> buf(n, agents, 1, 1);
  rl::TransitionBatch<float> t{Tensor<float>({n, agents, 1}, 1.f), Tensor<float>({n, agents, 1}), Tensor<float>({n, agents}),
                               Tensor<float>({n, agents, 1}, 1.f), Tensor<float>({n}, 1.f)};
  const Philox gen(seed, 0);
  for (index_t b = 0; b < n; ++b) {
    std::vector<double> a(static_cast<std::size_t>(agents));
    for (index_t i = 0; i < agents; ++i) {
      a[static_cast<std::size_t>(i)] = lo + (hi - lo) * gen.uniform(static_cast<std::uint64_t>(b * agents + i));
      t.actions(b, i, 0) = static_cast<float>(a[static_cast<std::size_t>(i)]);
    }
    for (index_t i = 0; i < agents; ++i) t.rewards(b, i) = static_cast<float>(reward(a));
  }
  buf.add(t);
  return buf;
}

ActorCriticOptions small_options(std::uint64_t seed = 0) {
  ActorCriticOptions o;
  o.hidden = 32;
  o.batch_size = 128;
  o.actor_lr = o.critic_lr = 3e-3;
  o.action_l2 = 0;
  o.seed = seed;
  return o;
}

template <class L>
double policy_action(L& learner, index_t agent = 0) {
  return learner.act(Tensor<float>({1, learner.agents(), 1}, 1.f))(0, agent, 0);
}

template <class L>
double q_at(L& learner, const std::vector<float>& actions, index_t critic = 0) {
  const auto A = static_cast<index_t>(actions.size());
  Tensor<float> a({1, A, 1});
  for (index_t i = 0; i < A; ++i) a(0, i, 0) = actions[static_cast<std::size_t>(i)];
  return learner.q_value(critic, Tensor<float>({1, A, 1}, 1.f), a)[0];
}

}  // namespace

TEST_CASE("conservative penalty: counterfactual soft maximum per agent, weights 1/G, and its gradient") {
  // Two agents, three samples each, two rows; values as if from a matrix game.
  const index_t G = 2, S = 3, B = 2;
  Tensor<double> qs({G, S, B}), qd({B});
  const double vals[] = {0.3, -1.0, 1.2, 0.5, -0.4, 2.0, 0.9, 0.1, -0.7, 1.5, 0.0, 0.2};
  for (index_t k = 0; k < G * S * B; ++k) qs[k] = vals[k];
  qd[0] = 0.4, qd[1] = -0.2;
  const ConservativePenaltyOptions opt{.alpha = 2.0, .temperature = 0.7, .log_density = std::log(0.5)};
  const auto pen = conservative_penalty(qs, qd, opt);
  double expect = 0;
  for (index_t b = 0; b < B; ++b) {
    double p = 0;
    for (index_t g = 0; g < G; ++g) {
      double s = 0;
      for (index_t k = 0; k < S; ++k) s += std::exp((qs(g, k, b) - std::log(0.5)) / 0.7);
      p += 0.5 * 0.7 * std::log(s);
    }
    expect += 2.0 * (p - qd[b]) / B;
  }
  CHECK(pen.value == doctest::Approx(expect).epsilon(1e-12));
  // Gradient against central differences.
  const double h = 1e-6;
  for (index_t k = 0; k < qs.size(); ++k) {
    Tensor<double> up = qs, dn = qs;
    up[k] += h, dn[k] -= h;
    CHECK(pen.d_sampled[k] == doctest::Approx((conservative_penalty(up, qd, opt).value - conservative_penalty(dn, qd, opt).value) / (2 * h)).epsilon(1e-6));
  }
  for (index_t b = 0; b < B; ++b) CHECK(pen.d_data[b] == doctest::Approx(-2.0 / B));
  // Raising every sampled value by c raises the penalty by alpha * c (the weights sum to one).
  Tensor<double> shifted = qs;
  for (auto& v : shifted) v += 0.25;
  CHECK(conservative_penalty(shifted, qd, opt).value == doctest::Approx(pen.value + 2.0 * 0.25).epsilon(1e-12));
  CHECK_THROWS_AS(conservative_penalty(qs, Tensor<double>({3}), opt), ShapeError);
}

TEST_CASE("zeroth-order search: finds the maximum of a known quadratic") {
  const double target[2] = {0.3, -0.55};
  auto score = [&](const Tensor<double>& c) {
    Tensor<double> q({c.dim(0), c.dim(1)});
    for (index_t k = 0; k < c.dim(0); ++k)
      for (index_t b = 0; b < c.dim(1); ++b)
        q(k, b) = -20 * (std::pow(c(k, b, 0) - target[0], 2) + std::pow(c(k, b, 1) - target[1], 2));
    return q;
  };
  const auto wide = zeroth_order_search<double>(score, 4, 2, {.iterations = 8, .samples = 200}, Philox(5, 0));
  for (index_t b = 0; b < 4; ++b) {
    CHECK(wide.action(b, 0) == doctest::Approx(target[0]).epsilon(0.1));
    CHECK(wide.action(b, 1) == doctest::Approx(target[1]).epsilon(0.1));
    CHECK(wide.value[b] > -0.1);
  }
  // OMAR's MPE settings (3 x 10 samples) on 2,000 rows: far better than the initial mean, and repeatable.
  const auto omar = zeroth_order_search<double>(score, 2000, 2, {}, Philox(6, 0));
  double mean_value = 0;
  for (index_t b = 0; b < 2000; ++b) mean_value += omar.value[b] / 2000;
  const double at_zero = -20 * (target[0] * target[0] + target[1] * target[1]);
  CHECK(mean_value > 0.35 * at_zero);
  CHECK(zeroth_order_search<double>(score, 2000, 2, {}, Philox(6, 0)).action.storage() == omar.action.storage());
  CHECK_THROWS_AS(zeroth_order_search<double>(score, 3, 2, {.samples = 0}, Philox(6, 0)), ConfigError);
}

TEST_CASE("conservative penalty pushes down the values of actions outside the data") {
  // Reward 1 everywhere, data actions only in [-0.3, 0.3]: the plain critic stays near 1 outside the
  // data; the conservative one keeps Q(data) near 1 and pushes Q(0.9) well below it.
  const auto data = bandit_data(1, 2048, -0.3, 0.3, [](const std::vector<double>&) { return 1.0; });
  auto run = [&](double alpha) {
    ActorCriticOptions o = small_options();
    o.cql_alpha = alpha;
    Cfcql<float> l(1, 1, 1, o);
    for (int r = 0; r < 600; ++r) l.update(data);
    return std::pair{q_at(l, {0.f}), q_at(l, {0.9f})};
  };
  const auto [plain_in, plain_out] = run(0.0);
  const auto [cql_in, cql_out] = run(0.5);
  CHECK(plain_in == doctest::Approx(1.0).epsilon(0.05));
  CHECK(std::abs(plain_out - plain_in) < 0.2);
  CHECK(cql_out < cql_in - 0.3);
  CHECK(cql_out < plain_out - 0.3);
}

TEST_CASE("MA-TD3+BC on a one-step bandit: the closed-form compromise between Q and the data") {
  // Q(a) = 1 - (a - 0.5)^2, data actions uniform in [-1, 1] (mean 0). The actor minimises
  // -lambda Q(pi) + E (pi - a)^2 with lambda = alpha / |Q(pi)|, so pi = 0.5 lambda / (1 + lambda).
  const auto data = bandit_data(1, 4096, -1, 1, [](const std::vector<double>& a) { return 1 - std::pow(a[0] - 0.5, 2); });
  auto closed_form = [](double alpha) {
    double pi = 0;
    for (int it = 0; it < 200; ++it) {
      const double lambda = alpha / (1 - (pi - 0.5) * (pi - 0.5));
      pi = 0.5 * lambda / (1 + lambda);
    }
    return pi;
  };
  for (double alpha : {0.3, 2.5}) {
    CAPTURE(alpha);
    Td3Bc<float> l(1, 1, 1, small_options(), objective::BehaviourCloned{.alpha = alpha});
    for (int r = 0; r < 1500; ++r) l.update(data);
    CHECK(policy_action(l) == doctest::Approx(closed_form(alpha)).epsilon(0.08));
  }
  CHECK(closed_form(0.3) < 0.15);  // mostly the data mean
  CHECK(closed_form(2.5) > 0.3);   // mostly the maximiser of Q
}

TEST_CASE("OMAR's rectified actor regresses on the search's best action: the maximiser of Q") {
  const auto data = bandit_data(1, 4096, -1, 1, [](const std::vector<double>& a) { return 1 - 2 * std::pow(a[0] + 0.4, 2); });
  Omar<float> l(1, 1, 1, small_options(1), objective::Rectified{.coefficient = 1.0});
  for (int r = 0; r < 800; ++r) l.update(data);
  CHECK(policy_action(l) == doctest::Approx(-0.4).epsilon(0.1));
}

TEST_CASE("CFCQL: a centralised critic on a two-agent game, each actor against the other's data actions") {
  // Team reward 1 - (a1 - 0.5)^2 - (a2 + 0.3)^2: separable, so each agent's best response to any data
  // action of the other is its own maximiser.
  const auto data = bandit_data(2, 4096, -1, 1, [](const std::vector<double>& a) {
    return 1 - std::pow(a[0] - 0.5, 2) - std::pow(a[1] + 0.3, 2);
  });
  // Both ways of scaling the critic's inputs: fixed, and each call's batch statistics (CFCQL's setting).
  for (CriticInputs inputs : {CriticInputs::Fixed, CriticInputs::BatchStatistics}) {
    CAPTURE(inputs == CriticInputs::Fixed ? "fixed" : "batch statistics");
    ActorCriticOptions o = small_options(2);
    o.critic = CriticLayout::Centralised;
    o.critic_inputs = inputs;
    o.cql_alpha = 0.05;
    o.cql_samples = 4;
    Cfcql<float> l(2, 1, 1, o);
    CHECK(l.critic_count() == 1);
    for (int r = 0; r < 1200; ++r) l.update(data);
    CHECK(q_at(l, {0.5f, -0.3f}) == doctest::Approx(1.0).epsilon(0.1));
    CHECK(policy_action(l, 0) == doctest::Approx(0.5).epsilon(0.12));
    CHECK(policy_action(l, 1) == doctest::Approx(-0.3).epsilon(0.12));
  }
}

TEST_CASE("batch-statistics critic inputs: a pure policy gradient against a critic that extrapolates upwards") {
  // One agent, reward a (increasing), data actions in [-0.3, 0.3], no penalty: a critic fitted to the
  // data extrapolates linearly, and a policy gradient actor with fixed inputs follows it to the corner
  // a = 1. With the batch's statistics the actor's rows are the whole call, so a shift they share is
  // standardised away: the policy stays near the data.
  const auto data = bandit_data(1, 2048, -0.3, 0.3, [](const std::vector<double>& a) { return a[0]; });
  auto run = [&](CriticInputs inputs) {
    ActorCriticOptions o = small_options(4);
    o.critic_inputs = inputs;
    Cfcql<float> l(1, 1, 1, o);
    for (int r = 0; r < 300; ++r) l.update(data);
    return policy_action(l);
  };
  CHECK(run(CriticInputs::Fixed) > 0.9);
  CHECK(std::abs(run(CriticInputs::BatchStatistics)) < 0.3);
}

TEST_CASE("offline learners: same seed same weights, published settings, bad input") {
  const auto data = bandit_data(2, 512, -1, 1, [](const std::vector<double>& a) { return a[0] * a[1]; });
  for (Algorithm algo : {Algorithm::Td3Bc, Algorithm::Omar, Algorithm::Cfcql}) {
    CAPTURE(to_string(algo));
    LearnerSettings s = published_settings(algo, "spread", "medium");
    s.options.batch_size = 64;
    auto weights = [&] {
      return with_learner<float>(s, 2, 1, 1, [&](auto& l) {
        for (int r = 0; r < 5; ++r) l.update(data);
        return l.actor_state();
      });
    };
    const auto w1 = weights(), w2 = weights();
    REQUIRE(w1.size() == w2.size());
    for (std::size_t k = 0; k < w1.size(); ++k) CHECK(w1[k].storage() == w2[k].storage());
    CHECK(parse_algorithm(to_string(algo)) == algo);
  }
  CHECK(published_settings(Algorithm::Omar, "spread", "medium").options.cql_alpha == 5.0);
  CHECK(published_settings(Algorithm::Cfcql, "spread", "medium").options.critic == CriticLayout::Centralised);
  CHECK(published_settings(Algorithm::Td3Bc, "world", "medium").rounds == 1000);
  CHECK_THROWS_AS(parse_algorithm("cql"), ConfigError);
  ActorCriticOptions bad;
  bad.tau = 0;
  CHECK_THROWS_AS((Td3Bc<float>(2, 1, 1, bad)), ConfigError);
  Td3Bc<float> l(2, 1, 1);
  Tensor<float> nan_obs({1, 2, 1}, 1.f);
  nan_obs[0] = std::nanf("");
  CHECK_THROWS_AS(l.act(nan_obs), NumericError);
  CHECK_THROWS_AS(l.act(Tensor<float>({1, 3, 1})), ShapeError);
}

TEST_CASE("transitions_buffer: every valid transition once, padding after a timeout left out") {
  data::OfflineDataset<float> d;
  const index_t E = 2, T = 3, A = 2, O = 2, U = 1;
  d.observations = Tensor<float>({E, T, A, O});
  for (index_t k = 0; k < d.observations.size(); ++k) d.observations[k] = static_cast<float>(k);
  d.next_observations = d.observations;
  for (auto& v : d.next_observations) v += 0.5f;
  d.actions = Tensor<float>({E, T, A, U}, 0.25f);
  d.rewards = Tensor<float>({E, T, A}, 1.f);
  d.terminals = Tensor<float>({E, T}, 0.f);
  d.terminals(1, 2) = 1.f;
  d.timeouts = Tensor<float>({E, T}, 0.f);
  d.timeouts(0, 1) = 1.f;  // episode 0 is a 2-step window; its step 2 is padding
  d.observations(0, 2, 0, 0) = 1000.f;
  d.states = Tensor<float>({E, T, 4});
  const auto buf = transitions_buffer(d);
  CHECK(buf.size() == 2 + 3);
  const auto s = buf.sample(300, 1, 0);
  int terminal = 0;
  for (index_t b = 0; b < 300; ++b) {
    CHECK(s.obs(b, 0, 0) != 1000.f);
    CHECK(s.next_obs(b, 1, 1) == s.obs(b, 1, 1) + 0.5f);
    const auto row = static_cast<index_t>(s.obs(b, 0, 0)) / (A * O);  // transition index e * T + t
    CHECK(s.done[b] == (row == E * T - 1 ? 1.f : 0.f));
    terminal += s.done[b] == 1.f;
  }
  CHECK(terminal > 0);
  // Observation moments over the valid steps only: feature 0 of agents 0 and 1 at rows 0, 1, 3, 4, 5.
  const auto [mean, sd] = data::observation_moments(d);
  CHECK(mean[0] == doctest::Approx((0 + 2 + 4 + 6 + 12 + 14 + 16 + 18 + 20 + 22) / 10.0));
  CHECK(sd[0] > 0);
  // Without next observations: o' is the next step's observation; a timed-out last step is dropped, a
  // terminal one kept.
  d.next_observations = Tensor<float>();
  const auto derived = transitions_buffer(d);
  CHECK(derived.size() == 1 + 3);
  const auto s2 = derived.sample(200, 2, 0);
  for (index_t b = 0; b < 200; ++b)
    if (s2.done[b] == 0.f) CHECK(s2.next_obs(b, 0, 0) == s2.obs(b, 0, 0) + A * O);
}

TEST_CASE("CounterfactualPass equals a plain forward and backward over the explicit counterfactual rows") {
  Rng rng(11, 0);
  const index_t B = 5, W = 9, G = 2, S = 3, U = 2, R = B * (1 + G * S);
  nn::MLP<double> head({W, 7, 6, 1}, nn::Activation::ReLU, rng);
  nn::MLP<double> copy = head;
  const Tensor<double> x = rng.normal<double>({B, W});
  const Tensor<double> cand = rng.uniform<double>({G, S, B, U}, -1.0, 1.0);
  const std::vector<index_t> columns{3, 7};
  Tensor<double> rows({R, W});
  for (index_t r = 0; r < R; ++r) {
    const index_t b = r % B;
    for (index_t w = 0; w < W; ++w) rows(r, w) = x(b, w);
    if (r >= B) {
      const index_t g = (r / B - 1) / S, k = (r / B - 1) % S;
      for (index_t u = 0; u < U; ++u) rows(r, columns[static_cast<std::size_t>(g)] + u) = cand(g, k, b, u);
    }
  }
  CounterfactualPass<double> pass;
  const Tensor<double> q = pass.forward(head, x, columns, cand);
  const Tensor<double> ref = copy.forward(rows);
  REQUIRE(q.size() == R);
  for (index_t r = 0; r < R; ++r) CHECK(q[r] == doctest::Approx(ref[r]).epsilon(1e-12));
  const Tensor<double> dq = rng.normal<double>({R});
  pass.backward(dq);
  copy.backward(dq.reshape({R, 1}));
  auto p = nn::parameters_of<double>(head), pr = nn::parameters_of<double>(copy);
  REQUIRE(p.size() == pr.size());
  for (std::size_t k = 0; k < p.size(); ++k)
    for (index_t j = 0; j < p[k].param->grad.size(); ++j)
      CHECK(p[k].param->grad[j] == doctest::Approx(pr[k].param->grad[j]).epsilon(1e-10));
  // The moments of the explicit counterfactual rows, from the data rows and the candidates alone.
  Tensor<double> copies({R - B, W});
  std::copy(rows.data() + B * W, rows.data() + R * W, copies.data());
  const nn::ColumnMoments explicit_moments = nn::moments_of(copies), implicit = counterfactual_moments(x, columns, cand);
  CHECK(implicit.rows == R - B);
  for (index_t w = 0; w < W; ++w) {
    CHECK(implicit.mean[static_cast<std::size_t>(w)] == doctest::Approx(explicit_moments.mean[static_cast<std::size_t>(w)]).epsilon(1e-12));
    CHECK(implicit.variance[static_cast<std::size_t>(w)] ==
          doctest::Approx(explicit_moments.variance[static_cast<std::size_t>(w)]).epsilon(1e-10));
  }
  CHECK_THROWS_AS(counterfactual_moments(x, {3}, cand), ShapeError);
  // No candidates: the plain MLP on the data rows.
  const Tensor<double> plain = CounterfactualPass<double>().forward(head, x, {}, {});
  const Tensor<double> plain_ref = copy.forward(x);
  for (index_t b = 0; b < B; ++b) CHECK(plain[b] == doctest::Approx(plain_ref[b]).epsilon(1e-12));
}

TEST_CASE("docs/concepts.md's user ActorObjective (pure cloning) learns the data's mean action") {
  const auto data = bandit_data(1, 4096, -0.2, 0.6, [](const std::vector<double>& a) { return -a[0]; });
  offline::ActorCritic<float, concepts_doc::PureCloning> l(1, 1, 1, small_options());
  for (int r = 0; r < 300; ++r) l.update(data);
  CHECK(policy_action(l) == doctest::Approx(0.2).epsilon(0.05));  // the mean of U(-0.2, 0.6), though Q prefers -1
}
