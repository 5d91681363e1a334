#pragma once
// What a denoiser is conditioned on besides the noisy sample and the diffusion step.
#include <cstdint>
#include <vector>

#include "coordiff/core/tensor.hpp"

namespace coordiff {

/// Per-agent conditioning of a batch x [B, H, A, F].
///   value  [B, A]  the condition (MADiff: each agent's normalised return); empty = no condition.
///   keep   [B, A]  1 = use the condition, 0 = the null ("no condition") path of classifier-free guidance;
///                  empty = use it everywhere.
///   agents         the global index of each agent slot of x, when x holds a subset of the agents
///                  (independent generation); empty = slots 0..A-1 are agents 0..A-1.
template <class T>
struct Condition {
  Tensor<T> value{};
  Tensor<T> keep{};
  std::vector<index_t> agents{};

  bool has_value() const { return !value.empty(); }

  /// The same condition with every keep flag set to `flag` (1: conditional branch, 0: null branch).
  Condition with_keep(T flag) const {
    Condition c = *this;
    if (!value.empty()) c.keep = Tensor<T>::full(value.shape(), flag);
    return c;
  }
};

}  // namespace coordiff
