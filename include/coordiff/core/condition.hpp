#pragma once
// What a denoiser is conditioned on besides the noisy sample and the diffusion step.
#include <cstdint>
#include <vector>

#include "coordiff/core/tensor.hpp"

namespace coordiff {

/// Per-agent conditioning of a batch x [B, H, A, F].
///   value  [B, A]  the condition (MADiff: each agent's normalised return); empty = no condition;
///          or [B, A, C] for C values per agent (paper 001 eq. 10: y = (CBF satisfaction, return)).
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

  /// C, the values per agent (1 for a [B, A] value).
  index_t width() const { return value.rank() == 3 ? value.dim(2) : 1; }

  /// The same condition with every keep flag set to `flag` (1: conditional branch, 0: null branch).
  Condition with_keep(T flag) const {
    Condition c = *this;
    if (!value.empty()) c.keep = Tensor<T>::full({value.dim(0), value.dim(1)}, flag);
    return c;
  }

  /// Checks the value ([B, A] or [B, A, C], finite; with width > 0, exactly that many values per agent)
  /// and keep ([B, A]) shapes for B samples of A agents.
  void validate(index_t B, index_t A, const char* where, index_t width = 0) const {
    if (has_value()) {
      require<ShapeError>((value.rank() == 2 || value.rank() == 3) && value.dim(0) == B && value.dim(1) == A,
                          where, " condition value: expected [", B, ", ", A, "] or [", B, ", ", A, ", C], got ",
                          to_string(value.shape()));
      require<ShapeError>(width <= 0 || this->width() == width, where, ": ", width,
                          " condition values per agent expected, got shape ", to_string(value.shape()));
      require_finite(value, where);
    }
    if (!keep.empty()) require_shape(keep.shape(), {B, A}, detail::concat(where, " condition keep"));
  }
};

}  // namespace coordiff
