// Noise schedules against their closed forms and the reference values of diffusers' squaredcos_cap_v2,
// and the timestep plan (strided spacings, RePaint jumps) against the reference walk.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "coordiff/diffusion/timestep_plan.hpp"
#include "coordiff/schedule/cosine.hpp"
#include "coordiff/schedule/from_betas.hpp"
#include "coordiff/schedule/linear.hpp"
#include "coordiff/schedule/schedule.hpp"

using namespace coordiff;
using diffusion::Spacing;
using diffusion::parse_spacing;
using diffusion::StepEvent;
using diffusion::TimestepPlan;

static_assert(schedule::NoiseSchedule<schedule::Cosine>);
static_assert(schedule::NoiseSchedule<schedule::Linear>);
static_assert(schedule::NoiseSchedule<schedule::FromBetas>);

TEST_CASE("schedule::Cosine: matches the closed form abar(k) = f((k+1)/K)/f(0) and diffusers' capped betas") {
  const schedule::Cosine s(200);
  REQUIRE(s.num_steps() == 200);
  auto f = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
    return c * c;
  };
  // Uncapped steps telescope: abar_k = prod (1 - beta_i) = f((k+1)/K) / f(0).
  for (index_t k : {0, 1, 50, 100, 150, 197}) CHECK(s.alpha_bar(k) == doctest::Approx(f((k + 1) / 200.0) / f(0)).epsilon(1e-12));
  // Reference values of diffusers' betas_for_alpha_bar(200) (MADiff's scheduler).
  CHECK(s.beta(0) == doctest::Approx(2.550e-4).epsilon(1e-3));
  CHECK(s.beta(1) == doctest::Approx(3.764e-4).epsilon(1e-3));
  CHECK(s.beta(99) == doctest::Approx(1.553e-2).epsilon(1e-3));
  CHECK(s.beta(198) == doctest::Approx(0.750).epsilon(1e-3));
  CHECK(s.beta(199) == 0.999);  // capped
  CHECK(s.alpha_bar(199) == doctest::Approx(6.07e-8).epsilon(1e-2));
  for (index_t k = 1; k < 200; ++k) CHECK(s.alpha_bar(k) < s.alpha_bar(k - 1));
  CHECK(schedule::alpha_bar_at(s, -1) == 1.0);
}

TEST_CASE("schedule::Linear: betas on a line, abar the running product") {
  const schedule::Linear s(1000);
  CHECK(s.beta(0) == doctest::Approx(1e-4));
  CHECK(s.beta(999) == doctest::Approx(2e-2));
  CHECK(s.beta(500) == doctest::Approx(1e-4 + 500 * (2e-2 - 1e-4) / 999));
  double prod = 1;
  for (index_t k = 0; k < 1000; ++k) {
    prod *= 1 - (1e-4 + k * (2e-2 - 1e-4) / 999);
    if (k % 97 == 0) CHECK(s.alpha_bar(k) == doctest::Approx(prod).epsilon(1e-12));
  }
  // Continuous approximation: log abar_K ~ -K (b0 + b1)/2.
  CHECK(std::log(s.alpha_bar(999)) == doctest::Approx(-1000 * (1e-4 + 2e-2) / 2).epsilon(0.02));
}

TEST_CASE("schedule::FromBetas: a user beta array, and errors for invalid betas") {
  const schedule::FromBetas s(std::vector<double>{0.1, 0.2, 0.5});
  CHECK(s.alpha_bar(0) == doctest::Approx(0.9));
  CHECK(s.alpha_bar(1) == doctest::Approx(0.72));
  CHECK(s.alpha_bar(2) == doctest::Approx(0.36));
  const schedule::FromBetas t(Tensor<float>({2}, {0.25f, 0.5f}));
  CHECK(t.alpha_bar(1) == doctest::Approx(0.375));
  CHECK_THROWS_AS(schedule::FromBetas(std::vector<double>{0.1, 1.0}), ConfigError);
  CHECK_THROWS_AS(schedule::FromBetas(std::vector<double>{0.1, std::nan("")}), ConfigError);
  CHECK_THROWS_AS(schedule::FromBetas(std::vector<double>{}), ConfigError);
  CHECK_THROWS_AS(schedule::FromBetas(Tensor<double>({1, 2}, {0.1, 0.2})), ShapeError);
  CHECK_THROWS_AS(s.alpha_bar(3), ConfigError);
  CHECK_THROWS_AS(schedule::Cosine(0), ConfigError);
}

namespace {
std::vector<index_t> walk(const TimestepPlan& p) {
  std::vector<index_t> w{p.events().front().from};
  for (const StepEvent& e : p.events()) w.push_back(e.to);
  return w;
}
std::vector<index_t> range(index_t from, index_t to) {  // inclusive, either direction
  std::vector<index_t> r;
  for (index_t i = from;; i += from < to ? 1 : -1) {
    r.push_back(i);
    if (i == to) break;
  }
  return r;
}
}  // namespace

TEST_CASE("TimestepPlan: full and strided spacings follow diffusers' definitions") {
  const auto full = TimestepPlan::full(5);
  CHECK(walk(full) == std::vector<index_t>{4, 3, 2, 1, 0, -1});
  CHECK(full.model_evaluations() == 5);
  CHECK(full.renoise_steps() == 0);
  // MADiff's DDIM-15 on 200 steps, "leading": stride 200 // 15 = 13.
  const auto lead = TimestepPlan::strided(200, 15, Spacing::Leading);
  REQUIRE(lead.levels().size() == 15);
  for (std::size_t i = 0; i < 15; ++i) CHECK(lead.levels()[i] == static_cast<index_t>(14 - i) * 13);
  CHECK(TimestepPlan::strided(10, 4, Spacing::Trailing).levels() == std::vector<index_t>{9, 7, 4, 1});  // 7.5, 2.5 round to even
  CHECK(TimestepPlan::strided(10, 4, Spacing::Linspace).levels() == std::vector<index_t>{9, 6, 3, 0});
  CHECK(TimestepPlan::strided(10, 10, Spacing::Leading).levels() == TimestepPlan::full(10).levels());
  CHECK(parse_spacing("leading") == Spacing::Leading);
  CHECK(parse_spacing("trailing") == Spacing::Trailing);
  CHECK(parse_spacing("linspace") == Spacing::Linspace);
  CHECK_THROWS_WITH_AS(parse_spacing("Leading"), doctest::Contains("got 'Leading'"), ConfigError);
  CHECK_THROWS_AS(TimestepPlan::strided(10, 11), ConfigError);
  CHECK_THROWS_AS(TimestepPlan::from_levels(10, {5, 5}), ConfigError);
  CHECK_THROWS_AS(TimestepPlan::from_levels(10, {10}), ConfigError);
  const auto inv = TimestepPlan::from_levels(10, {8, 4, 1}).inversion_events();
  REQUIRE(inv.size() == 3);
  CHECK((inv[0].from == -1 && inv[0].to == 1 && inv[1].from == 1 && inv[1].to == 4 && inv[2].to == 8));
}

TEST_CASE("TimestepPlan: RePaint jumps reproduce the reference walk and evaluation count") {
  // The reference schedule for t_T = 20, jump_length = 5, jump_n_sample = 3:
  // 19..10, 11..15, 14..10, 11..15, 14..5, 6..10, 9..5, 6..10, 9..0, 1..5, 4..0, 1..5, 4..0, -1
  std::vector<index_t> want;
  auto add = [&](index_t a, index_t b) {
    auto r = range(a, b);
    want.insert(want.end(), r.begin(), r.end());
  };
  add(19, 10), add(11, 15), add(14, 10), add(11, 15), add(14, 5), add(6, 10), add(9, 5), add(6, 10), add(9, 0),
      add(1, 5), add(4, 0), add(1, 5), add(4, 0);
  want.push_back(-1);
  const auto p = TimestepPlan::full(20).with_resampling(5, 3);
  CHECK(walk(p) == want);
  // Model evaluations = t_T + (r - 1) * j * ceil((t_T - j) / j).
  auto evals = [](index_t T, index_t j, index_t r) { return T + (r - 1) * j * ((T - j + j - 1) / j); };
  CHECK(p.model_evaluations() == evals(20, 5, 3));
  for (auto [T, j, r] : std::vector<std::array<index_t, 3>>{{250, 10, 10}, {200, 10, 10}, {200, 10, 5}, {100, 10, 10}}) {
    const auto q = TimestepPlan::full(T).with_resampling(j, r);
    CHECK(q.model_evaluations() == evals(T, j, r));
    CHECK(q.renoise_steps() == q.model_evaluations() - T);
  }
  CHECK(TimestepPlan::full(250).with_resampling(10, 10).model_evaluations() == 2410);
  // No resampling leaves the plain plan.
  CHECK(walk(TimestepPlan::full(7).with_resampling(3, 1)) == walk(TimestepPlan::full(7)));
  // Jumps on a strided plan move between its levels.
  const auto s = TimestepPlan::from_levels(100, {90, 60, 30, 0}).with_resampling(2, 2);
  CHECK(walk(s) == std::vector<index_t>{90, 60, 30, 0, 30, 60, 30, 0, -1});
  CHECK_THROWS_AS(TimestepPlan::full(5).with_resampling(0, 2), ConfigError);
}
