#pragma once
// Polyak averaging of target networks (DDPG/TD3, TD value learning): target <- (1 - tau) target + tau source.
#include "coordiff/core/error.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn::optim {

/// Both lists must name the same parameters in the same order (two copies of one module).
template <class T>
void polyak_update(const ParameterList<T>& source, const ParameterList<T>& target, double tau) {
  require<ConfigError>(source.size() == target.size(), "polyak_update: ", source.size(), " source and ", target.size(),
                       " target parameters");
  for (std::size_t k = 0; k < source.size(); ++k) {
    const Tensor<T>& s = source[k].param->value;
    Tensor<T>& d = target[k].param->value;
    require_shape(d.shape(), s.shape(), "polyak_update '" + source[k].name + "'");
    for (index_t j = 0; j < d.size(); ++j) d[j] = static_cast<T>((1 - tau) * d[j] + tau * s[j]);
  }
}

}  // namespace coordiff::nn::optim
