#pragma once
// Training the MASTARS models on an offline dataset (paper 000 sec. 3 and appendix C.2):
//   train_diffusion: the return-conditioned MultiAgentUNet on windows of H normalised observations of all
//     agents, each agent conditioned on its discounted return-to-go / returns_scale, with condition
//     dropout for classifier-free guidance (eq. 10); MADiff's optimiser recipe; the EMA weights are kept.
//   train_barrier: the decentralised CBF of paper 001 (eq. 12) on datasets with costs; with
//     safety.condition "cbf_return" each window is also conditioned on its CBF satisfaction (eq. 10);
//   train_auxiliary: inverse dynamics, transition and reward models (eq. 11) and the TD value (eq. 12),
//     each on 90 % of the transitions, with its held-out error in the report.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <ostream>

#include <nlohmann/json.hpp>

#include "coordiff/auxiliary/auxiliary.hpp"
#include "coordiff/data/windows.hpp"
#include "coordiff/diffusion/trainer.hpp"
#include "coordiff/mastars/model.hpp"
#include "coordiff/safety/cbf_data.hpp"
#include "coordiff/safety/expectile_value.hpp"
#include "coordiff/safety/trajectory_condition.hpp"
#include "coordiff/schedule/cosine.hpp"

namespace coordiff::mastars {

namespace detail {
/// Agent-wise transitions of a normalised dataset for V_r / Q_r: z = o^i_t, a = a^i_t, r = (r^i_t - r_p c^i_t)
/// / returns_scale (eq. 13 in condition units), z' = o'^i_t (else o^i_{t+1}; the last step of an episode
/// without next observations is terminal).
template <class T>
safety::ValueData<T> expectile_data(const Model<T>& m, const data::OfflineDataset<T>& n, const data::OfflineDataset<T>& raw) {
  const auto& sc = m.config.safety;
  const double scale = m.config.diffusion.returns_scale;
  const index_t E = n.episodes(), A = n.agents(), O = n.obs_dim(), U = n.act_dim();
  index_t rows = 0;
  for (index_t e = 0; e < E; ++e) rows += n.episode_length(e) * A;
  safety::ValueData<T> v;
  v.z = Tensor<T>({rows, O}), v.z_next = Tensor<T>({rows, O}), v.action = Tensor<T>({rows, U}), v.reward = Tensor<T>({rows});
  v.done.assign(static_cast<std::size_t>(rows), 0);
  index_t r = 0;
  for (index_t e = 0; e < E; ++e) {
    const index_t len = n.episode_length(e);
    for (index_t t = 0; t < len; ++t)
      for (index_t a = 0; a < A; ++a, ++r) {
        const bool has_next = !n.next_observations.empty() || t + 1 < len;
        for (index_t f = 0; f < O; ++f) {
          v.z(r, f) = n.observations(e, t, a, f);
          v.z_next(r, f) = !n.next_observations.empty() ? n.next_observations(e, t, a, f)
                           : has_next                   ? n.observations(e, t + 1, a, f)
                                                        : n.observations(e, t, a, f);
        }
        for (index_t u = 0; u < U; ++u) v.action(r, u) = n.actions(e, t, a, u);
        const double cost = raw.costs.empty() ? 0.0 : double(raw.costs(e, t, a));
        v.reward[r] = static_cast<T>((double(raw.rewards(e, t, a)) - sc.cost_penalty * cost) / scale);
        v.done[static_cast<std::size_t>(r)] = (n.terminals(e, t) != T(0) || !has_next) ? 1 : 0;
      }
  }
  return v;
}

/// Replaces each window's return-to-go with sum_{j < H-1} gamma^j r~_{s+j} + gamma^(H-1) V_r(o_{s+H-1})
/// (r~ the rewards of n, already penalised by eq. 13, / returns_scale; no bootstrap when the window reaches
/// past the episode's end or a terminal).
template <class T>
void expectile_returns(const Model<T>& m, const data::OfflineDataset<T>& n, data::Windows<T>& w) {
  require<ConfigError>(m.has_return_value(), "mastars: safety.return_value 'expectile' needs V_r trained first (train_return_value)");
  const auto& c = m.config.diffusion;
  const index_t N = w.returns.dim(0), A = w.returns.dim(1), H = c.horizon, O = n.obs_dim();
  Tensor<T> last({N * A, O});
  for (index_t k = 0; k < N; ++k)
    for (index_t a = 0; a < A; ++a)
      for (index_t f = 0; f < O; ++f) last(k * A + a, f) = w.observations(k, H - 1, a, f);
  Tensor<T> v;
  {
    nn::NoGradGuard no_grad;
    v = m.return_value.values(last);
  }
  for (index_t k = 0; k < N; ++k) {
    const index_t e = static_cast<index_t>(w.origin(k, 0)), s = static_cast<index_t>(w.origin(k, 1));
    const index_t len = n.episode_length(e);
    for (index_t a = 0; a < A; ++a) {
      double R = 0, g = 1;
      bool terminal = false;
      for (index_t t = s; t < std::min(s + H - 1, len) && !terminal; ++t, g *= c.discount) {
        R += g * double(n.rewards(e, t, a)) / c.returns_scale;  // n's rewards already carry eq. 13's penalty
        terminal = n.terminals(e, t) != T(0);
      }
      if (!terminal && s + H - 1 < len) R += g * double(v[k * A + a]);
      w.returns(k, a) = static_cast<T>(R);
    }
  }
}
}  // namespace detail

/// The diffusion training windows of a (raw) dataset: normalised observations and their condition, each
/// agent's return-to-go [N, A] or, with safety.condition "cbf_return", [N, A, 2] = (CBF satisfaction in
/// {0, 1}, return-to-go) (paper 001 eq. 10). With safety.cost_penalty r_p > 0 the return counts r - r_p at
/// every step with a cost (eq. 13).
template <class T>
diffusion::TrajectoryDataset<T> diffusion_windows(const Model<T>& m, const data::OfflineDataset<T>& d) {
  const auto& c = m.config.diffusion;
  const auto& sc = m.config.safety;
  data::WindowOptions w;
  w.horizon = c.horizon, w.pad = true, w.discount = c.discount, w.returns_scale = c.returns_scale;
  data::OfflineDataset<T> n = m.normalized(d);
  if (sc.cost_penalty > 0) {
    require<ConfigError>(!d.costs.empty(), "mastars: safety.cost_penalty is set but the dataset has no costs");
    for (index_t i = 0; i < n.rewards.size(); ++i) n.rewards[i] = static_cast<T>(n.rewards[i] - sc.cost_penalty * d.costs[i]);
  }
  auto windows = data::make_windows(n, w);
  if (sc.expectile_return()) detail::expectile_returns(m, n, windows);
  if (!sc.conditions_on_cbf()) return {std::move(windows.observations), std::move(windows.returns)};
  require<ConfigError>(!d.costs.empty(), "mastars: safety.condition 'cbf_return' needs a dataset with costs");
  const index_t N = windows.returns.dim(0), A = windows.returns.dim(1), H = c.horizon;
  // A window's CBF satisfaction: eq. 8 with the learned CBF on every step (>= 0: the window satisfies
  // eq. 7's conditions), or, with cbf_label "cost", no step of the window in the dangerous set.
  Tensor<T> satisfied({N, A});
  if (sc.cbf_label == "barrier") {
    require<ConfigError>(m.has_cbf(), "mastars: safety.cbf_label 'barrier' needs the model's CBF trained first");
    const safety::CbfLossOptions o = m.cbf_options();  // eq. 8 uses its alpha and dt, not the margin
    const index_t chunk = 4096;
    for (index_t begin = 0; begin < N; begin += chunk) {
      const index_t end = std::min(N, begin + chunk);
      const Tensor<T> part = windows.observations.view().slice(0, begin, end).contiguous();
      const Tensor<T> y = safety::cbf_satisfaction<T>(m.barrier, part, nullptr, o);
      for (index_t i = 0; i < y.size(); ++i) satisfied[begin * A + i] = y[i] >= T(0) ? T(1) : T(0);
    }
  } else {
    for (index_t k = 0; k < N; ++k) {
      const index_t e = static_cast<index_t>(windows.origin(k, 0)), s = static_cast<index_t>(windows.origin(k, 1));
      const index_t len = d.episode_length(e);
      for (index_t a = 0; a < A; ++a) {
        bool safe = true;  // o_t is dangerous when the step into it had a cost (costs[t - 1])
        for (index_t t = std::max<index_t>(s, 1); t < std::min(s + H, len); ++t) safe = safe && d.costs(e, t - 1, a) == T(0);
        satisfied(k, a) = safe ? T(1) : T(0);
      }
    }
  }
  Tensor<T> y({N, A, 2});
  for (index_t i = 0; i < N * A; ++i) y[2 * i] = satisfied[i], y[2 * i + 1] = windows.returns[i];
  return {std::move(windows.observations), std::move(y)};
}

/// Trains the model's CBF (paper 001 eq. 12) on the normalised observations of a dataset with costs, the
/// last safety.heldout_fraction of its episodes held out; returns the report (also model.report["cbf"]):
/// the loss and the held-out fraction of safe rows with h >= 0, dangerous rows with h < 0 and safe
/// transitions with dh/dt + alpha h >= 0.
template <class T>
nlohmann::json train_barrier(Model<T>& m, const data::OfflineDataset<T>& d, std::ostream* log = nullptr) {
  if (m.obs_norm.features() <= 0) m.fit_normalizers(d);
  const auto& sc = m.config.safety;
  const data::OfflineDataset<T> n = m.normalized(d);
  const index_t E = d.episodes();
  const index_t held = std::min<index_t>(E - 1, static_cast<index_t>(std::floor(sc.heldout_fraction * static_cast<double>(E))));
  const auto train = safety::cbf_data(n, 0, E - held);
  safety::CbfTrainOptions o;
  o.steps = sc.cbf_steps, o.batch_size = sc.cbf_batch_size, o.lr = sc.cbf_lr, o.seed = sc.seed;
  o.loss = m.cbf_options();
  const auto t0 = std::chrono::steady_clock::now();
  const auto history = safety::train_cbf(m.barrier, train, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto report_of = [&](const safety::CbfData<T>& rows) {
    const auto r = safety::evaluate_cbf(m.barrier, rows, o.loss);
    return nlohmann::json{{"safe_rows", r.safe_rows}, {"safe_with_h_nonnegative", r.safe_satisfied},
                          {"dangerous_rows", r.unsafe_rows}, {"dangerous_with_h_negative", r.unsafe_satisfied},
                          {"transitions", r.transitions}, {"transitions_satisfied", r.derivative_satisfied}};
  };
  nlohmann::json r = {{"steps", sc.cbf_steps}, {"seconds", seconds},
                      {"first_loss", history.empty() ? 0.0 : history.front()},
                      {"last_loss", history.empty() ? 0.0 : history.back()}, {"train", report_of(train)}};
  if (held > 0) r["heldout"] = report_of(safety::cbf_data(n, E - held, E));
  if (log)
    *log << "cbf: eq. 12 loss " << r["first_loss"].get<double>() << " -> " << r["last_loss"].get<double>() << " in "
         << sc.cbf_steps << " steps (" << seconds << " s)\n";
  m.report["cbf"] = r;
  return r;
}

/// Trains V_r / Q_r (paper 001 eqs. 15-16) on the agent-wise transitions of a dataset, with eq. 13's
/// penalised rewards in condition units; returns the report (also model.report["return_value"]).
template <class T>
nlohmann::json train_return_value(Model<T>& m, const data::OfflineDataset<T>& d, std::ostream* log = nullptr) {
  if (m.obs_norm.features() <= 0) m.fit_normalizers(d);
  if (m.config.safety.cost_penalty > 0)
    require<ConfigError>(!d.costs.empty(), "mastars: safety.cost_penalty is set but the dataset has no costs");
  const data::OfflineDataset<T> n = m.normalized(d);
  const auto data = detail::expectile_data(m, n, d);
  const auto t0 = std::chrono::steady_clock::now();
  const auto history = m.return_value.train(data);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Tensor<T> v = m.return_value.values(data.z);
  const auto o = m.expectile_options();
  double mean = 0, mean_abs = 0, r_max = 0;
  for (T x : v) mean += double(x) / double(v.size()), mean_abs += std::abs(double(x)) / double(v.size());
  for (T x : data.reward) r_max = std::max(r_max, std::abs(double(x)));
  // |V| <= max |r| / (1 - gamma) for any policy: far above it, the bootstrap has diverged.
  if (o.gamma < 1)
    require<NumericError>(std::isfinite(mean_abs) && mean_abs <= 10 * r_max / (1 - o.gamma) + 1e-6, "mastars: V_r diverged (mean |V_r| ",
                          mean_abs, " against the bound max |r| / (1 - gamma) = ", r_max / (1 - o.gamma), ")");
  nlohmann::json r = {{"steps", o.steps}, {"tau", o.tau}, {"seconds", seconds}, {"transitions", data.size()},
                      {"last_v_loss", history.empty() ? 0.0 : history.back().first},
                      {"last_q_loss", history.empty() ? 0.0 : history.back().second}, {"mean_value", mean}};
  if (log)
    *log << "return value: eqs. 15-16, tau " << o.tau << ", " << o.steps << " steps, mean V_r " << mean << " (" << seconds
         << " s)\n";
  m.report["return_value"] = r;
  return r;
}

/// Fits the normalisers if the model has none yet and trains what the diffusion windows depend on: the CBF
/// (it labels the windows with cbf_label "barrier", and guides and filters safe generation) on datasets with
/// costs, and V_r when safety.return_value is "expectile". train_diffusion calls it; a caller that saves
/// the model before a long diffusion run calls it first, so that a resumed run sees the same windows.
template <class T>
void train_diffusion_prerequisites(Model<T>& m, const data::OfflineDataset<T>& d, std::ostream* log = nullptr) {
  if (m.obs_norm.features() <= 0) m.fit_normalizers(d);
  if (!d.costs.empty() && !m.has_cbf()) train_barrier(m, d, log);
  if (m.config.safety.expectile_return() && !m.has_return_value()) train_return_value(m, d, log);
}

/// Checkpoints of a diffusion training run, so that a long run can stop and continue (e.g. across
/// sessions of a CPU job, or to extend a finished run to more steps).
struct DiffusionCheckpoints {
  std::filesystem::path path;  ///< the checkpoint file (weights, EMA, Adam moments, step, loss curve); empty = none
  index_t every = 0;           ///< steps between checkpoints; 0 = only at the end
  bool resume = false;         ///< continue from `path` when it exists (the data and minibatch layout must match)
};

/// Trains the denoiser (after train_diffusion_prerequisites) up to diffusion.train_steps steps, from the
/// checkpoint when `checkpoints.resume` is set and it exists; leaves the EMA weights in the model and
/// returns the report (also stored under model.report["diffusion"]).
template <class T>
nlohmann::json train_diffusion(Model<T>& m, const data::OfflineDataset<T>& d, std::ostream* log = nullptr,
                               const DiffusionCheckpoints& checkpoints = {}) {
  train_diffusion_prerequisites(m, d, log);
  const auto& c = m.config.diffusion;
  auto windows = diffusion_windows(m, d);
  const index_t n_windows = windows.size();
  diffusion::TrainerOptions opt;
  opt.batch_size = c.batch_size, opt.steps = c.train_steps, opt.lr = c.lr, opt.grad_accumulate = c.grad_accumulate;
  opt.ema_decay = c.ema_decay, opt.ema_every = c.ema_every, opt.ema_start = c.ema_start, opt.seed = c.seed;
  opt.loss.condition_dropout = c.condition_dropout;
  opt.log_every = std::max<index_t>(1, c.train_steps / 20);
  opt.architecture = "coordiff::nn::MultiAgentUNet (MASTARS diffusion model)";
  opt.checkpoint_path = checkpoints.path.string(), opt.checkpoint_every = checkpoints.every;
  diffusion::Trainer trainer(m.net, schedule::Cosine(c.diffusion_steps), std::move(windows), opt);
  index_t resumed_from = 0;
  if (checkpoints.resume && !checkpoints.path.empty() && std::filesystem::exists(checkpoints.path)) {
    resumed_from = static_cast<index_t>(trainer.resume(checkpoints.path).step);
    if (log) *log << "diffusion: resuming " << checkpoints.path.string() << " at step " << resumed_from << " of " << c.train_steps << "\n";
  }
  const auto history = trainer.train(log);
  trainer.copy_ema_to(m.net);
  nlohmann::json r = {{"windows", n_windows},
                      {"steps", std::max(c.train_steps, trainer.current_step())},
                      {"seconds", history.total_seconds},
                      {"logged_steps", history.logged_steps},
                      {"logged_loss", history.logged_loss}};
  if (resumed_from > 0) r["resumed_from"] = resumed_from;
  m.report["diffusion"] = r;
  return r;
}

namespace detail {
inline nlohmann::json fit_json(const auxiliary::FitReport& r) {
  return {{"train_mse", r.train_mse},       {"heldout_mse", r.heldout_mse},   {"heldout_variance", r.heldout_variance},
          {"relative_error", r.relative_error()}, {"train_rows", r.train_rows}, {"heldout_rows", r.heldout_rows},
          {"steps", r.steps},               {"seconds", r.seconds}};
}
}  // namespace detail

/// Fits the normalisers if the model has none yet, then the four auxiliary models; the report (held-out
/// errors; relative_error = held-out MSE / held-out target variance) is stored under
/// model.report["auxiliary"].
template <class T>
nlohmann::json train_auxiliary(Model<T>& m, const data::OfflineDataset<T>& d, std::ostream* log = nullptr) {
  if (m.obs_norm.features() <= 0) m.fit_normalizers(d);
  const auto& c = m.config.auxiliary;
  const auxiliary::Transitions<T> t = auxiliary::transitions_of(m.normalized(d));
  auxiliary::FitOptions fit;
  fit.steps = c.steps, fit.batch_size = c.batch_size, fit.lr = c.lr, fit.heldout_fraction = c.heldout_fraction;
  fit.seed = c.seed, fit.log_every = std::max<index_t>(1, c.steps / 10);
  nlohmann::json r;
  r["inverse_dynamics"] = detail::fit_json(m.inverse.fit(t, fit, log));
  r["transition"] = detail::fit_json(m.transition.fit(t, fit, log));
  r["reward"] = detail::fit_json(m.reward.fit(t, fit, log));
  auxiliary::ValueFitOptions vo;
  vo.fit = fit, vo.gamma = c.gamma, vo.tau = c.tau;
  const auto v = m.value.fit(t, vo, log);
  r["value"] = {{"heldout_td_mse", v.heldout_td_mse}, {"relative_td_error", v.relative_td_error},
                {"mean_abs_value", v.mean_abs_value}, {"train_rows", v.train_rows},
                {"heldout_rows", v.heldout_rows},     {"steps", v.steps},
                {"seconds", v.seconds}};
  r["transitions"] = t.size();
  m.report["auxiliary"] = r;
  return r;
}

}  // namespace coordiff::mastars
