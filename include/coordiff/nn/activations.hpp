#pragma once
// Pointwise activations: free kernels on raw arrays (for fused blocks) and small modules around them.
#include <cmath>
#include <string>

#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

namespace detail {
template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
}  // namespace detail

/// Mish (Misra 2019): x * tanh(softplus(x)). With e = exp(x) and n = e (e + 2),
/// tanh(log(1 + e)) = ((1 + e)^2 - 1)/((1 + e)^2 + 1) = n/(n + 2): one exp instead of exp, log1p and
/// tanh (Mish dominated the U-Net's non-GEMM time). Beyond x = 20, tanh(softplus(x)) = 1 to fp precision
/// (PyTorch's softplus threshold), which also keeps e^2 finite; below x = -80 |mish(x)| < 1e-33 is
/// flushed to 0, avoiding exp's slow underflow path.
template <class T>
void mish_forward(const T* x, T* y, index_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (index_t i = 0; i < n; ++i) {
    const T v = x[i];
    if (v > T(20) || v < T(-80)) {
      y[i] = v > T(0) ? v : T(0);
      continue;
    }
    const T e = std::exp(v), m = e * (e + T(2));
    y[i] = v * m / (m + T(2));
  }
}
/// d mish/dx = tanh(sp(x)) + x sech^2(sp(x)) sigmoid(x) = n/(n + 2) + x * 4 e (1 + e)/(n + 2)^2.
template <class T>
void mish_backward(const T* x, const T* dy, T* dx, index_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (index_t i = 0; i < n; ++i) {
    const T v = x[i];
    if (v > T(20) || v < T(-80)) {
      dx[i] = v > T(0) ? dy[i] : T(0);
      continue;
    }
    const T e = std::exp(v), m = e * (e + T(2)), d = m + T(2);
    dx[i] = dy[i] * (m / d + v * T(4) * e * (T(1) + e) / (d * d));
  }
}
/// SiLU / swish: x * sigmoid(x).
template <class T>
void silu_forward(const T* x, T* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = x[i] * detail::sigmoid(x[i]);
}
template <class T>
void silu_backward(const T* x, const T* dy, T* dx, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const T s = detail::sigmoid(x[i]);
    dx[i] = dy[i] * (s + x[i] * s * (T(1) - s));
  }
}
template <class T>
void relu_forward(const T* x, T* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}
/// Subgradient 0 at x == 0, as PyTorch.
template <class T>
void relu_backward(const T* x, const T* dy, T* dx, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const T g = dy[i];  // loaded unconditionally, so the select vectorises
    dx[i] = x[i] > T(0) ? g : T(0);
  }
}

enum class Activation { ReLU, Mish, SiLU };

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::ReLU: return "ReLU";
    case Activation::Mish: return "Mish";
    case Activation::SiLU: return "SiLU";
  }
  return "?";
}

template <class T>
void activation_forward(Activation a, const T* x, T* y, index_t n) {
  switch (a) {
    case Activation::ReLU: relu_forward(x, y, n); break;
    case Activation::Mish: mish_forward(x, y, n); break;
    case Activation::SiLU: silu_forward(x, y, n); break;
  }
}
template <class T>
void activation_backward(Activation a, const T* x, const T* dy, T* dx, index_t n) {
  switch (a) {
    case Activation::ReLU: relu_backward(x, dy, dx, n); break;
    case Activation::Mish: mish_backward(x, dy, dx, n); break;
    case Activation::SiLU: silu_backward(x, dy, dx, n); break;
  }
}

/// Module wrapper of a pointwise activation; no parameters.
template <class T, Activation A>
class PointwiseActivation {
 public:
  void collect_parameters(ParameterList<T>&, const std::string&) {}
  Tensor<T> forward(const Tensor<T>& x) {
    Tensor<T> y(x.shape());
    activation_forward(A, x.data(), y.data(), x.size());
    if (grad_enabled()) input_ = x, cached_ = true;
    return y;
  }
  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, activation_name(A));
    require_shape(dy.shape(), input_.shape(), std::string(activation_name(A)) + "::backward dy");
    Tensor<T> dx(dy.shape());
    activation_backward(A, input_.data(), dy.data(), dx.data(), dy.size());
    return dx;
  }

 private:
  Tensor<T> input_;
  bool cached_ = false;
};

template <class T>
using Mish = PointwiseActivation<T, Activation::Mish>;
template <class T>
using SiLU = PointwiseActivation<T, Activation::SiLU>;
template <class T>
using ReLU = PointwiseActivation<T, Activation::ReLU>;

}  // namespace coordiff::nn
