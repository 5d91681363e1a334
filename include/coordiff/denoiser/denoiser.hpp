#pragma once
// The Denoiser family: the network (or analytic function) that predicts the noise or the clean sample
// from a noisy batch. Requirements and a minimal user denoiser: docs/concepts.md.
#include <concepts>

#include "coordiff/core/condition.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::denoiser {

/// What the denoiser's output means: the noise eps (DDPM, Ho et al. 2020) or the clean sample x_0.
enum class Prediction { Epsilon, Sample };

inline const char* prediction_name(Prediction p) { return p == Prediction::Epsilon ? "epsilon" : "sample"; }

/// A denoiser maps (x_k [B, H, A, F], k [B] (the diffusion step of each sample, as T), condition) to a
/// prediction shaped like x_k. It is called through a non-const reference (networks cache activations).
template <class D>
concept Denoiser = requires { typename D::value_type; } &&
                   requires(D& d, const Tensor<typename D::value_type>& x, const Tensor<typename D::value_type>& k,
                            const Condition<typename D::value_type>& c) {
                     { d(x, k, c) } -> std::same_as<Tensor<typename D::value_type>>;
                   };

template <class D>
constexpr bool check_denoiser() {
  static_assert(requires { typename D::value_type; },
                "coordiff Denoiser: missing member type `value_type` (float or double; see docs/concepts.md#denoiser)");
  if constexpr (requires { typename D::value_type; }) {
    using T = typename D::value_type;
    static_assert(requires(D& d, const Tensor<T>& x, const Tensor<T>& k, const Condition<T>& c) {
      { d(x, k, c) } -> std::same_as<Tensor<T>>;
    }, "coordiff Denoiser: missing `Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& k, const Condition<T>& c)`"
       " (see docs/concepts.md#denoiser)");
  }
  return true;
}

/// Wraps any callable f(x, k, condition) -> Tensor<T> (a lambda, an analytic predictor) as a Denoiser.
template <class T, class F>
class Function {
 public:
  using value_type = T;
  explicit Function(F f) : f_(std::move(f)) {}
  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& k, const Condition<T>& c) { return f_(x, k, c); }

 private:
  F f_;
};

template <class T, class F>
Function<T, F> from_function(F f) {
  return Function<T, F>(std::move(f));
}

/// Borrows a denoiser owned elsewhere (e.g. a trained network shared by several generators).
template <Denoiser D>
class Ref {
 public:
  using value_type = typename D::value_type;
  explicit Ref(D& d) : d_(&d) {}
  Tensor<value_type> operator()(const Tensor<value_type>& x, const Tensor<value_type>& k,
                                const Condition<value_type>& c) {
    return (*d_)(x, k, c);
  }
  D& get() const { return *d_; }

 private:
  D* d_;
};

}  // namespace coordiff::denoiser
