#pragma once
// The code of docs/concepts.md. Every block of that page marked `<!-- compiled: NAME -->` must appear
// here verbatim (checked by the ctest "docs: concepts.md snippets are compiled", which runs
// check_doc_snippets.cmake); tests/diffusion/test_concepts_doc.cpp compiles and runs it. Edit a snippet
// here and on the page together.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/diffusion/diffusion.hpp"
#include "coordiff/offline/objective/objective.hpp"

namespace concepts_doc {

using namespace coordiff;

// ---- snippet: user-schedule --------------------------------------------------------------------
struct ConstantBeta {
  index_t steps = 50;
  double b = 0.1;

  index_t num_steps() const { return steps; }
  double beta(index_t) const { return b; }
  double alpha_bar(index_t k) const { return std::pow(1.0 - b, static_cast<double>(k + 1)); }
};

// ---- snippet: user-denoiser --------------------------------------------------------------------
// The exact noise prediction for N(0, I) data: x_k ~ N(0, I) at every k, so E[eps | x_k] = sqrt(1 - abar_k) x_k.
template <class T>
struct StandardNormalDenoiser {
  using value_type = T;
  std::vector<double> alpha_bar;  // abar_k of the schedule the sampler uses

  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& k, const Condition<T>&) {
    Tensor<T> eps(x.shape());
    const index_t per_sample = x.size() / x.dim(0);
    for (index_t i = 0; i < x.size(); ++i) {
      const auto step = static_cast<std::size_t>(k[i / per_sample]);
      eps[i] = static_cast<T>(std::sqrt(1.0 - alpha_bar[step]) * x[i]);
    }
    return eps;
  }
};

// ---- snippet: user-mask ------------------------------------------------------------------------
// Keep the first and last step of the round's agents (e.g. start and goal), generate the steps between.
struct KeepEndpoints {
  template <class T>
  Tensor<std::uint8_t> known(const diffusion::Batch<T>& batch, const diffusion::Round& round) const {
    const index_t H = batch.horizon();
    return mask::known_except(batch, round, [H](index_t, index_t t, index_t) { return t > 0 && t < H - 1; });
  }
};

// ---- snippet: user-order -----------------------------------------------------------------------
// One agent per round, per sample the agent whose first step is closest to the origin first.
struct ClosestToOriginFirst {
  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    const index_t B = batch.batch_size(), A = batch.agents(), F = batch.features();
    diffusion::RoundPlan rounds(static_cast<std::size_t>(A));  // others_visible = true
    for (index_t b = 0; b < B; ++b) {
      std::vector<double> dist(static_cast<std::size_t>(A), 0.0);
      for (index_t a = 0; a < A; ++a)
        for (index_t f = 0; f < F; ++f) dist[static_cast<std::size_t>(a)] += std::pow(batch.data(b, 0, a, f), 2);
      std::vector<index_t> kappa(static_cast<std::size_t>(A));
      std::iota(kappa.begin(), kappa.end(), index_t(0));
      std::stable_sort(kappa.begin(), kappa.end(), [&](index_t x, index_t y) {
        return dist[static_cast<std::size_t>(x)] < dist[static_cast<std::size_t>(y)];
      });
      for (std::size_t l = 0; l < rounds.size(); ++l) rounds[l].agents.push_back({kappa[l]});
    }
    return rounds;
  }
};

// ---- snippet: user-filter ----------------------------------------------------------------------
// Reject samples with an entry outside [-limit, limit].
struct InsideBox {
  double limit = 1.0;

  template <class T>
  filter::Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>&) const {
    const auto B = static_cast<std::size_t>(samples.dim(0));
    const index_t per_sample = samples.size() / samples.dim(0);
    filter::Verdict v{std::vector<std::uint8_t>(B, 1), std::vector<std::string>(B)};
    for (index_t i = 0; i < samples.size(); ++i) {
      const auto b = static_cast<std::size_t>(i / per_sample);
      if (v.keep[b] && !(std::abs(samples[i]) <= limit)) {
        v.keep[b] = 0;
        v.reason[b] = "entry " + std::to_string(i % per_sample) + " outside the box";
      }
    }
    return v;
  }
};

// ---- snippet: user-guidance --------------------------------------------------------------------
// Gradient guidance with the cost |x_k|^2 / 2 (eps~ = eps + s sqrt(1 - abar) grad), for epsilon prediction.
struct PullToOrigin {
  double scale = 0.5;

  template <class D>
  Tensor<typename D::value_type> model_output(D& d, const Tensor<typename D::value_type>& x,
                                              const Tensor<typename D::value_type>& k,
                                              const Condition<typename D::value_type>& c,
                                              const guidance::StepInfo& info) const {
    require<ConfigError>(info.prediction == denoiser::Prediction::Epsilon, "PullToOrigin: needs epsilon prediction");
    Tensor<typename D::value_type> eps = d(x, k, c);
    const double f = scale * std::sqrt(1.0 - info.alpha_bar);
    for (index_t i = 0; i < eps.size(); ++i) eps[i] = static_cast<typename D::value_type>(eps[i] + f * x[i]);
    return eps;
  }
};

// ---- snippet: compose-joint --------------------------------------------------------------------
// MADiff-style joint baseline: all agents in one round, conditioned on their first step.
template <class Denoiser>
auto joint_baseline(Denoiser denoiser, index_t K) {
  return make_generator(schedule::Cosine(K), std::move(denoiser), mask::HistoryPrefix{1}, order::Joint{},
                        filter::AcceptAll{}, guidance::None{}, diffusion::TimestepPlan::full(K));
}

// ---- snippet: compose-mastars ------------------------------------------------------------------
// MASTARS: one RePaint pass per agent in LOV order (eq. 7), regenerating each agent after its
// subgoal (eq. 4), known entries noised to level k (eq. 5c); keep a sample iff score < epsilon (eq. 6).
template <class Denoiser, class Score>
auto mastars(Denoiser denoiser, index_t K, Score score, double epsilon) {
  diffusion::SamplerOptions options;
  options.paste = diffusion::PasteRule::Mastars;
  return make_generator(schedule::Cosine(K), std::move(denoiser), mask::AfterSubgoal{}, order::LastObsValue{},
                        filter::Threshold{std::move(score), epsilon}, guidance::None{},
                        diffusion::TimestepPlan::full(K).with_resampling(10, 10), options);
}

// ---- snippet: compose-user-order ---------------------------------------------------------------
// Sequential generation in a user-defined order, each agent regenerated entirely.
template <class Denoiser>
auto closest_first(Denoiser denoiser, index_t K) {
  return make_generator(schedule::Cosine(K), std::move(denoiser), mask::None{}, ClosestToOriginFirst{},
                        filter::AcceptAll{}, guidance::None{}, diffusion::TimestepPlan::full(K));
}

// ---- snippet: compose-run ----------------------------------------------------------------------
template <class T, class Gen>
diffusion::Generation<T> refine(Gen& generator, Tensor<T> windows, Tensor<T> values) {
  diffusion::Batch<T> batch;
  batch.data = std::move(windows);   // [B, H, A, F]: the windows to refine (MASTARS section 3.1)
  batch.values = std::move(values);  // [B, H, A]: V(o^i_t), for the subgoals (eq. 4) and the LOV order (eq. 7)
  diffusion::Generation<T> out = generator.generate(batch);
  // out.samples [B, H, A, F]; out.keep[b] / out.reason[b]: the filter's verdict; out.stats: rounds,
  // generated_fraction, accepted_fraction, denoiser_calls, reverse_steps, round_seconds, total_seconds.
  return out;
}

// ---- snippet: user-actor-objective --------------------------------------------------------------
// Behaviour cloning: regress on the dataset actions, ignore the critic.
struct PureCloning {
  static constexpr const char* kName = "bc";

  template <class T>
  offline::objective::ActorTerms<T> terms(const offline::objective::ActorStep<T>& step) const {
    return {0.0, 1.0, step.data};
  }
};

}  // namespace concepts_doc
