// The user policies and compositions of docs/concepts.md (tests/docs/concepts_examples.hpp, kept verbatim
// in sync with the page by the ctest "docs: concepts.md snippets are compiled"): each models its concept
// for float and double, and Generators built from them run the rounds, masks, filters and guidance the
// page describes.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "coordiff/denoiser/gaussian_mixture.hpp"
#include "coordiff/diffusion/generator.hpp"
#include "docs/concepts_examples.hpp"

using namespace coordiff;
using namespace concepts_doc;

namespace {

template <class T>
constexpr bool user_policies_model_their_concepts() {
  static_assert(schedule::NoiseSchedule<ConstantBeta>);
  static_assert(denoiser::Denoiser<StandardNormalDenoiser<T>>);
  static_assert(mask::MaskStrategy<KeepEndpoints, T>);
  static_assert(order::OrderingRule<ClosestToOriginFirst, T>);
  static_assert(filter::ValidityFilter<InsideBox, T>);
  static_assert(guidance::Guidance<PullToOrigin, StandardNormalDenoiser<T>>);
  static_assert(guidance::Guidance<PullToOrigin, denoiser::GaussianMixture<T>>);
  // The Generator's own check, which sees the denoiser through its call-counting wrapper.
  static_assert(diffusion::detail::check_policies<ConstantBeta, StandardNormalDenoiser<T>, KeepEndpoints,
                                                  ClosestToOriginFirst, InsideBox, PullToOrigin>());
  static_assert(diffusion::detail::check_policies<ConstantBeta, denoiser::GaussianMixture<T>, KeepEndpoints,
                                                  ClosestToOriginFirst, InsideBox, PullToOrigin>());
  return true;
}
static_assert(user_policies_model_their_concepts<float>());
static_assert(user_policies_model_their_concepts<double>());

constexpr index_t kB = 4, kH = 4, kA = 3, kF = 2;

/// Replays a given generation order (one agent per round), to compare against a rule that should produce it.
struct FixedOrder {
  std::vector<std::vector<index_t>> kappa;  // kappa[b]: sample b's agents in generation order
  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>&) const {
    diffusion::RoundPlan rounds(kappa.front().size());
    for (const auto& k : kappa)
      for (std::size_t l = 0; l < rounds.size(); ++l) rounds[l].agents.push_back({k[l]});
    return rounds;
  }
};

// Distance of each agent's first step from the origin, per sample, and the order it implies.
const double kStart[kB][kA] = {{0.5, 0.1, 0.3}, {0.1, 0.3, 0.2}, {0.3, 0.2, 0.1}, {0.2, 0.1, 0.3}};
const std::vector<std::vector<index_t>> kClosestFirst{{1, 2, 0}, {0, 2, 1}, {2, 1, 0}, {1, 0, 2}};

/// Windows [B, H, A, F]: agent a of sample b starts at (kStart[b][a], 0) and ends at (0.1 (a + 1), -0.2);
/// sample 3's agent 0 ends at x = 5, outside any unit box. Interior steps are zero.
template <class T>
Tensor<T> windows() {
  Tensor<T> x({kB, kH, kA, kF});
  for (index_t b = 0; b < kB; ++b)
    for (index_t a = 0; a < kA; ++a) {
      x(b, 0, a, 0) = static_cast<T>(kStart[b][a]);
      x(b, kH - 1, a, 0) = static_cast<T>(0.1 * static_cast<double>(a + 1));
      x(b, kH - 1, a, 1) = T(-0.2);
    }
  x(3, kH - 1, 0, 0) = T(5);
  return x;
}

/// Per-step values [B, H, A] with subgoal (first argmax) g(b, a) = (b + a) % H and last value a + b (mod 3).
template <class T>
Tensor<T> values() {
  Tensor<T> v({kB, kH, kA});
  for (index_t b = 0; b < kB; ++b)
    for (index_t a = 0; a < kA; ++a) {
      for (index_t t = 0; t < kH; ++t) v(b, t, a) = T(0);
      v(b, (b + a) % kH, a) = T(10);
      if ((b + a) % kH != kH - 1) v(b, kH - 1, a) = static_cast<T>((a + b) % 3);
    }
  return v;
}

template <class S>
std::vector<double> alpha_bars(const S& s) {
  std::vector<double> ab;
  for (index_t k = 0; k < s.num_steps(); ++k) ab.push_back(s.alpha_bar(k));
  return ab;
}

/// N(mu, Sigma) over the event [H, A, F], with agents correlated at the same (t, f).
denoiser::GaussianMixture<double> correlated_gaussian(std::vector<double> ab) {
  const index_t D = kH * kA * kF;
  Eigen::VectorXd mu(D);
  Eigen::MatrixXd cov = 0.02 * Eigen::MatrixXd::Identity(D, D);
  for (index_t t = 0; t < kH; ++t)
    for (index_t a = 0; a < kA; ++a)
      for (index_t f = 0; f < kF; ++f) {
        const index_t i = (t * kA + a) * kF + f;
        mu[i] = 0.05 * static_cast<double>(t) - 0.02 * static_cast<double>(a);
        for (index_t a2 = 0; a2 < kA; ++a2) cov(i, (t * kA + a2) * kF + f) += 0.03;
      }
  return denoiser::GaussianMixture<double>::gaussian(std::move(ab), {kH, kA, kF}, mu, cov);
}

std::vector<index_t> agents_of_sample(const diffusion::RoundPlan& plan, std::size_t b) {
  std::vector<index_t> seq;
  for (const auto& r : plan) {
    REQUIRE(r.agents[b].size() == 1);
    seq.push_back(r.agents[b][0]);
  }
  return seq;
}

double max_abs_diff(const Tensor<double>& x, const Tensor<double>& y) {
  double d = 0;
  for (index_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]));
  return d;
}

}  // namespace

TEST_CASE("concepts doc: ConstantBeta has alpha_bar = prod (1 - beta), strictly decreasing in (0, 1)") {
  const ConstantBeta s{30, 0.1};
  double prod = 1.0;
  for (index_t k = 0; k < s.num_steps(); ++k) {
    prod *= 1.0 - s.beta(k);
    CHECK(s.alpha_bar(k) == doctest::Approx(prod).epsilon(1e-12));
    CHECK(s.alpha_bar(k) > 0.0);
    CHECK(s.alpha_bar(k) < (k == 0 ? 1.0 : s.alpha_bar(k - 1)));
  }
}

TEST_CASE("concepts doc: StandardNormalDenoiser is the exact predictor of N(0, I) data") {
  const schedule::Cosine sched(40);
  const auto ab = alpha_bars(sched);
  StandardNormalDenoiser<double> user{ab};
  auto exact = denoiser::GaussianMixture<double>::gaussian(ab, {kH, kA, kF}, Eigen::VectorXd::Zero(kH * kA * kF),
                                                           Eigen::MatrixXd::Identity(kH * kA * kF, kH * kA * kF));
  Rng rng(3);
  const Tensor<double> x = rng.normal<double>({kB, kH, kA, kF});
  for (index_t step : {0, 7, 39}) {
    const Tensor<double> k({kB}, static_cast<double>(step));
    CHECK(max_abs_diff(user(x, k, {}), exact(x, k, {})) < 1e-12);
  }
}

TEST_CASE("concepts doc: a Generator of the user policies runs the user order's rounds, mask, filter and guidance") {
  const ConstantBeta sched{30, 0.1};
  diffusion::Batch<double> batch;
  batch.data = windows<double>();

  // The rule's own plan: one agent per round, closest start first.
  const diffusion::RoundPlan plan = ClosestToOriginFirst{}.plan(batch);
  REQUIRE(plan.size() == static_cast<std::size_t>(kA));
  for (std::size_t b = 0; b < static_cast<std::size_t>(kB); ++b) CHECK(agents_of_sample(plan, b) == kClosestFirst[b]);

  auto make = [&](auto order, PullToOrigin guide) {
    return make_generator(sched, correlated_gaussian(alpha_bars(sched)), KeepEndpoints{}, std::move(order),
                          InsideBox{1.0}, guide, diffusion::TimestepPlan::full(sched.num_steps()), {}, /*seed=*/7);
  };
  auto gen = make(ClosestToOriginFirst{}, PullToOrigin{});
  const auto out = gen.generate(batch);
  const auto& st = out.stats;
  CHECK(st.rounds == kA);
  CHECK(st.round_seconds.size() == static_cast<std::size_t>(kA));
  CHECK(st.reverse_steps == kA * sched.num_steps());
  CHECK(st.renoise_steps == 0);
  CHECK(st.denoiser_calls == kA * sched.num_steps());  // PullToOrigin calls the denoiser once per step

  // KeepEndpoints: the interior steps of every agent were generated (each in its own round), the endpoints
  // are the data exactly.
  CHECK(st.generated_fraction == doctest::Approx(static_cast<double>(kH - 2) / kH));
  for (index_t b = 0; b < kB; ++b)
    for (index_t t = 0; t < kH; ++t)
      for (index_t a = 0; a < kA; ++a)
        for (index_t f = 0; f < kF; ++f) {
          const bool interior = t > 0 && t < kH - 1;
          CHECK(out.generated(b, t, a, f) == (interior ? 1 : 0));
          if (!interior) CHECK(out.samples(b, t, a, f) == batch.data(b, t, a, f));
        }

  // InsideBox: the default sampler clips x0^ to [-1, 1], so only sample 3 (a known endpoint at x = 5) leaves the box.
  CHECK(out.keep == std::vector<std::uint8_t>{1, 1, 1, 0});
  CHECK(out.reason[3].find("outside the box") != std::string::npos);
  CHECK(out.reason[0].empty());
  CHECK(st.accepted == 3);
  CHECK(st.accepted_fraction == doctest::Approx(0.75));

  // The rounds came from the user rule: replaying its order reproduces the samples bit for bit, the
  // identity order does not (round r draws from its own noise stream).
  auto replay = make(FixedOrder{kClosestFirst}, PullToOrigin{});
  CHECK(max_abs_diff(replay.generate(batch).samples, out.samples) == 0.0);
  auto identity = make(FixedOrder{std::vector<std::vector<index_t>>(kB, {0, 1, 2})}, PullToOrigin{});
  CHECK(max_abs_diff(identity.generate(batch).samples, out.samples) > 1e-3);

  // PullToOrigin pulls the generated entries towards 0 compared with no pull (same noise).
  auto unguided = make(ClosestToOriginFirst{}, PullToOrigin{0.0});
  const auto unpulled = unguided.generate(batch);
  double ss_pulled = 0, ss_free = 0;
  for (index_t i = 0; i < out.samples.size(); ++i)
    if (out.generated[i]) {
      ss_pulled += out.samples[i] * out.samples[i];
      ss_free += unpulled.samples[i] * unpulled.samples[i];
    }
  MESSAGE("sum of squares of generated entries: pulled ", ss_pulled, ", free ", ss_free);
  CHECK(ss_pulled < 0.8 * ss_free);
}

TEST_CASE("concepts doc: the compositions of 'Composing a Generator'") {
  constexpr index_t K = 20;
  const auto ab = alpha_bars(schedule::Cosine(K));

  SUBCASE("joint baseline: one round of all agents, the first step known") {
    auto gen = joint_baseline(StandardNormalDenoiser<float>{ab}, K);
    const auto out = refine(gen, windows<float>(), values<float>());
    CHECK(out.stats.rounds == 1);
    CHECK(out.stats.denoiser_calls == K);
    CHECK(out.stats.generated_fraction == doctest::Approx(static_cast<double>(kH - 1) / kH));
    CHECK(out.stats.accepted_fraction == 1.0);
    const Tensor<float> data = windows<float>();
    for (index_t b = 0; b < kB; ++b)
      for (index_t a = 0; a < kA; ++a) CHECK(out.samples(b, 0, a, 0) == data(b, 0, a, 0));
  }

  SUBCASE("MASTARS: one round per agent in LOV order, each regenerated after its subgoal, Threshold filter") {
    // Score: mean absolute step-to-step change (a stand-in for the transition-model error of eq. 6).
    // Sample 3 keeps its jump to x = 5 (agent 0's subgoal is the last step), so it scores far above the others.
    auto score = [](const Tensor<double>& x, const diffusion::Batch<double>&) {
      std::vector<double> s(static_cast<std::size_t>(x.dim(0)), 0.0);
      for (index_t b = 0; b < x.dim(0); ++b)
        for (index_t t = 1; t < x.dim(1); ++t)
          for (index_t a = 0; a < x.dim(2); ++a)
            for (index_t f = 0; f < x.dim(3); ++f)
              s[static_cast<std::size_t>(b)] += std::abs(x(b, t, a, f) - x(b, t - 1, a, f)) / (kH * kA * kF);
      return s;
    };
    const double epsilon = 0.3;
    auto gen = mastars(correlated_gaussian(ab), K, score, epsilon);
    const auto out = refine(gen, windows<double>(), values<double>());
    const auto& plan = gen.sampler().plan();
    CHECK(out.stats.rounds == kA);
    CHECK(out.stats.reverse_steps == kA * plan.model_evaluations());
    CHECK(out.stats.renoise_steps == kA * plan.renoise_steps());
    CHECK(plan.renoise_steps() > 0);  // RePaint resampling is on
    for (index_t b = 0; b < kB; ++b)
      for (index_t t = 0; t < kH; ++t)
        for (index_t a = 0; a < kA; ++a) CHECK(out.generated(b, t, a, 0) == (t > (b + a) % kH ? 1 : 0));
    const auto s = score(out.samples, {});
    for (std::size_t b = 0; b < static_cast<std::size_t>(kB); ++b) CHECK(out.keep[b] == (s[b] < epsilon ? 1 : 0));
    CHECK(out.keep == std::vector<std::uint8_t>{1, 1, 1, 0});
    // LOV: descending last value; the order the generator used is that of order::LastObsValue.
    diffusion::Batch<double> batch;
    batch.data = windows<double>();
    batch.values = values<double>();
    CHECK(agents_of_sample(order::LastObsValue{}.plan(batch), 0) == std::vector<index_t>{2, 1, 0});
  }

  SUBCASE("user ordering rule: one round per agent, closest start first, each agent regenerated entirely") {
    auto gen = closest_first(StandardNormalDenoiser<double>{ab}, K);
    const auto out = refine(gen, windows<double>(), values<double>());
    CHECK(out.stats.rounds == kA);
    CHECK(out.stats.generated_fraction == 1.0);
    CHECK(out.stats.denoiser_calls == kA * K);
  }
}
