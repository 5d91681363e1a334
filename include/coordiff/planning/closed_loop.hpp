#pragma once
// Closed-loop planning with a trajectory diffusion model (Decision Diffuser / MADiff, and paper 001's safe
// version). At every environment step each agent's current observation is pasted as the first step of a
// window of all agents (mask::HistoryPrefix, one joint round), the rest is sampled with DDIM under
// classifier-free guidance toward the condition y (the return, or paper 001's (CBF satisfaction, return)),
// and each agent acts through the inverse dynamics a_t = I(o_t, o_{t+1}) (paper 001, the equation after
// eq. 6). The guidance and the filter are compile-time policies:
//   ClassifierFree                               unconstrained or CBF-conditioned planning,
//   Chain<ClassifierFree, CbfGradient<barrier>>  + the CBF gradient step on every predicted clean sample,
//   filter::CbfSafe<barrier>                     + M candidate plans per environment, the first that keeps
//                                                the CBF condition everywhere is executed (else the one
//                                                with the smallest hinge cost).
// run_closed_loop drives any batched environment with a policy and records return, cost and planning time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <vector>

#include "coordiff/diffusion/generator.hpp"
#include "coordiff/filter/accept_all.hpp"
#include "coordiff/filter/cbf_safe.hpp"
#include "coordiff/guidance/cbf_gradient.hpp"
#include "coordiff/guidance/chain.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/mask/history_prefix.hpp"
#include "coordiff/mastars/compositions.hpp"
#include "coordiff/order/joint.hpp"
#include "coordiff/schedule/cosine.hpp"

namespace coordiff::planning {

struct PlanOptions {
  index_t sampling_steps = 10;  ///< DDIM steps per plan (strided from the model's K)
  /// Which levels the strided steps visit. Leading (k = i K/n) starts below K - 1 (at 90 of 100 for 10
  /// steps), treating pure noise as a level that still holds signal; Trailing starts at K - 1.
  diffusion::Spacing spacing = diffusion::Spacing::Leading;
  double target_return = 1.0;   ///< the return part of the condition (in units of returns_scale)
  double target_cbf = 1.0;      ///< the CBF part (models conditioned on it): 1 = "satisfies the CBF"
  double guidance_weight = -1;  ///< classifier-free weight; < 0 = the model's diffusion.guidance_weight
  double cbf_guidance = 1.0;    ///< scale of the CBF gradient step (guided planners)
  index_t candidates = 4;       ///< plans per environment (filtered planners)
  std::uint64_t seed = 0;
};

using Barrier = safety::MlpBarrier<float>;
using PlainGuidance = guidance::ClassifierFree;
using CbfGuidance = guidance::Chain<guidance::ClassifierFree, guidance::CbfGradient<Barrier>>;
template <class Guide, class Filter>
using PlanGenerator = diffusion::Generator<schedule::Cosine, mastars::NetworkRef, mask::HistoryPrefix, order::Joint, Filter, Guide>;

/// A planner over a trained model (which it borrows) with guidance Guide (PlainGuidance or CbfGuidance)
/// and filter Filter (filter::AcceptAll or filter::CbfSafe<Barrier>).
template <class Guide, class Filter>
class DiffusionPlanner {
 public:
  DiffusionPlanner(mastars::Model<float>& m, const PlanOptions& o) : m_(m), o_(o), gen_(make_generator(m, o)) {
    require<ConfigError>(o.sampling_steps >= 1 && o.sampling_steps <= m.config.diffusion.diffusion_steps,
                         "DiffusionPlanner: sampling_steps must be in [1, ", m.config.diffusion.diffusion_steps, "], got ",
                         o.sampling_steps);
    require<ConfigError>(o.candidates >= 1, "DiffusionPlanner: candidates must be >= 1, got ", o.candidates);
    if constexpr (!std::is_same_v<Guide, PlainGuidance> || !std::is_same_v<Filter, filter::AcceptAll>)
      require<ConfigError>(m.has_cbf(), "DiffusionPlanner: CBF guidance and filtering need the model's CBF (train the "
                           "model on a dataset with costs)");
  }

  index_t candidates() const { return std::is_same_v<Filter, filter::AcceptAll> ? 1 : o_.candidates; }

  /// Actions [B, A, U] for the observations obs [B, A, O] at episode step `step`.
  Tensor<double> operator()(const Tensor<double>& obs, index_t step) {
    require<ShapeError>(obs.rank() == 3 && obs.dim(1) == m_.agents && obs.dim(2) == m_.obs_dim, "DiffusionPlanner: expected "
                        "observations [B, ", m_.agents, ", ", m_.obs_dim, "], got ", to_string(obs.shape()));
    require_finite(obs, "DiffusionPlanner observations");
    const index_t B = obs.dim(0), A = m_.agents, O = m_.obs_dim, H = m_.config.diffusion.horizon, M = candidates();
    const Tensor<float> on = m_.normalize_observations(obs);
    diffusion::Batch<float> batch;
    batch.data = Tensor<float>({B * M, H, A, O}, 0.0f);
    for (index_t b = 0; b < B * M; ++b)
      std::copy(on.data() + (b / M) * A * O, on.data() + (b / M + 1) * A * O, batch.data.data() + b * H * A * O);
    batch.condition.value = m_.condition_value(B * M, o_.target_return, o_.target_cbf);
    gen_.set_seed(o_.seed * 1000003u + static_cast<std::uint64_t>(step));
    auto g = gen_.generate(batch);
    // Features that are constant in the data (e.g. MPE's silent communication channels) pass through the
    // normaliser unchanged; the denoiser leaves noise there, which the inverse dynamics never saw.
    m_.obs_norm.restore_constant_features(g.samples);
    last_accepted_ = 0;
    // The plan each environment executes: its first kept candidate, else its least violating one.
    std::vector<index_t> pick(static_cast<std::size_t>(B));
    std::vector<double> hinge;
    for (index_t b = 0; b < B; ++b) {
      index_t chosen = -1;
      for (index_t k = 0; k < M && chosen < 0; ++k)
        if (g.keep[static_cast<std::size_t>(b * M + k)]) chosen = b * M + k;
      if (chosen >= 0) ++last_accepted_;
      if (chosen < 0) {
        if (hinge.empty()) {
          const auto cv = safety::hinge_cost<float>(m_.barrier, g.samples, m_.cbf_options());
          hinge.assign(cv.value.begin(), cv.value.end());
        }
        chosen = b * M;
        for (index_t k = 1; k < M; ++k)
          if (hinge[static_cast<std::size_t>(b * M + k)] < hinge[static_cast<std::size_t>(chosen)]) chosen = b * M + k;
      }
      pick[static_cast<std::size_t>(b)] = chosen;
    }
    Tensor<float> now({B * A, O}), next({B * A, O});
    for (index_t b = 0; b < B; ++b) {
      const index_t s = pick[static_cast<std::size_t>(b)];
      for (index_t a = 0; a < A; ++a)
        for (index_t f = 0; f < O; ++f) now(b * A + a, f) = g.samples(s, 0, a, f), next(b * A + a, f) = g.samples(s, 1, a, f);
    }
    Tensor<float> act_n;
    {
      nn::NoGradGuard no_grad;
      act_n = m_.inverse(now, next);
    }
    const Tensor<float> act = m_.act_norm.unnormalize(act_n.reshape({B, A, m_.act_dim}));
    Tensor<double> out(act.shape());
    for (index_t i = 0; i < act.size(); ++i) out[i] = static_cast<double>(act[i]);
    return out;
  }

  /// Environments whose executed plan passed the filter at the last call (all of them without a filter).
  index_t last_accepted() const { return last_accepted_; }

 private:
  static PlanGenerator<Guide, Filter> make_generator(mastars::Model<float>& m, const PlanOptions& o) {
    const safety::CbfLossOptions cbf = m.cbf_options();
    const double w = o.guidance_weight >= 0 ? o.guidance_weight : m.config.diffusion.guidance_weight;
    Guide guide = [&] {
      if constexpr (std::is_same_v<Guide, PlainGuidance>) return guidance::ClassifierFree{w};
      else return guidance::chain(guidance::ClassifierFree{w}, guidance::cbf_gradient(m.barrier, o.cbf_guidance, cbf));
    }();
    Filter filter = [&] {
      if constexpr (std::is_same_v<Filter, filter::AcceptAll>) return filter::AcceptAll{};
      else return filter::cbf_safe(m.barrier, cbf);
    }();
    diffusion::SamplerOptions so;
    so.solver = diffusion::Solver::Ddim;
    const index_t K = m.config.diffusion.diffusion_steps;
    return PlanGenerator<Guide, Filter>({schedule::Cosine(K), mastars::NetworkRef(m.net), mask::HistoryPrefix{1}, order::Joint{},
                                         std::move(filter), std::move(guide)},
                                        diffusion::TimestepPlan::strided(K, o.sampling_steps, o.spacing), so, o.seed);
  }

  mastars::Model<float>& m_;
  PlanOptions o_;
  PlanGenerator<Guide, Filter> gen_;
  index_t last_accepted_ = 0;
};

/// What run_closed_loop measured, per environment of the batch.
struct EpisodeStats {
  std::vector<double> returns;  ///< sum over steps of the agents' mean reward
  std::vector<double> costs;    ///< sum over steps and agents of the cost
  /// Agents in the dangerous set in the reset state, before any action: a violation no policy can
  /// prevent when the first step cannot leave the set (SafeSpread draws agents inside hazards).
  std::vector<double> start_costs;
  double plan_seconds = 0;      ///< wall time in the policy, summed over steps (all environments at once)
  index_t steps = 0;

  bool safe(std::size_t e) const { return costs[e] == 0; }
  double safe_rate() const {
    double s = 0;
    for (std::size_t e = 0; e < costs.size(); ++e) s += safe(e);
    return costs.empty() ? 0.0 : s / static_cast<double>(costs.size());
  }
  /// The safe rate among the episodes whose reset state is safe (0 when there are none).
  double safe_rate_of_safe_starts() const {
    double n = 0, s = 0;
    for (std::size_t e = 0; e < costs.size(); ++e)
      if (start_costs[e] == 0) n += 1, s += safe(e);
    return n > 0 ? s / n : 0.0;
  }
  double unsafe_start_rate() const {
    double n = 0;
    for (double c : start_costs) n += c > 0;
    return start_costs.empty() ? 0.0 : n / static_cast<double>(start_costs.size());
  }
};

/// Runs `steps` steps of every environment of `env` (already reset) with policy(obs [B, A, O], step) ->
/// actions [B, A, U]; Env::step(actions) returns .obs, .reward [B, A] and .cost [B, A], Env::costs() the
/// present state's [B, A].
template <class Env, class Policy>
EpisodeStats run_closed_loop(Env& env, Policy&& policy, index_t steps) {
  EpisodeStats s;
  Tensor<double> obs = env.observations();
  const index_t B = obs.dim(0), A = obs.dim(1);
  s.returns.assign(static_cast<std::size_t>(B), 0.0);
  s.costs.assign(static_cast<std::size_t>(B), 0.0);
  s.start_costs.assign(static_cast<std::size_t>(B), 0.0);
  const Tensor<double> start = env.costs();
  for (index_t b = 0; b < B; ++b)
    for (index_t a = 0; a < A; ++a) s.start_costs[static_cast<std::size_t>(b)] += start(b, a);
  for (index_t t = 0; t < steps; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor<double> act = policy(obs, t);
    s.plan_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto r = env.step(act);
    require<ShapeError>(!r.cost.empty(), "run_closed_loop: the environment reports no costs");
    for (index_t b = 0; b < B; ++b)
      for (index_t a = 0; a < A; ++a) {
        s.returns[static_cast<std::size_t>(b)] += r.reward(b, a) / static_cast<double>(A);
        s.costs[static_cast<std::size_t>(b)] += r.cost(b, a);
      }
    obs = std::move(r.obs);
    ++s.steps;
  }
  return s;
}

}  // namespace coordiff::planning
