#pragma once
// Gradient guidance from a differentiable cost c(x) to be made small (Diffuser, Janner et al. 2022,
// section 3.2; the CBF and MAPF constraint guidance build on it). Sampling from p(x) exp(-s c(x))
// adds -s grad c to the score; since eps = -sqrt(1 - abar) score (DDPM), the guided prediction is
//   eps~ = eps + s sqrt(1 - abar) grad_x c.
// That is the Noisy mode: the cost is evaluated on x_k (classifier-guidance semantics; raw costs are not
// damped at high noise, so use it with x0 clipping). The default PredictedClean mode evaluates the cost
// on the predicted clean sample x0^ = (x_k - sqrt(1 - abar) eps)/sqrt(abar) and takes one gradient step
// of size `scale` on it, x0^ <- x0^ - s grad c(x0^) (the forward step of universal guidance, Bansal et
// al. 2023), i.e. eps~ = eps + s sqrt(abar)/sqrt(1 - abar) grad c(x0^): weak where the sample is mostly
// noise, and without the denoiser's Jacobian.
#include <cmath>
#include <concepts>
#include <utility>

#include "coordiff/guidance/guidance.hpp"

namespace coordiff::guidance {

template <class T>
struct CostValue {
  Tensor<T> value;     ///< [B] cost of each sample
  Tensor<T> gradient;  ///< d cost / d x, shaped like x
};

/// value_and_gradient(x [B, H, A, F]) -> CostValue.
template <class C, class T>
concept DifferentiableCost = requires(const C& c, const Tensor<T>& x) {
  { c.value_and_gradient(x) } -> std::same_as<CostValue<T>>;
};

enum class CostAt { Noisy, PredictedClean };

template <class Cost>
struct CostGradient {
  Cost cost;
  double scale = 1.0;
  CostAt at = CostAt::PredictedClean;

  template <denoiser::Denoiser D>
  Tensor<typename D::value_type> model_output(D& d, const Tensor<typename D::value_type>& x,
                                              const Tensor<typename D::value_type>& k,
                                              const Condition<typename D::value_type>& c, const StepInfo& info) const {
    using T = typename D::value_type;
    static_assert(DifferentiableCost<Cost, T>, "coordiff guidance::CostGradient: the cost needs `CostValue<T> "
                  "value_and_gradient(const Tensor<T>& x) const` (see docs/concepts.md#guidance)");
    const bool eps_param = info.prediction == denoiser::Prediction::Epsilon;
    const Tensor<T> out = d(x, k, c);
    Tensor<T> eps = eps_param ? out : epsilon_from_sample(x, out, info.alpha_bar);
    const bool noisy = at == CostAt::Noisy;
    const CostValue<T> cv = cost.value_and_gradient(noisy ? x : sample_from_epsilon(x, eps, info.alpha_bar));
    require_shape(cv.gradient.shape(), x.shape(), "guidance::CostGradient: cost gradient");
    const double f = noisy ? scale * std::sqrt(1.0 - info.alpha_bar)
                           : scale * std::sqrt(info.alpha_bar) / std::sqrt(1.0 - info.alpha_bar);
    for (index_t i = 0; i < eps.size(); ++i) eps[i] = static_cast<T>(eps[i] + f * cv.gradient[i]);
    return eps_param ? eps : sample_from_epsilon(x, eps, info.alpha_bar);
  }
};

template <class Cost>
CostGradient<Cost> cost_gradient(Cost cost, double scale, CostAt at = CostAt::PredictedClean) {
  return CostGradient<Cost>{std::move(cost), scale, at};
}

}  // namespace coordiff::guidance
