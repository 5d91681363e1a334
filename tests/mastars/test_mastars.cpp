// The MASTARS pipeline pieces: strict JSON configs, model directories that round-trip, and training on a
// small MPE dataset.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "coordiff/env/mpe.hpp"
#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/mastars/augment.hpp"
#include "coordiff/mastars/config.hpp"
#include "coordiff/mastars/diagnostics.hpp"
#include "coordiff/mastars/model.hpp"
#include "coordiff/mastars/training.hpp"

using namespace coordiff;

namespace {
/// A config small enough for unit tests: dim 16, two levels, few steps.
mastars::Config tiny_config() {
  mastars::Config c;
  auto& d = c.diffusion;
  d.dim = 16, d.dim_mults = {1, 2}, d.kernel_size = 3, d.groups = 4, d.diffusion_steps = 10, d.train_steps = 40;
  d.batch_size = 8, d.grad_accumulate = 1, d.ema_start = 0, d.ema_every = 1, d.seed = 3;
  auto& a = c.auxiliary;
  a.hidden = 32, a.steps = 60, a.batch_size = 64;
  c.augment.num = 6, c.augment.batch_size = 4, c.augment.dire_steps = 5;
  return c;
}

std::string error_of(const nlohmann::json& j) {
  try {
    (void)mastars::config_from_json(j, "cfg.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("mastars config: defaults, JSON round trip, and strict reading naming the bad key") {
  const mastars::Config d;
  CHECK(d.diffusion.horizon == 8);
  CHECK(d.diffusion.diffusion_steps == 200);
  CHECK(d.diffusion.guidance_weight == 1.2);
  CHECK(d.augment.epsilon == 0.01);
  CHECK(d.auxiliary.hidden == 256);
  const mastars::Config t = tiny_config();
  const mastars::Config back = mastars::config_from_json(mastars::to_json(t));
  CHECK(mastars::to_json(back) == mastars::to_json(t));
  // A partial file keeps the defaults of what it does not name.
  const auto partial = mastars::config_from_json(nlohmann::json{{"augment", {{"num", 50}}}});
  CHECK(partial.augment.num == 50);
  CHECK(partial.diffusion.dim == 128);
  CHECK(error_of({{"diffusion", {{"horizn", 8}}}}).find("cfg.json.diffusion: unknown key 'horizn'") != std::string::npos);
  CHECK(error_of({{"sampling", {}}}).find("unknown key 'sampling'") != std::string::npos);
  CHECK(error_of({{"augment", {{"num", "many"}}}}).find("cfg.json.augment.num: expected an integer") != std::string::npos);
  CHECK(error_of({{"augment", {{"num", 2.5}}}}).find("augment.num: expected an integer") != std::string::npos);
  CHECK(error_of({{"diffusion", {{"dim_mults", {1, "x"}}}}}).find("dim_mults: expected a list of integers") !=
        std::string::npos);
  CHECK(error_of({{"augment", {{"epsilon", -1.0}}}}).find("augment settings out of range") != std::string::npos);
}

TEST_CASE("mastars: training on a small spread dataset, and a model directory that round-trips exactly") {
  const auto d = env::mpe::collect_episodes<env::mpe::SpreadEnv>(6, 1, env::mpe::uniform_random_policy(1), 6);
  auto m = mastars::Model<float>::create(tiny_config(), 3, 18, 2);
  const auto diff = mastars::train_diffusion(m, d);
  CHECK(diff["windows"] == 6 * 24);
  CHECK(diff["logged_loss"].size() >= 2);
  const auto aux = mastars::train_auxiliary(m, d);
  CHECK(aux["transitions"] == 6 * 25);
  CHECK(aux["inverse_dynamics"]["heldout_rows"] == 45);  // (transition, agent) rows: 10 % of 450
  CHECK(aux["value"]["steps"] == 60);
  // Normalised windows lie in [-1, 1].
  const auto windows = mastars::diffusion_windows(m, d);
  const auto [lo, hi] = std::minmax_element(windows.x.begin(), windows.x.end());
  CHECK(*lo >= -1.0f);
  CHECK(*hi <= 1.0f);

  const auto dir = std::filesystem::temp_directory_path() / "coordiff_test_mastars_model";
  std::filesystem::remove_all(dir);
  m.save(dir);
  auto loaded = mastars::Model<float>::load(dir);
  CHECK(loaded.report["auxiliary"]["transitions"] == 6 * 25);
  const Tensor<float> x = Tensor<float>(windows.x).reshape({-1, 8, 3, 18});
  Tensor<float> some({2, 8, 3, 18});
  std::copy(x.data(), x.data() + some.size(), some.data());
  const Tensor<float> k({2}, 4.0f);
  Condition<float> c;
  c.value = Tensor<float>({2, 3}, 0.7f);
  CHECK(m.net(some, k, c).storage() == loaded.net(some, k, c).storage());
  CHECK(m.value.values(some).storage() == loaded.value.values(some).storage());
  const Tensor<float> acts = m.inverse.actions(some);
  CHECK(acts.storage() == loaded.inverse.actions(some).storage());
  CHECK(m.transition.errors(some, acts).storage() == loaded.transition.errors(some, acts).storage());
  CHECK(m.reward.rewards(some, acts).storage() == loaded.reward.rewards(some, acts).storage());

  // A missing file or a dataset of another shape is refused with a clear message.
  std::filesystem::remove(dir / "auxiliary.npz");
  CHECK_THROWS_AS(mastars::Model<float>::load(dir), IoError);
  const auto tag = env::mpe::collect_episodes<env::mpe::TagEnv>(2, 1, env::mpe::uniform_random_policy(1), 2);
  CHECK_THROWS_WITH_AS(m.fit_normalizers(tag), doctest::Contains("the dataset has 3, 16, 2"), ShapeError);
  std::filesystem::remove_all(dir);
}

namespace {
/// A tiny trained model and its dataset, shared by the augmentation tests.
struct Trained {
  data::OfflineDataset<float> data;
  mastars::Model<float> model;
  Trained() : data(env::mpe::collect_episodes<env::mpe::SpreadEnv>(6, 1, env::mpe::uniform_random_policy(1), 6)) {
    data.meta = R"({"env": "spread", "quality": "random"})";
    model = mastars::Model<float>::create(tiny_config(), 3, 18, 2);
    (void)mastars::train_diffusion(model, data);
    (void)mastars::train_auxiliary(model, data);
  }
};
Trained& trained() {
  static Trained t;
  return t;
}
}  // namespace

TEST_CASE("augment (LOV): known entries stay bit-identical, only entries after each agent's subgoal change") {
  auto& t = trained();
  t.model.config.augment.epsilon = 1e9;  // accept everything: this test is about what is regenerated
  const auto a = mastars::augment(t.model, t.data, mastars::Method::Lov);
  const index_t N = a.original.dim(0), H = 8, A = 3;
  REQUIRE(N == 6);
  const Tensor<float> values = t.model.value.values(t.model.obs_norm.normalize(a.original));
  index_t changed = 0, after_subgoal = 0;
  for (index_t n = 0; n < N; ++n)
    for (index_t i = 0; i < A; ++i) {
      index_t g = 0;  // argmax_t V(o^i_t), first maximum
      for (index_t s = 1; s < H; ++s)
        if (values(n, s, i) > values(n, g, i)) g = s;
      for (index_t s = 0; s < H; ++s)
        for (index_t k = 0; k < 18; ++k) {
          const bool same = a.generated(n, s, i, k) == a.original(n, s, i, k);
          if (s <= g) CHECK(same);
          else {
            ++after_subgoal;
            changed += !same;
          }
        }
    }
  MESSAGE("entries after the subgoal: ", after_subgoal, ", changed: ", changed);
  // Everything after the subgoal is new except the four silent channels, which stay at their constant 0.
  CHECK(changed == doctest::Approx(after_subgoal * 14.0 / 18.0).epsilon(0.01));
  CHECK(a.report["acceptance_rate"] == 1.0);
  CHECK(a.report["generated_fraction"].get<double>() ==
        doctest::Approx(static_cast<double>(after_subgoal) / static_cast<double>(N * H * A * 18)));
}

TEST_CASE("augment: the output dataset, its report, reproducibility, and the filter threshold at both extremes") {
  auto& t = trained();
  t.model.config.augment.epsilon = 1e9;
  const auto a = mastars::augment(t.model, t.data, mastars::Method::Sg);
  const auto b = mastars::augment(t.model, t.data, mastars::Method::Sg);
  CHECK(a.dataset.observations.storage() == b.dataset.observations.storage());
  CHECK(a.dataset.actions.storage() == b.dataset.actions.storage());
  const auto& d = a.dataset;
  REQUIRE(d.episodes() == 6 + 6);
  CHECK(d.episode_length(0) == 25);
  CHECK(d.episode_length(6) == 7);  // a window of 8 observations: 7 transitions
  CHECK(d.timeouts(6, 6) == 1.0f);
  CHECK(d.observations(0, 3, 1, 2) == t.data.observations(0, 3, 1, 2));
  // Generated transitions chain: o'_s = o_{s+1} inside a window.
  for (index_t s = 0; s + 1 < 7; ++s) CHECK(d.next_observations(8, s, 2, 3) == d.observations(8, s + 1, 2, 3));
  for (float v : d.actions) CHECK(std::abs(v) <= 1.0f);
  const auto path = std::filesystem::temp_directory_path() / "coordiff_test_augmented.npz";
  d.save(path);
  const auto back = data::OfflineDataset<float>::load(path);
  CHECK(back.timeouts.storage() == d.timeouts.storage());
  CHECK(back.meta.find("\"generated_windows\":6") != std::string::npos);
  std::filesystem::remove(path);
  const auto& r = a.report;
  for (const char* key : {"acceptance_rate", "generated_fraction", "dire", "collision_rate", "mean_window_return", "filter_score",
                          "seconds"})
    CHECK_MESSAGE(r.contains(key), key);
  CHECK(r["dire"]["original"].get<double>() >= 0);
  CHECK(r["collision_rate"]["distance"] == 0.3);

  t.model.config.augment.epsilon = 1e-12;  // nothing survives: the output is the original data
  const auto none = mastars::augment(t.model, t.data, mastars::Method::Joint);
  CHECK(none.report["windows_accepted"] == 0);
  CHECK(none.dataset.episodes() == 6);
  CHECK(none.report["example_rejections"].size() == 5);
  t.model.config.augment.epsilon = 1e9;
  const auto indep = mastars::augment(t.model, t.data, mastars::Method::Independent);
  CHECK(indep.report["generated_fraction"].get<double>() == doctest::Approx(7.0 / 8.0).epsilon(0.02));
  CHECK_THROWS_AS(mastars::parse_method("sequential"), ConfigError);
}

TEST_CASE("model diagnostics: denoising error by level against no denoising, and generated windows' consistency") {
  auto& t = trained();
  mastars::DiagnosticsOptions o;
  o.windows = 8, o.levels = {0, 5, 9}, o.ddim_steps = 2;
  const auto r = mastars::diagnose(t.model, t.data, o);
  REQUIRE(r["denoising"].size() == 3);
  const schedule::Cosine sch(10);
  for (const auto& row : r["denoising"]) {
    const double ab = sch.alpha_bar(row["level"].get<index_t>());
    CHECK(row["x0_mse_no_denoising"].get<double>() == doctest::Approx((1 - ab) / ab));
    CHECK(row["eps_mse"].get<double>() > 0);
    CHECK(std::isfinite(row["x0_mse"].get<double>()));
  }
  // Real windows go through the normaliser only: their kinematics hold up to its round trip; a barely
  // trained model's windows do not.
  const auto& g = r["generation"];
  CHECK(g["kinematic_residual_real"].get<double>() < 0.05);
  CHECK(g["kinematic_residual_generated"].get<double>() > g["kinematic_residual_real"].get<double>());
  CHECK(g["filter_score_generated"].get<double>() > g["filter_score_real"].get<double>());
  // The residual itself on a constructed window: p moves by 0.1 while dt v = 0.05 -> 0.05 per entry.
  Tensor<float> w({1, 2, 1, 4}, 0.0f);
  w(0, 1, 0, 0) = 0.5f, w(0, 1, 0, 1) = 0.5f, w(0, 1, 0, 2) = 0.1f, w(0, 1, 0, 3) = 0.1f;
  CHECK(mastars::detail::kinematic_residual(w, 0.1) == doctest::Approx(0.05));
  o.levels = {10};
  CHECK_THROWS_AS(mastars::diagnose(t.model, t.data, o), ConfigError);
}
