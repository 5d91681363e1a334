// Paper 001's safe planning: the CBF rows and window conditions cut from a dataset with costs, the safety
// config, chained guidance, and the closed-loop diffusion planner on the double integrator.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/env/mpe/safe_spread_behaviour.hpp"
#include "coordiff/mastars/augment.hpp"
#include "coordiff/mastars/diagnostics.hpp"
#include "coordiff/guidance/chain.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/guidance/cost_gradient.hpp"
#include "coordiff/mastars/training.hpp"
#include "coordiff/planning/closed_loop.hpp"
#include "support/safe_model.hpp"
#include "coordiff/safety/cbf_data.hpp"

using namespace coordiff;

namespace {
/// Two episodes of 5 steps, 2 agents, 1-d observations o = 10 e + t (+ 0.5 for agent 1), reward 1 per
/// step; agent 1 has a cost at step 2 of episode 0 (so its observation at step 3 is dangerous).
data::OfflineDataset<float> costly_dataset() {
  data::OfflineDataset<float> d;
  const index_t E = 2, T = 5, A = 2;
  d.observations = Tensor<float>({E, T, A, 1});
  d.actions = Tensor<float>({E, T, A, 1}, 0.0f);
  d.rewards = Tensor<float>({E, T, A}, 1.0f);
  d.terminals = Tensor<float>({E, T}, 0.0f);
  d.costs = Tensor<float>({E, T, A}, 0.0f);
  for (index_t e = 0; e < E; ++e)
    for (index_t t = 0; t < T; ++t)
      for (index_t a = 0; a < A; ++a) d.observations(e, t, a, 0) = static_cast<float>(10 * e + t + 0.5 * a);
  d.costs(0, 2, 1) = 1.0f;
  return d;
}

struct Quadratic {  // c(x) = 0.5 |x|^2 per sample
  guidance::CostValue<float> value_and_gradient(const Tensor<float>& x) const {
    guidance::CostValue<float> v{Tensor<float>({x.dim(0)}, 0.0f), x};
    const index_t per = x.size() / x.dim(0);
    for (index_t i = 0; i < x.size(); ++i) v.value[i / per] += 0.5f * x[i] * x[i];
    return v;
  }
};
}  // namespace

TEST_CASE("planning: CBF rows of a dataset label o_t by the cost of the step into it") {
  const auto d = costly_dataset();
  const auto c = safety::cbf_data(d);
  REQUIRE(c.size() == 20);
  for (index_t e = 0; e < 2; ++e)
    for (index_t t = 0; t < 5; ++t)
      for (index_t a = 0; a < 2; ++a) {
        const auto r = static_cast<std::size_t>((e * 5 + t) * 2 + a);
        CHECK(c.z(static_cast<index_t>(r), 0) == doctest::Approx(10 * e + t + 0.5 * a));
        CHECK(c.safe[r] == ((e == 0 && t == 3 && a == 1) ? 0 : 1));
        CHECK(c.has_next[r] == (t < 4 ? 1 : 0));  // no next_observations: the successor is o_{t+1}
        if (t < 4) CHECK(c.z_next(static_cast<index_t>(r), 0) == doctest::Approx(10 * e + t + 1 + 0.5 * a));
      }
  const auto second = safety::cbf_data(d, 1, 2);
  CHECK(second.size() == 10);
  CHECK(second.z(0, 0) == doctest::Approx(10.0));
  CHECK_THROWS_AS(safety::cbf_data(d, 1, 1), ConfigError);
  auto no_costs = d;
  no_costs.costs = Tensor<float>();
  CHECK_THROWS_WITH_AS(safety::cbf_data(no_costs), doctest::Contains("no 'costs'"), ConfigError);
}

TEST_CASE("planning: cbf_return windows carry (no cost in the window, eq. 13's penalised return-to-go)") {
  auto cfg = mastars::Config{};
  cfg.diffusion.horizon = 2, cfg.diffusion.dim = 16, cfg.diffusion.dim_mults = {1, 2}, cfg.diffusion.groups = 4;
  cfg.diffusion.kernel_size = 3, cfg.diffusion.returns_scale = 1.0, cfg.diffusion.discount = 1.0;
  cfg.safety.condition = "cbf_return", cfg.safety.cbf_label = "cost", cfg.safety.cost_penalty = 0.5;
  const auto d = costly_dataset();
  auto m = mastars::Model<float>::create(cfg, 2, 1, 1);
  m.fit_normalizers(d);
  const auto w = mastars::diffusion_windows(m, d);
  // Padded windows start at steps 0..3 of each episode: 8 windows, condition [8, 2, 2].
  REQUIRE(w.condition.shape() == Shape{8, 2, 2});
  for (index_t k = 0; k < 8; ++k) {
    const index_t e = k / 4, s = k % 4;
    for (index_t a = 0; a < 2; ++a) {
      // Window (s, s + 1) holds o_3 of agent 1 in episode 0 (dangerous) when s = 2 or 3.
      const bool dangerous = e == 0 && a == 1 && (s == 2 || s == 3);
      CHECK(w.condition(k, a, 0) == (dangerous ? 0.0f : 1.0f));
      // Return-to-go from s to the end (5 - s rewards of 1), minus r_p = 0.5 for the cost at step 2.
      const double penalty = (e == 0 && a == 1 && s <= 2) ? 0.5 : 0.0;
      CHECK(w.condition(k, a, 1) == doctest::Approx(5.0 - s - penalty));
    }
  }
  // The default "barrier" label needs the trained CBF.
  m.config.safety.cbf_label = "barrier";
  CHECK_THROWS_WITH_AS(mastars::diffusion_windows(m, d), doctest::Contains("CBF trained first"), ConfigError);
  CHECK(m.net.trunk().config().condition_dim == 2);
}

TEST_CASE("planning: the expectile return condition is the window's penalised rewards plus V_r at its last step (eqs. 13-16)") {
  auto cfg = mastars::Config{};
  cfg.diffusion.horizon = 4, cfg.diffusion.dim = 16, cfg.diffusion.dim_mults = {1, 2}, cfg.diffusion.groups = 4;
  cfg.diffusion.kernel_size = 3, cfg.diffusion.returns_scale = 2.0, cfg.diffusion.discount = 0.9;
  cfg.safety.cost_penalty = 0.5, cfg.safety.return_value = "expectile", cfg.safety.expectile_steps = 10000;
  cfg.safety.expectile_hidden = 16;
  const auto d = costly_dataset();
  auto m = mastars::Model<float>::create(cfg, 2, 1, 1);
  m.fit_normalizers(d);
  CHECK_THROWS_WITH_AS(mastars::diffusion_windows(m, d), doctest::Contains("needs V_r trained first"), ConfigError);
  const auto r = mastars::train_return_value(m, d);
  CHECK(r["transitions"] == 20);
  REQUIRE(m.has_return_value());
  const auto w = mastars::diffusion_windows(m, d);
  // The windows' origins, as the model cuts them.
  data::WindowOptions wo;
  wo.horizon = 4, wo.pad = true, wo.discount = 0.9, wo.returns_scale = 2.0;
  const auto n = m.normalized(d);
  const auto cut = data::make_windows(n, wo);
  REQUIRE(w.condition.shape() == Shape{cut.origin.dim(0), 2});
  // R = sum_{j < 3} 0.9^j r~_{s+j} / 2 (inside the episode) + 0.9^3 V_r(o_{s+3}) when s + 3 < 5;
  // r~ = 1 - 0.5 at agent 1's cost (episode 0, step 2).
  index_t bootstrapped = 0;
  for (index_t k = 0; k < cut.origin.dim(0); ++k) {
    const auto e = static_cast<index_t>(cut.origin(k, 0)), s = static_cast<index_t>(cut.origin(k, 1));
    for (index_t a = 0; a < 2; ++a) {
      const auto reward = [&](index_t t) { return 1.0 - ((e == 0 && a == 1 && t == 2) ? 0.5 : 0.0); };
      double expect = 0, g = 1;
      for (index_t j = 0; j < 3 && s + j < 5; ++j, g *= 0.9) expect += g * reward(s + j) / 2.0;
      if (s + 3 < 5) {
        expect += 0.729 * m.return_value.values(Tensor<float>({1, 1}, {n.observations(e, s + 3, a, 0)}))[0];
        ++bootstrapped;
      }
      CHECK(w.condition(k, a) == doctest::Approx(expect).epsilon(1e-5));
    }
  }
  CHECK(bootstrapped > 0);
  // V_r learns the discounted penalised return in condition units: from step 4 (the last, terminal) it is
  // the last reward alone, 0.5; from step 0 about (1 - 0.9^5) / (1 - 0.9) / 2 = 2.05.
  const float v4 = m.return_value.values(Tensor<float>({1, 1}, {n.observations(1, 4, 0, 0)}))[0];
  const float v0 = m.return_value.values(Tensor<float>({1, 1}, {n.observations(1, 0, 0, 0)}))[0];
  MESSAGE("V_r at steps 0 and 4 of episode 1: ", v0, ", ", v4);
  CHECK(std::abs(v0 - 2.05) < 0.25);  // an untrained V_r is near 0 at both
  CHECK(std::abs(v4 - 0.5) < 0.3);
  // The model directory keeps V_r.
  const auto dir = std::filesystem::temp_directory_path() / "coordiff_test_expectile_model";
  m.save(dir);
  const auto back = mastars::Model<float>::load(dir);
  const Tensor<float> probe({3, 1}, {-0.5f, 0.0f, 0.5f});
  CHECK(back.return_value.values(probe).storage() == m.return_value.values(probe).storage());
  std::filesystem::remove_all(dir);
}

TEST_CASE("planning: the safety config reads, writes and refuses bad values") {
  mastars::Config c;
  c.safety.condition = "cbf_return", c.safety.cost_penalty = 0.25, c.safety.cbf_steps = 10;
  const auto back = mastars::config_from_json(mastars::to_json(c));
  CHECK(back.safety.condition == "cbf_return");
  CHECK(back.safety.cost_penalty == 0.25);
  CHECK(back.safety.cbf_steps == 10);
  auto j = mastars::to_json(c);
  j["safety"]["condition"] = "cbf";
  CHECK_THROWS_WITH_AS(mastars::config_from_json(j), doctest::Contains("safety.condition"), ConfigError);
  j = mastars::to_json(c);
  j["safety"]["margins"] = 0.1;
  CHECK_THROWS_WITH_AS(mastars::config_from_json(j), doctest::Contains("unknown key 'margins'"), ConfigError);
  // A missing section keeps its defaults, whichever sections come before it.
  const auto partial = mastars::config_from_json({{"auxiliary", {{"hidden", 32}}}, {"safety", {{"condition", "cbf_return"}}}});
  CHECK(partial.auxiliary.hidden == 32);
  CHECK(partial.augment.num == mastars::AugmentConfig{}.num);
  CHECK(partial.safety.conditions_on_cbf());
  j = mastars::to_json(c);
  j["safety"]["condition"] = 3;
  CHECK_THROWS_WITH_AS(mastars::config_from_json(j), doctest::Contains("expected a string"), ConfigError);
  // The expectile return condition and safe MASTARS's filter switch round-trip; bad values are named.
  c.safety.return_value = "expectile", c.safety.expectile_tau = 0.9, c.augment.cbf_filter = true;
  const auto again = mastars::config_from_json(mastars::to_json(c));
  CHECK(again.safety.expectile_return());
  CHECK(again.safety.expectile_tau == 0.9);
  CHECK(again.augment.cbf_filter);
  j = mastars::to_json(c);
  j["safety"]["return_value"] = "q";
  CHECK_THROWS_WITH_AS(mastars::config_from_json(j), doctest::Contains("safety.return_value must be"), ConfigError);
  j = mastars::to_json(c);
  j["safety"]["expectile_tau"] = 1.0;
  CHECK_THROWS_WITH_AS(mastars::config_from_json(j), doctest::Contains("expectile_tau must be in (0, 1)"), ConfigError);
  j = mastars::to_json(c);
  j["augment"]["cbf_filter"] = 1;
  CHECK_THROWS_WITH_AS(mastars::config_from_json(j), doctest::Contains("expected true or false"), ConfigError);
}

TEST_CASE("planning: chained guidance applies the second guidance to the first one's prediction") {
  // A denoiser predicting the clean sample 2x on the conditional path and x on the null path.
  auto den = denoiser::from_function<float>([](const Tensor<float>& x, const Tensor<float>&, const Condition<float>& c) {
    Tensor<float> y = x;
    if (c.keep.empty() || c.keep[0] != 0.0f)
      for (index_t i = 0; i < y.size(); ++i) y[i] *= 2.0f;
    return y;
  });
  Rng rng(3);
  const Tensor<float> x = rng.normal<float>({2, 3, 2, 1});
  Condition<float> c;
  c.value = Tensor<float>({2, 2}, 1.0f);
  const guidance::StepInfo info{5, 0.64, denoiser::Prediction::Sample};
  const Tensor<float> k({2}, 5.0f);
  const auto cfg_only = guidance::ClassifierFree{1.5}.model_output(den, x, k, c, info);
  const double s = 0.3;
  const auto chained = guidance::chain(guidance::ClassifierFree{1.5}, guidance::cost_gradient(Quadratic{}, s)).model_output(den, x, k, c, info);
  for (index_t i = 0; i < x.size(); ++i) {
    CHECK(cfg_only[i] == doctest::Approx(2.5 * x[i]).epsilon(1e-5));        // x + 1.5 (2x - x)
    CHECK(chained[i] == doctest::Approx(2.5 * x[i] * (1 - s)).epsilon(1e-4));  // x0^ - s grad c(x0^)
  }
}

TEST_CASE("planning: the closed-loop diffusion planner acts reproducibly, and run_closed_loop sums rewards and costs") {
  env::DoubleIntegratorConfig di;
  di.agents = 3, di.obstacles = 2, di.episode_length = 6;
  env::DoubleIntegratorCollectOptions co;
  co.parallel = 4;
  const auto d = env::collect_double_integrator(di, 4, 7, co);
  auto m = testing::toy_safe_model(d, 8, 5);
  const mastars::Config cfg = m.config;
  REQUIRE(m.has_cbf());
  planning::PlanOptions o;
  o.sampling_steps = 3, o.candidates = 2, o.seed = 5;
  planning::DiffusionPlanner<planning::CbfGuidance, filter::CbfSafe<planning::Barrier>> planner(m, o);
  env::DoubleIntegratorEnv e(2, di);
  e.reset(11);
  const Tensor<double> obs = e.observations();
  const auto a1 = planner(obs, 0), a2 = planner(obs, 0), a3 = planner(obs, 1);
  REQUIRE(a1.shape() == Shape{2, 3, 2});
  require_finite(a1, "planner actions");
  CHECK(a1.storage() == a2.storage());  // same seed and step: the same plan
  CHECK(a1.storage() != a3.storage());  // another step draws other noise
  CHECK(planner.last_accepted() <= 2);
  CHECK_THROWS_AS(planner(Tensor<double>({2, 3, 5}), 0), ShapeError);

  // model-report's CBF rates: the real one is the share of the picked windows whose "barrier" label is 1.
  mastars::DiagnosticsOptions dopt;
  dopt.windows = 6, dopt.levels = {0}, dopt.ddim_steps = 2;
  const auto report = mastars::diagnose(m, d, dopt)["generation"];
  const auto windows = mastars::diffusion_windows(m, d);
  const auto pick = mastars::detail::pick_windows(windows.size(), dopt.windows, dopt.seed);
  double labelled = 0;
  for (index_t k : pick)
    for (index_t a = 0; a < di.agents; ++a) labelled += windows.condition(k, a, 0) / double(pick.size() * di.agents);
  CHECK(std::abs(report["cbf_satisfied_real"].get<double>() - labelled) < 1e-12);
  // h >= 0 throughout is part of eq. 8's condition: a window that satisfies eq. 8 has it.
  CHECK(report["cbf_h_nonnegative_real"].get<double>() >= report["cbf_satisfied_real"].get<double>());
  for (const char* key : {"cbf_satisfied_generated", "cbf_satisfied_generated_condition_0", "cbf_h_nonnegative_generated",
                          "cbf_h_nonnegative_generated_condition_0"}) {
    REQUIRE_MESSAGE(report.contains(key), key);
    CHECK(report[key].get<double>() >= 0);
    CHECK(report[key].get<double>() <= 1);
  }
  // With the dataset's environment named, also the share of agent windows without a dangerous step: for the
  // real windows, the "cost" label of their recorded costs (the CDF normaliser's round trip may flip a step
  // that lies on the boundary; none does here).
  auto named = d;
  named.meta = R"({"env": "double-integrator", "agents": 3, "obstacles": 2})";
  const auto with_costs = mastars::diagnose(m, named, dopt)["generation"];
  data::WindowOptions wo;
  wo.horizon = cfg.diffusion.horizon, wo.pad = true;
  const auto cut = data::make_windows(d, wo);  // the diffusion windows' order, with their origins
  REQUIRE(cut.origin.dim(0) == windows.size());
  double cost_free = 0;
  for (index_t k : pick)
    for (index_t a = 0; a < di.agents; ++a) {
      const index_t e = static_cast<index_t>(cut.origin(k, 0)), s0 = static_cast<index_t>(cut.origin(k, 1));
      bool ok = true;
      for (index_t t = std::max<index_t>(s0, 1); t < std::min(s0 + cfg.diffusion.horizon, di.episode_length); ++t)
        ok = ok && d.costs(e, t - 1, a) == 0.0f;
      cost_free += ok ? 1.0 / double(pick.size() * di.agents) : 0.0;
    }
  MESSAGE("real windows without a dangerous step: ", cost_free);
  CHECK(std::abs(with_costs["safe_windows_real"].get<double>() - cost_free) < 1e-12);
  // Step 0 is the real first step pasted into every generated window (HistoryPrefix): its danger is the real one.
  const auto& real_steps = with_costs["dangerous_by_step_real"];
  REQUIRE(real_steps.size() == std::size_t(cfg.diffusion.horizon));
  CHECK(with_costs["dangerous_by_step_generated"][0].get<double>() == real_steps[0].get<double>());
  for (const char* key : {"safe_windows_generated", "safe_windows_generated_condition_0"}) {
    REQUIRE_MESSAGE(with_costs.contains(key), key);
    CHECK(with_costs[key].get<double>() >= 0);
    CHECK(with_costs[key].get<double>() <= 1);
  }
  CHECK(!report.contains("safe_windows_real"));  // no environment in the meta: costs cannot be recomputed
  // Without the CBF the guided or filtered planners refuse to start.
  auto untrained = mastars::Model<float>::create(cfg, di.agents, di.obs_dim(), 2);
  untrained.fit_normalizers(d);
  CHECK_THROWS_WITH_AS((planning::DiffusionPlanner<planning::PlainGuidance, filter::CbfSafe<planning::Barrier>>(untrained, o)),
                       doctest::Contains("need the model's CBF"), ConfigError);

  // run_closed_loop with the nominal controller equals stepping by hand.
  const auto gains = co.gains;
  env::DoubleIntegratorEnv e1(2, di), e2(2, di);
  e1.reset(3), e2.reset(3);
  const auto s = planning::run_closed_loop(e1, [&](const Tensor<double>&, index_t) { return env::nominal_actions(e1, gains); },
                                           di.episode_length);
  std::vector<double> ret(2, 0.0), cost(2, 0.0);
  for (index_t t = 0; t < di.episode_length; ++t) {
    const auto r = e2.step(env::nominal_actions(e2, gains));
    for (index_t b = 0; b < 2; ++b)
      for (index_t i = 0; i < 3; ++i) ret[static_cast<std::size_t>(b)] += r.reward(b, i) / 3.0, cost[static_cast<std::size_t>(b)] += r.cost(b, i);
  }
  CHECK(s.steps == di.episode_length);
  for (std::size_t b = 0; b < 2; ++b) {
    CHECK(s.returns[b] == doctest::Approx(ret[b]));
    CHECK(s.costs[b] == doctest::Approx(cost[b]));
  }
}

TEST_CASE("safe MASTARS: the CBF filter keeps exactly the dynamics-filter windows that satisfy the CBF, costs recomputed") {
  // A tiny (CBF, return)-conditioned model on SafeSpread noisy data; untrained networks suffice: the test
  // is about which windows the composed filter keeps and what the augmented data carry.
  env::mpe::SafeSpreadBehaviourOptions bo;
  auto d = env::mpe::collect_episodes<env::mpe::SafeSpreadEnv>(6, 4, env::mpe::safe_spread_policy(bo, 4), 6);
  d.meta = R"({"env": "safe-spread", "quality": "noisy"})";
  mastars::Config cfg;
  cfg.diffusion.horizon = 4, cfg.diffusion.dim = 16, cfg.diffusion.dim_mults = {1, 2}, cfg.diffusion.groups = 4;
  cfg.diffusion.kernel_size = 3, cfg.diffusion.diffusion_steps = 10, cfg.diffusion.returns_scale = 500;
  cfg.auxiliary.hidden = 16;
  cfg.safety.condition = "cbf_return", cfg.safety.cbf_hidden = 8, cfg.safety.cbf_steps = 20;
  cfg.augment.num = 24, cfg.augment.batch_size = 8, cfg.augment.dire_steps = 2, cfg.augment.epsilon = 1e9;
  auto m = mastars::Model<float>::create(cfg, 3, 22, 2);
  m.fit_normalizers(d);
  mastars::train_barrier(m, d);
  REQUIRE(m.has_cbf());
  const auto plain = mastars::augment(m, d, mastars::Method::Sg);
  m.config.augment.cbf_filter = true;
  const auto safe = mastars::augment(m, d, mastars::Method::Sg);
  // The same windows are generated (the filter does not steer sampling); the safe run keeps those the
  // plain run kept and the CBF filter passes on its own.
  REQUIRE(plain.generated.storage() == safe.generated.storage());
  const auto cbf = filter::cbf_safe(m.barrier, m.cbf_options());
  const auto verdict = cbf.check(m.obs_norm.normalize(safe.generated), diffusion::Batch<float>{});
  index_t kept = 0, cbf_only = 0;
  for (std::size_t k = 0; k < safe.accepted.size(); ++k) {
    CHECK(safe.accepted[k] == (plain.accepted[k] && verdict.keep[k]));
    kept += safe.accepted[k];
    cbf_only += plain.accepted[k] && !verdict.keep[k];
  }
  CHECK(safe.report["windows_accepted"] == kept);
  CHECK(safe.report["rejected"]["by_cbf_only"] == cbf_only);
  CHECK(safe.report["cbf_filter"] == true);
  MESSAGE("safe MASTARS on an untrained model: ", kept, " of 24 kept, ", cbf_only, " rejected by the CBF alone");
  {  // A CBF that is 1 everywhere (h = 1, dh/dt = 0) passes every window: the safe run keeps what the plain one does.
    auto params = nn::parameters_of<float>(m.barrier);
    for (auto& p : params) p.param->value.set_zero();
    REQUIRE(params.back().name.find("bias") != std::string::npos);
    params.back().param->value[0] = 1.0f;
    const auto all = mastars::augment(m, d, mastars::Method::Sg);
    CHECK(all.accepted == plain.accepted);
    CHECK(all.report["rejected"]["by_cbf_only"] == 0);
  }
  // Costs: the original episodes' as they were, the generated windows' recomputed from their observations.
  const auto& o = plain.dataset;
  REQUIRE(o.costs.shape() == Shape{o.episodes(), 25, 3});
  for (index_t k = 0; k < d.costs.size(); ++k) CHECK(o.costs[k] == d.costs[k]);
  std::vector<index_t> acc;
  for (std::size_t k = 0; k < plain.accepted.size(); ++k)
    if (plain.accepted[k]) acc.push_back(static_cast<index_t>(k));
  REQUIRE(!acc.empty());
  const Tensor<float> wc = env::mpe::safe_spread_costs_from_observations(plain.generated);
  for (index_t s = 0; s < 3; ++s)
    for (index_t i = 0; i < 3; ++i) CHECK(o.costs(6, s, i) == wc(acc[0], s + 1, i));
  for (const char* key : {"original_picked", "generated_all", "generated_accepted"})
    CHECK_MESSAGE(plain.report["cost"].contains(key), key);
  // Without its CBF the model refuses the safe filter.
  auto untrained = mastars::Model<float>::create(cfg, 3, 22, 2);
  untrained.fit_normalizers(d);
  untrained.config.augment.cbf_filter = true;
  CHECK_THROWS_WITH_AS(mastars::augment(untrained, d, mastars::Method::Lov), doctest::Contains("needs the model's CBF"),
                       ConfigError);
}
