#pragma once
// The denoiser training objective: DDPM's simple loss (Ho et al. 2020, eq. 14)
//   L = E_{k, x0, eps} || eps - eps_theta(sqrt(abar_k) x0 + sqrt(1 - abar_k) eps, k, c) ||^2
// with MADiff's additions (Zhu et al. 2024): classifier-free condition dropout drawn per (sample, agent),
// history-prefix conditioning (the first steps of every agent are pasted clean into x_k and excluded from
// the loss, as Diffuser's apply_conditioning + loss mask), optional per-entry weights, and the x0 target
// (predict_epsilon = False) as an alternative to eps.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <vector>

#include "coordiff/core/condition.hpp"
#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/diffusion/noise.hpp"
#include "coordiff/schedule/schedule.hpp"

namespace coordiff::diffusion {

struct LossOptions {
  /// The regression target: the noise eps (DDPM eq. 14) or the clean sample x0.
  denoiser::Prediction prediction = denoiser::Prediction::Epsilon;
  /// Probability that an agent's condition is replaced by the null condition (classifier-free guidance,
  /// Ho & Salimans 2022); MADiff uses 0.25.
  double condition_dropout = 0.25;
  /// The first steps of every agent are pasted clean into x_k and excluded from the loss (MADiff's
  /// history conditioning: apply_conditioning + loss mask).
  index_t history_steps = 0;

  void validate() const {
    require<ConfigError>(condition_dropout >= 0 && condition_dropout <= 1,
                         "LossOptions: condition_dropout must lie in [0, 1], got ", condition_dropout);
    require<ConfigError>(history_steps >= 0, "LossOptions: history_steps must be >= 0, got ", history_steps);
  }
};

/// One minibatch of clean trajectories.
template <class T>
struct TrainingBatch {
  Tensor<T> x0;            ///< [B, H, A, F]
  Condition<T> condition;  ///< value [B, A] or [B, A, C] optional; keep [B, A] optional (ANDed with the random dropout)
  Tensor<T> weight;        ///< optional [B, H, A] per-entry loss weight (>= 0), shared by the F features

  void validate() const {
    require<ShapeError>(x0.rank() == 4 && x0.size() > 0, "TrainingBatch: x0 must be a non-empty [B, H, A, F] tensor, got ",
                        to_string(x0.shape()));
    require_finite(x0, "TrainingBatch x0");
    const index_t B = x0.dim(0), H = x0.dim(1), A = x0.dim(2);
    require<ConfigError>(condition.keep.empty() || condition.has_value(),
                         "TrainingBatch: condition keep flags given without a condition value");
    condition.validate(B, A, "TrainingBatch");
    if (!weight.empty()) {
      require_shape(weight.shape(), {B, H, A}, "TrainingBatch weight");
      require_finite(weight, "TrainingBatch weight");
      for (index_t i = 0; i < weight.size(); ++i)
        require<NumericError>(weight[i] >= T(0), "TrainingBatch weight: entry ", i, " is negative (", weight[i], ")");
    }
  }
};

/// A network that can be trained by the loss below: forward(x [B,H,A,F], k [B] as T, returns [B,A] or
/// null, keep [B,A] or null) -> prediction [B,H,A,F], then backward(d loss / d prediction), which
/// accumulates parameter gradients (nn::MultiAgentUNet is one).
template <class N>
concept TrainableDenoiser =
    requires { typename N::value_type; } &&
    requires(N& n, const Tensor<typename N::value_type>& x, const Tensor<typename N::value_type>* c) {
      { n.forward(x, x, c, c) } -> std::same_as<Tensor<typename N::value_type>>;
      n.backward(x);
    };

/// The random draws and derived tensors of one loss evaluation.
template <class T>
struct NoisedBatch {
  std::vector<index_t> k;  ///< diffusion step of each sample, uniform on 0 .. K-1
  Tensor<T> time;          ///< k as T, [B] (the network's step input)
  Tensor<T> eps;           ///< standard normal noise [B, H, A, F]
  Tensor<T> x_k;           ///< the network input [B, H, A, F] (history steps pasted clean)
  Tensor<T> target;        ///< eps or x0, [B, H, A, F]
  Tensor<T> returns;       ///< condition value [B, A]; empty = unconditional
  Tensor<T> keep;          ///< 1 = condition used, 0 = dropped, [B, A]; empty iff `returns` is
  Tensor<T> weight;        ///< effective loss weight [B, H, A]: history mask times the batch's weight
};

/// Draws k, eps and the keep flags from `rng` (in that order) and forms x_k (DDPM eq. 4).
template <schedule::NoiseSchedule S, class T>
NoisedBatch<T> make_noised_batch(const S& schedule, const TrainingBatch<T>& batch, const LossOptions& options, Rng& rng) {
  options.validate();
  batch.validate();
  const index_t B = batch.x0.dim(0), H = batch.x0.dim(1), A = batch.x0.dim(2), F = batch.x0.dim(3);
  require<ConfigError>(options.history_steps < H, "LossOptions: history_steps ", options.history_steps,
                       " leaves no step of the horizon ", H, " in the loss");
  const index_t K = static_cast<index_t>(schedule.num_steps());
  require<ConfigError>(K >= 1, "training loss: the schedule has no diffusion steps");
  NoisedBatch<T> nb;
  nb.k.resize(static_cast<std::size_t>(B));
  nb.time = Tensor<T>({B});
  std::vector<double> abar(static_cast<std::size_t>(B));
  for (index_t b = 0; b < B; ++b) {
    const auto k = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(K)));
    nb.k[static_cast<std::size_t>(b)] = k;
    nb.time[b] = static_cast<T>(k);
    abar[static_cast<std::size_t>(b)] = static_cast<double>(schedule.alpha_bar(k));
  }
  nb.eps = rng.normal<T>(batch.x0.shape());
  nb.x_k = add_noise(batch.x0, nb.eps, abar);
  if (batch.condition.has_value()) {
    nb.returns = batch.condition.value;
    nb.keep = Tensor<T>({B, A});
    const double p_keep = 1.0 - options.condition_dropout;
    for (index_t i = 0; i < B * A; ++i) {
      const bool user_keep = batch.condition.keep.empty() || batch.condition.keep[i] != T(0);
      nb.keep[i] = (rng.uniform() < p_keep && user_keep) ? T(1) : T(0);
    }
  }
  nb.weight = batch.weight.empty() ? Tensor<T>({B, H, A}, T(1)) : batch.weight;
  const index_t row = A * F;  // entries of one step
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < options.history_steps; ++t) {
      const index_t off = (b * H + t) * row;
      for (index_t j = 0; j < row; ++j) nb.x_k[off + j] = batch.x0[off + j];
      for (index_t a = 0; a < A; ++a) nb.weight[(b * H + t) * A + a] = T(0);
    }
  nb.target = options.prediction == denoiser::Prediction::Epsilon ? nb.eps : batch.x0;
  return nb;
}

/// Weighted mean squared error  L = sum_i w_i (pred_i - target_i)^2 / sum_i w_i  over all entries of
/// [B, H, A, F] (w [B, H, A] broadcast over F): with unit weights this is the plain mean of DDPM eq. 14,
/// and masked entries do not change the scale of the loss. When `grad` is given it receives
/// dL/dpred = 2 w (pred - target) / sum w, times `grad_scale`.
template <class T>
double weighted_mse(const Tensor<T>& pred, const Tensor<T>& target, const Tensor<T>& weight, Tensor<T>* grad = nullptr,
                    double grad_scale = 1.0) {
  require<ShapeError>(pred.rank() == 4, "weighted_mse: expected a prediction [B, H, A, F], got ", to_string(pred.shape()));
  require_shape(target.shape(), pred.shape(), "weighted_mse: target");
  const index_t B = pred.dim(0), H = pred.dim(1), A = pred.dim(2), F = pred.dim(3);
  require_shape(weight.shape(), {B, H, A}, "weighted_mse: weight");
  double wsum = 0;
  for (index_t i = 0; i < weight.size(); ++i) wsum += static_cast<double>(weight[i]);
  wsum *= static_cast<double>(F);
  require<ConfigError>(wsum > 0, "weighted_mse: every loss weight is zero (nothing to train on)");
  if (grad) grad->resize(pred.shape(), false);
  double sum = 0;
  for (index_t e = 0; e < B * H * A; ++e) {
    const double w = static_cast<double>(weight[e]);
    for (index_t f = 0; f < F; ++f) {
      const index_t i = e * F + f;
      const double d = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
      sum += w * d * d;
      if (grad) (*grad)[i] = static_cast<T>(grad_scale * 2.0 * w * d / wsum);
    }
  }
  return sum / wsum;
}

/// Forward pass on prepared inputs, the loss, and backward with its exact gradient (scaled by
/// `grad_scale`, e.g. 1/n for n accumulated minibatches). Returns the loss.
template <TrainableDenoiser N>
double loss_and_backward(N& net, const NoisedBatch<typename N::value_type>& nb, double grad_scale = 1.0) {
  using T = typename N::value_type;
  const bool cond = !nb.returns.empty();
  const Tensor<T> pred = net.forward(nb.x_k, nb.time, cond ? &nb.returns : nullptr, cond ? &nb.keep : nullptr);
  require_shape(pred.shape(), nb.x_k.shape(), "training loss: network output");
  Tensor<T> grad;
  const double loss = weighted_mse(pred, nb.target, nb.weight, &grad, grad_scale);
  require<NumericError>(std::isfinite(loss), "training loss: the loss is not finite (", loss, ")");
  net.backward(grad);
  return loss;
}

/// One minibatch of the training objective: draws k ~ U{0..K-1} per sample, eps ~ N(0, I) and the
/// per-(sample, agent) keep flags ~ Bernoulli(1 - condition_dropout) from `rng`, runs forward and
/// backward (parameter gradients accumulate; zero them between optimisation steps) and returns the loss.
template <schedule::NoiseSchedule S, TrainableDenoiser N>
double training_loss(N& net, const S& schedule, const TrainingBatch<typename N::value_type>& batch,
                     const LossOptions& options, Rng& rng, double grad_scale = 1.0) {
  return loss_and_backward(net, make_noised_batch(schedule, batch, options, rng), grad_scale);
}

}  // namespace coordiff::diffusion
