#pragma once
// Training the MASTARS models on an offline dataset (paper 000 sec. 3 and appendix C.2):
//   train_diffusion: the return-conditioned MultiAgentUNet on windows of H normalised observations of all
//     agents, each agent conditioned on its discounted return-to-go / returns_scale, with condition
//     dropout for classifier-free guidance (eq. 10); MADiff's optimiser recipe; the EMA weights are kept.
//   train_auxiliary: inverse dynamics, transition and reward models (eq. 11) and the TD value (eq. 12),
//     each on 90 % of the transitions, with its held-out error in the report.
#include <ostream>

#include <nlohmann/json.hpp>

#include "coordiff/auxiliary/auxiliary.hpp"
#include "coordiff/data/windows.hpp"
#include "coordiff/diffusion/trainer.hpp"
#include "coordiff/mastars/model.hpp"
#include "coordiff/schedule/cosine.hpp"

namespace coordiff::mastars {

/// The diffusion training windows of a (raw) dataset: normalised observations and returns.
template <class T>
diffusion::TrajectoryDataset<T> diffusion_windows(const Model<T>& m, const data::OfflineDataset<T>& d) {
  const auto& c = m.config.diffusion;
  data::WindowOptions w;
  w.horizon = c.horizon, w.pad = true, w.discount = c.discount, w.returns_scale = c.returns_scale;
  data::OfflineDataset<T> n = m.normalized(d);
  auto windows = data::make_windows(n, w);
  return {std::move(windows.observations), std::move(windows.returns)};
}

/// Fits the normalisers if the model has none yet, then trains the denoiser; returns its report (also
/// stored under model.report["diffusion"]).
template <class T>
nlohmann::json train_diffusion(Model<T>& m, const data::OfflineDataset<T>& d, std::ostream* log = nullptr) {
  if (m.obs_norm.features() <= 0) m.fit_normalizers(d);
  const auto& c = m.config.diffusion;
  auto windows = diffusion_windows(m, d);
  const index_t n_windows = windows.size();
  diffusion::TrainerOptions opt;
  opt.batch_size = c.batch_size, opt.steps = c.train_steps, opt.lr = c.lr, opt.grad_accumulate = c.grad_accumulate;
  opt.ema_decay = c.ema_decay, opt.ema_every = c.ema_every, opt.ema_start = c.ema_start, opt.seed = c.seed;
  opt.loss.condition_dropout = c.condition_dropout;
  opt.log_every = std::max<index_t>(1, c.train_steps / 20);
  opt.architecture = "coordiff::nn::MultiAgentUNet (MASTARS diffusion model)";
  diffusion::Trainer trainer(m.net, schedule::Cosine(c.diffusion_steps), std::move(windows), opt);
  const auto history = trainer.train(log);
  trainer.copy_ema_to(m.net);
  nlohmann::json r = {{"windows", n_windows},
                      {"steps", c.train_steps},
                      {"seconds", history.seconds},
                      {"logged_steps", history.logged_steps},
                      {"logged_loss", history.logged_loss}};
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
