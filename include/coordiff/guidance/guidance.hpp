#pragma once
// The Guidance family: how the denoiser's output is formed at a reverse step (plain, classifier-free,
// cost-gradient). A guidance policy receives the denoiser as a callable, so it can call it more than
// once. Requirements and a minimal user guidance: docs/concepts.md.
#include <cmath>
#include <concepts>

#include "coordiff/denoiser/denoiser.hpp"

namespace coordiff::guidance {

/// Where in the plan a model call happens.
struct StepInfo {
  index_t step = 0;          ///< training step k of the input x_k
  double alpha_bar = 1.0;    ///< abar_k
  denoiser::Prediction prediction = denoiser::Prediction::Epsilon;
};

/// model_output(denoiser, x_k, k, condition, info) -> the (guided) prediction, in the denoiser's
/// parameterisation (info.prediction).
template <class G, class D>
concept Guidance = denoiser::Denoiser<D> &&
                   requires(const G& g, D& d, const Tensor<typename D::value_type>& x,
                            const Tensor<typename D::value_type>& k, const Condition<typename D::value_type>& c,
                            const StepInfo& info) {
                     { g.model_output(d, x, k, c, info) } -> std::same_as<Tensor<typename D::value_type>>;
                   };

template <class G, class D>
constexpr bool check_guidance() {
  using T = typename D::value_type;
  static_assert(requires(const G& g, D& d, const Tensor<T>& x, const Tensor<T>& k, const Condition<T>& c,
                         const StepInfo& info) {
    { g.model_output(d, x, k, c, info) } -> std::same_as<Tensor<T>>;
  }, "coordiff Guidance: missing `template <class D> Tensor<T> model_output(D& denoiser, const Tensor<T>& x, const "
     "Tensor<T>& k, const Condition<T>& c, const guidance::StepInfo&) const` (see docs/concepts.md#guidance)");
  return true;
}

/// eps <-> x0 under x_k = sqrt(abar) x0 + sqrt(1 - abar) eps (DDPM eq. 4).
template <class T>
Tensor<T> epsilon_from_sample(const Tensor<T>& x, const Tensor<T>& x0, double alpha_bar) {
  Tensor<T> eps(x.shape());
  const double a = std::sqrt(alpha_bar), s = std::sqrt(1.0 - alpha_bar);
  for (index_t i = 0; i < x.size(); ++i) eps[i] = static_cast<T>((x[i] - a * x0[i]) / s);
  return eps;
}
template <class T>
Tensor<T> sample_from_epsilon(const Tensor<T>& x, const Tensor<T>& eps, double alpha_bar) {
  Tensor<T> x0(x.shape());
  const double a = std::sqrt(alpha_bar), s = std::sqrt(1.0 - alpha_bar);
  for (index_t i = 0; i < x.size(); ++i) x0[i] = static_cast<T>((x[i] - s * eps[i]) / a);
  return x0;
}

}  // namespace coordiff::guidance
