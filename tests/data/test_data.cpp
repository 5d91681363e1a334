// Offline datasets (npz layout, validation, atomic save), MADiff-style training windows with
// reward-to-go conditions, and the Limits / CDF normalisers against hand-computed values.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coordiff/data/dataset.hpp"
#include "coordiff/data/normalizer.hpp"
#include "coordiff/data/windows.hpp"
#include "support/scratch.hpp"

using namespace coordiff;
namespace fs = std::filesystem;

namespace {
/// E = 2 episodes, T = 4 steps, A = 2 agents, O = 1: observation = 10 e + t + 0.5 a; reward = t + 1 for
/// agent 0 and 1 for agent 1; episode 1 ends at step 2 (terminal).
data::OfflineDataset<float> small_dataset() {
  data::OfflineDataset<float> d;
  d.observations = Tensor<float>({2, 4, 2, 1});
  d.actions = Tensor<float>({2, 4, 2, 3}, 0.25f);
  d.rewards = Tensor<float>({2, 4, 2});
  d.terminals = Tensor<float>({2, 4});
  for (index_t e = 0; e < 2; ++e)
    for (index_t t = 0; t < 4; ++t)
      for (index_t a = 0; a < 2; ++a) {
        d.observations(e, t, a, 0) = static_cast<float>(10 * e + t) + 0.5f * static_cast<float>(a);
        d.rewards(e, t, a) = a == 0 ? static_cast<float>(t + 1) : 1.0f;
      }
  d.terminals(1, 2) = 1;
  d.meta = R"({"env": "toy", "seed": 3})";
  return d;
}
}  // namespace

TEST_CASE("OfflineDataset: save and load round trip, optional arrays and meta") {
  const auto dir = testing::scratch_dir("dataset");
  auto d = small_dataset();
  d.costs = Tensor<float>({2, 4, 2}, 0.5f);
  d.save(dir / "d.npz");
  const auto r = data::OfflineDataset<float>::load(dir / "d.npz");
  CHECK(r.observations.storage() == d.observations.storage());
  CHECK(r.actions.shape() == Shape{2, 4, 2, 3});
  CHECK(r.rewards.storage() == d.rewards.storage());
  CHECK(r.costs.storage() == d.costs.storage());
  CHECK(r.states.empty());
  CHECK(r.meta == d.meta);
  CHECK(r.episode_length(0) == 4);
  CHECK(r.episode_length(1) == 3);
}

TEST_CASE("OfflineDataset: missing arrays, wrong shapes, NaN and bad terminals are named, and nothing is written") {
  const auto dir = testing::scratch_dir("dataset_bad");
  auto d = small_dataset();
  io::NpzWriter().add("observations", d.observations).add("rewards", d.rewards).add("terminals", d.terminals).save(dir / "no_actions.npz");
  const auto msg = testing::message_of<FormatError>([&] { data::OfflineDataset<float>::load(dir / "no_actions.npz"); });
  CHECK(msg.find("missing array 'actions'") != std::string::npos);
  CHECK(msg.find("no_actions.npz") != std::string::npos);

  auto bad = d;
  bad.rewards = Tensor<float>({2, 4, 3});
  CHECK_THROWS_AS(bad.save(dir / "x.npz"), ShapeError);
  bad = d;
  bad.observations(1, 2, 0, 0) = std::nanf("");
  CHECK(testing::message_of<NumericError>([&] { bad.save(dir / "x.npz"); }).find("observations") != std::string::npos);
  bad = d;
  bad.terminals(0, 1) = 0.5f;
  CHECK(testing::message_of<NumericError>([&] { bad.validate(); }).find("episode 0 step 1") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "x.npz"));  // a refused save leaves no file

  d.save(dir / "good.npz");  // a truncated file is an error, not a crash
  const auto size = fs::file_size(dir / "good.npz");
  fs::resize_file(dir / "good.npz", size / 2);
  CHECK_THROWS_AS(data::OfflineDataset<float>::load(dir / "good.npz"), IoError);
}

TEST_CASE("make_windows: padded windows repeat the last step, returns are discounted rewards-to-go") {
  const auto d = small_dataset();
  data::WindowOptions o;
  o.horizon = 3;
  o.discount = 0.5;
  o.returns_scale = 2.0;
  const auto w = data::make_windows(d, o);
  // Episode 0 (length 4): starts 0, 1, 2; episode 1 (length 3): starts 0, 1.
  REQUIRE(w.observations.shape() == Shape{5, 3, 2, 1});
  const std::vector<std::pair<int, int>> origin{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}};
  for (index_t n = 0; n < 5; ++n) {
    CHECK(w.origin(n, 0) == origin[static_cast<std::size_t>(n)].first);
    CHECK(w.origin(n, 1) == origin[static_cast<std::size_t>(n)].second);
  }
  // Window (0, 2): steps 2, 3, then 3 again (padding).
  CHECK(w.observations(2, 0, 1, 0) == 2.5f);
  CHECK(w.observations(2, 1, 1, 0) == 3.5f);
  CHECK(w.observations(2, 2, 1, 0) == 3.5f);
  // Window (1, 1) of the terminated episode: steps 1, 2, 2.
  CHECK(w.observations(4, 2, 0, 0) == 12.0f);
  // Agent 0, window (0, 1): (2 + 0.5 * 3 + 0.25 * 4) / 2 = 2.25; agent 1: (1 + 0.5 + 0.25) / 2.
  CHECK(w.returns(1, 0) == doctest::Approx(2.25));
  CHECK(w.returns(1, 1) == doctest::Approx(0.875));
  // Episode 1 ends at step 2: window (1, 0) sums rewards of steps 0..2 only.
  CHECK(w.returns(3, 0) == doctest::Approx((1 + 0.5 * 2 + 0.25 * 3) / 2.0));

  o.pad = false;
  const auto u = data::make_windows(d, o);
  CHECK(u.observations.dim(0) == 3);  // episode 0: starts 0, 1; episode 1: start 0
  o.horizon = 5;
  CHECK_THROWS_AS(data::make_windows(d, o), ConfigError);
  o.horizon = 0;
  CHECK_THROWS_AS(data::make_windows(d, o), ConfigError);
}

TEST_CASE("LimitsNormalizer: [min, max] to [-1, 1] per feature, pooled over leading axes") {
  const Tensor<double> x({2, 2, 2}, {0.0, 5.0, 2.0, 5.0, 4.0, 5.0, 1.0, 5.0});  // feature 1 is constant
  const auto n = data::LimitsNormalizer::fit(x);
  const auto y = n.normalize(x);
  CHECK(y[0] == doctest::Approx(-1.0));
  CHECK(y[2] == doctest::Approx(0.0));
  CHECK(y[4] == doctest::Approx(1.0));
  CHECK(y[1] == 5.0);  // constant feature passes through
  const auto back = n.unnormalize(y);
  for (index_t i = 0; i < x.size(); ++i) CHECK(back[i] == doctest::Approx(x[i]));
  CHECK_THROWS_AS(n.normalize(Tensor<double>({2, 3})), ShapeError);
}

TEST_CASE("CdfNormalizer: the empirical CDF with linear interpolation, as MADiff's, and its inverse") {
  // Feature 0 values {1, 2, 2, 4}: distinct q = 1, 2, 4 with CDF 0.25, 0.75, 1.
  const Tensor<float> x({2, 2, 2}, {1.f, 7.f, 2.f, 7.f, 2.f, 7.f, 4.f, 7.f});
  const auto c = data::CdfNormalizer::fit(x);
  CHECK(c.features() == 2);
  CHECK(c.support(0) == 3);
  CHECK(c.support(1) == 1);
  const Tensor<float> probe({5, 2}, {1.f, 7.f, 3.f, 7.f, 10.f, 7.f, 0.f, 7.f, 2.f, 3.f});
  const auto y = c.normalize(probe);
  CHECK(y[0] == doctest::Approx(-0.5));   // 2 * 0.25 - 1
  CHECK(y[2] == doctest::Approx(0.75));   // halfway between 0.75 and 1
  CHECK(y[4] == doctest::Approx(1.0));    // clipped to the largest value
  CHECK(y[6] == doctest::Approx(-0.5));   // clipped to the smallest value
  CHECK(y[8] == doctest::Approx(0.5));
  CHECK(y[9] == 3.f);                     // constant feature passes through
  const auto back = c.unnormalize(y);
  CHECK(back[0] == doctest::Approx(1.0));
  CHECK(back[2] == doctest::Approx(3.0));
  CHECK(c.unnormalize(Tensor<float>({1, 2}, {-1.f, 0.f}))[0] == doctest::Approx(1.0));  // below F(q_min): clipped
  // Stored in an npz and read back.
  io::NpzWriter w;
  c.save(w, "obs_norm.");
  const auto bytes = w.to_bytes();
  const auto f = io::NpzFile::from_bytes(bytes.data(), bytes.size(), "norm.npz");
  const auto r = data::CdfNormalizer::load(f, "obs_norm.");
  CHECK(r.normalize(probe).storage() == y.storage());
  CHECK_THROWS_AS(data::CdfNormalizer::load(f, "missing."), FormatError);
  CHECK_THROWS_AS(data::CdfNormalizer::fit(Tensor<float>({2, 1}, {1.f, std::nanf("")})), NumericError);
}
