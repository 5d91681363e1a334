#pragma once
// Weight initialisation matching PyTorch's defaults, drawn from a Philox stream.
#include <cmath>

#include "coordiff/core/philox.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

/// PyTorch's default for Linear/Conv: kaiming_uniform(a=sqrt(5)) on the weight and U(-1/sqrt(fan_in),
/// 1/sqrt(fan_in)) on the bias; both reduce to U(-b, b) with b = 1/sqrt(fan_in).
template <class T>
void init_uniform_fan_in(Parameter<T>& p, index_t fan_in, Rng& rng) {
  const T bound = fan_in > 0 ? T(1) / std::sqrt(static_cast<T>(fan_in)) : T(0);
  p.value = rng.uniform<T>(p.value.shape(), -bound, bound);
  p.grad = Tensor<T>::zeros_like(p.value);
}

}  // namespace coordiff::nn
