// The MASTARS pipeline pieces: strict JSON configs, model directories that round-trip, and training on a
// small MPE dataset.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "coordiff/env/mpe.hpp"
#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/mastars/config.hpp"
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
