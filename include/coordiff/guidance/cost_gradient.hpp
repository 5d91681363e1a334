#pragma once
// Gradient guidance from a differentiable cost c(x) to be made small (Diffuser, Janner et al. 2022,
// section 3.2; the CBF and MAPF constraint guidance build on it). Sampling from p(x) exp(-s c(x))
// adds -s grad c to the score; since eps = -sqrt(1 - abar) score (DDPM), the guided prediction is
//   eps~ = eps + s sqrt(1 - abar) grad_x c.
// The cost is evaluated either on the noisy input x_k, or (default) on the predicted clean sample
// x0^ = (x_k - sqrt(1 - abar) eps)/sqrt(abar), whose gradient is carried back to x_k with
// d x0^/d x_k ~ 1/sqrt(abar) (the denoiser's Jacobian is not formed).
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
    double chain = 1.0;
    CostValue<T> cv;
    if (at == CostAt::Noisy) {
      cv = cost.value_and_gradient(x);
    } else {
      cv = cost.value_and_gradient(sample_from_epsilon(x, eps, info.alpha_bar));
      chain = 1.0 / std::sqrt(info.alpha_bar);
    }
    require_shape(cv.gradient.shape(), x.shape(), "guidance::CostGradient: cost gradient");
    const double f = scale * std::sqrt(1.0 - info.alpha_bar) * chain;
    for (index_t i = 0; i < eps.size(); ++i) eps[i] = static_cast<T>(eps[i] + f * cv.gradient[i]);
    return eps_param ? eps : sample_from_epsilon(x, eps, info.alpha_bar);
  }
};

template <class Cost>
CostGradient<Cost> cost_gradient(Cost cost, double scale, CostAt at = CostAt::PredictedClean) {
  return CostGradient<Cost>{std::move(cost), scale, at};
}

}  // namespace coordiff::guidance
