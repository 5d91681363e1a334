#pragma once
// How well a trained MASTARS model denoises and generates, measured on a dataset:
//   denoising   per noise level k: the noise-prediction error E|eps^ - eps|^2 on real windows noised to k
//               (the training loss at that level), and the clean-sample error E|x0^ - x0|^2 of the one-step
//               estimate x0^ = (x_k - sqrt(1 - abar) eps^)/sqrt(abar), against (1 - abar)/abar, the error of
//               a denoiser that predicts no noise at all;
//   generation  windows generated from each picked window's first step (the joint planner's setting:
//               HistoryPrefix{1}, DDIM over `ddim_steps`) scored by the eq. 6 dynamics filter, beside the
//               real windows' score; for MPE data (velocity, then position, first in every observation)
//               also the kinematic residual |p_{t+1} - p_t - dt v_{t+1}|, exactly 0 in the simulator; for
//               models with a CBF the fraction of agent windows that satisfy it (eq. 8 >= 0 with every step
//               counted safe, the "barrier" window label; and h >= 0 alone), generated and real, and for
//               (CBF, return)-conditioned models also generated with the CBF condition 0: whether the
//               condition steers; for datasets whose costs can be recomputed from observations (SafeSpread,
//               the double integrator) the fraction of agent windows with no step in the dangerous set,
//               generated (CBF condition 1 and 0) and real.
// A model whose windows are not dynamically consistent cannot plan or augment well, whatever the guidance.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordiff/core/philox.hpp"
#include "coordiff/filter/accept_all.hpp"
#include "coordiff/mastars/augment.hpp"
#include "coordiff/mastars/training.hpp"
#include "coordiff/order/joint.hpp"

namespace coordiff::mastars {

struct DiagnosticsOptions {
  index_t windows = 256;                 ///< real windows sampled from the dataset
  std::vector<index_t> levels;           ///< noise levels; empty = 0, K/20, K/4, K/2, 3K/4, K - 1
  index_t ddim_steps = 10;               ///< generation: DDIM steps (the planner's default)
  double target = 1.0;                   ///< generation: every agent's return condition (CBF part: 1)
  std::uint64_t seed = 0;
};

namespace detail {
/// Mean over windows, agents and steps of |p_{t+1} - p_t - dt v_{t+1}| for raw MPE observation windows
/// [N, H, A, O] (v = features 0-1, p = features 2-3).
inline double kinematic_residual(const Tensor<float>& w, double dt) {
  const index_t N = w.dim(0), H = w.dim(1), A = w.dim(2);
  double s = 0;
  index_t n = 0;
  for (index_t k = 0; k < N; ++k)
    for (index_t t = 0; t + 1 < H; ++t)
      for (index_t a = 0; a < A; ++a)
        for (index_t c = 0; c < 2; ++c, ++n)
          s += std::abs(double(w(k, t + 1, a, 2 + c)) - double(w(k, t, a, 2 + c)) - dt * double(w(k, t + 1, a, c)));
  return n ? s / double(n) : 0.0;
}
}  // namespace detail

/// The report described above, as JSON.
inline nlohmann::json diagnose(Model<float>& m, const data::OfflineDataset<float>& d, const DiagnosticsOptions& o = {}) {
  require<ConfigError>(o.windows >= 1 && o.ddim_steps >= 1 && o.ddim_steps <= m.config.diffusion.diffusion_steps,
                       "diagnose: need windows >= 1 and ddim_steps in [1, ", m.config.diffusion.diffusion_steps, "]");
  const index_t K = m.config.diffusion.diffusion_steps, A = m.agents;
  const auto all = diffusion_windows(m, d);
  const std::vector<index_t> pick = detail::pick_windows(all.size(), o.windows, o.seed);
  const Tensor<float> x0 = take_rows(all.x, pick), cond = take_rows(all.condition, pick);
  const index_t B = x0.dim(0);
  std::vector<index_t> levels = o.levels;
  if (levels.empty()) levels = {0, K / 20, K / 4, K / 2, 3 * K / 4, K - 1};
  const schedule::Cosine sch(K);
  NetworkRef net(m.net);
  Rng rng(o.seed ^ 0x6469616755ull, 0);  // "diag"
  nlohmann::json rows = nlohmann::json::array();
  for (index_t k : levels) {
    require<ConfigError>(k >= 0 && k < K, "diagnose: noise level ", k, " outside [0, ", K, ")");
    const double ab = sch.alpha_bar(k);
    const Tensor<float> eps = rng.normal<float>(x0.shape());
    Tensor<float> xk(x0.shape());
    for (index_t i = 0; i < xk.size(); ++i) xk[i] = static_cast<float>(std::sqrt(ab) * x0[i] + std::sqrt(1 - ab) * eps[i]);
    Condition<float> c;
    c.value = cond;
    c.keep = Tensor<float>({B, A}, 1.0f);
    Tensor<float> e;
    {
      nn::NoGradGuard no_grad;
      e = net(xk, Tensor<float>({B}, static_cast<float>(k)), c);
    }
    double le = 0, lx = 0;
    for (index_t i = 0; i < xk.size(); ++i) {
      le += std::pow(double(e[i]) - eps[i], 2);
      lx += std::pow((double(xk[i]) - std::sqrt(1 - ab) * e[i]) / std::sqrt(ab) - x0[i], 2);
    }
    const double n = double(xk.size());
    rows.push_back({{"level", k}, {"alpha_bar", ab}, {"eps_mse", le / n}, {"x0_mse", lx / n}, {"x0_mse_no_denoising", (1 - ab) / ab}});
  }
  nlohmann::json r = {{"windows", B}, {"denoising", rows}};

  // Generation from the first step of each picked window, as the closed-loop planner does.
  diffusion::SamplerOptions so;
  so.solver = diffusion::Solver::Ddim;
  // Every window is kept (the eq. 6 score is measured below, over all transitions).
  JointBaselineWith<NetworkRef, filter::AcceptAll> gen({sch, NetworkRef(m.net), mask::HistoryPrefix{1}, order::Joint{}, filter::AcceptAll{},
                                                        guidance::ClassifierFree{m.config.diffusion.guidance_weight}},
                                                       diffusion::TimestepPlan::strided(K, o.ddim_steps), so, o.seed);
  diffusion::Batch<float> batch;
  batch.data = x0;
  batch.condition.value = m.condition_value(B, o.target);
  auto g = gen.generate(batch);
  m.obs_norm.restore_constant_features(g.samples);
  auto every = filter::dynamics_consistency(m.inverse, m.transition, m.config.augment.epsilon);
  every.scope = Consistency::Scope::All;
  diffusion::Batch<float> as_input;
  as_input.data = x0;
  const auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / double(v.size());
  };
  nlohmann::json gj = {{"ddim_steps", o.ddim_steps}, {"target", o.target},
                       {"filter_score_generated", mean(every.score(g.samples, as_input))},
                       {"filter_score_real", mean(every.score(x0, as_input))}};
  const std::string env = detail::env_of(d.meta);
  if (env == "spread" || env == "safe-spread" || env == "tag" || env == "world") {
    gj["kinematic_residual_generated"] = detail::kinematic_residual(m.obs_norm.unnormalize(g.samples), env::mpe::kDt);
    gj["kinematic_residual_real"] = detail::kinematic_residual(m.obs_norm.unnormalize(x0), env::mpe::kDt);
  }
  // With the CBF condition: the same noise with the condition off, to see what the condition changes.
  std::optional<Tensor<float>> off;
  if (m.has_cbf() && m.config.safety.conditions_on_cbf()) {
    batch.condition.value = m.condition_value(B, o.target, 0.0);
    auto g0 = gen.generate(batch);
    m.obs_norm.restore_constant_features(g0.samples);
    off = std::move(g0.samples);
  }
  if (m.has_cbf()) {
    const safety::CbfLossOptions co = m.cbf_options();
    // Shares of agent windows satisfying eq. 8 (h >= 0 and dh/dt + alpha h >= 0 throughout), and h >= 0 alone.
    const auto rates = [&](const Tensor<float>& w, const std::string& suffix) {
      const Tensor<float> y = safety::cbf_satisfaction<float>(m.barrier, w, nullptr, co);
      const Tensor<float> h = m.barrier.values(w.reshape({w.dim(0) * w.dim(1) * w.dim(2), w.dim(3)}));
      const index_t N = w.dim(0), H = w.dim(1);
      index_t sat = 0, nonneg = 0;
      for (index_t b = 0; b < N; ++b)
        for (index_t a = 0; a < A; ++a) {
          bool ok = true;
          for (index_t t = 0; t < H; ++t) ok = ok && h[(b * H + t) * A + a] >= 0;
          nonneg += ok ? 1 : 0;
          sat += y(b, a) >= 0 ? 1 : 0;
        }
      gj["cbf_satisfied_" + suffix] = double(sat) / double(N * A);
      gj["cbf_h_nonnegative_" + suffix] = double(nonneg) / double(N * A);
    };
    rates(x0, "real");
    rates(g.samples, "generated");
    if (off) rates(*off, "generated_condition_0");
  }
  if (!d.costs.empty() && detail::has_window_costs(env)) {
    // Shares of agent windows with no step in the dangerous set (Definition 3, from each agent's own
    // observations): the "cost" label of the CBF condition, and the safety the planner is after.
    const auto safe = [&](const Tensor<float>& w, const std::string& suffix) {
      const Tensor<float> c = detail::window_costs(d.meta, m.obs_norm.unnormalize(w));
      const index_t N = c.dim(0), H = c.dim(1);
      index_t n_safe = 0;
      std::vector<double> by_step(static_cast<std::size_t>(H), 0.0);  // share of agents in danger at step t
      for (index_t b = 0; b < N; ++b)
        for (index_t a = 0; a < A; ++a) {
          bool ok = true;
          for (index_t t = 0; t < H; ++t) {
            ok = ok && c(b, t, a) == 0.0f;
            by_step[static_cast<std::size_t>(t)] += c(b, t, a) / double(N * A);
          }
          n_safe += ok ? 1 : 0;
        }
      gj["safe_windows_" + suffix] = double(n_safe) / double(N * A);
      gj["dangerous_by_step_" + suffix] = by_step;
    };
    safe(x0, "real");
    safe(g.samples, "generated");
    if (off) safe(*off, "generated_condition_0");
  }
  r["generation"] = gj;
  return r;
}

}  // namespace coordiff::mastars
