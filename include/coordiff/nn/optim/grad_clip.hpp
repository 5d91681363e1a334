#pragma once
// Gradient clipping with torch.nn.utils semantics.
#include <algorithm>
#include <cmath>
#include <limits>

#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn::optim {

/// torch.nn.utils.clip_grad_norm_: total norm over all gradients (norm_type 2, 1 or infinity); if it
/// exceeds max_norm, every gradient is scaled by max_norm / (total + 1e-6). Returns the total norm.
template <class T>
double clip_grad_norm(const ParameterList<T>& params, double max_norm,
                      double norm_type = 2.0) {
  require<ConfigError>(max_norm >= 0 && (norm_type > 0), "clip_grad_norm: invalid max_norm ", max_norm,
                       " or norm_type ", norm_type);
  double total = 0;
  const bool inf = std::isinf(norm_type);
  for (const auto& p : params)
    for (const T g : p.param->grad) {
      const double a = std::abs(static_cast<double>(g));
      total = inf ? std::max(total, a) : total + std::pow(a, norm_type);
    }
  if (!inf) total = std::pow(total, 1.0 / norm_type);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (const auto& p : params)
      for (T& g : p.param->grad) g = static_cast<T>(g * coef);
  return total;
}

/// torch.nn.utils.clip_grad_value_: clamps every gradient entry to [-clip, clip].
template <class T>
void clip_grad_value(const ParameterList<T>& params, double clip) {
  require<ConfigError>(clip >= 0, "clip_grad_value: clip must be >= 0, got ", clip);
  for (const auto& p : params)
    for (T& g : p.param->grad) g = static_cast<T>(std::clamp(static_cast<double>(g), -clip, clip));
}

}  // namespace coordiff::nn::optim
