#pragma once
// Input rows for the auxiliary models: the last axes of two tensors with the same leading axes,
// concatenated into one [N, F1 + F2] matrix, and the time-shifted views of [B, H, A, F] windows the
// models read (o_t and o_{t+1} for t < H - 1).
#include <algorithm>
#include <string>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::auxiliary {

/// [..., F1] and [..., F2] with equal leading axes -> [N, F1 + F2], N = product of the leading axes.
template <class T>
Tensor<T> concat_features(const Tensor<T>& a, const Tensor<T>& b, const char* who) {
  require<ShapeError>(a.rank() >= 1 && a.rank() == b.rank(), who, ": inputs of rank ", a.rank(), " and ", b.rank());
  for (std::size_t d = 0; d + 1 < a.rank(); ++d)
    require<ShapeError>(a.shape()[d] == b.shape()[d], who, ": leading axes differ: ", to_string(a.shape()), " and ",
                        to_string(b.shape()));
  const index_t fa = a.dim(-1), fb = b.dim(-1), n = fa > 0 ? a.size() / fa : 0;
  Tensor<T> out({n, fa + fb});
  for (index_t i = 0; i < n; ++i) {
    std::copy(a.data() + i * fa, a.data() + (i + 1) * fa, out.data() + i * (fa + fb));
    std::copy(b.data() + i * fb, b.data() + (i + 1) * fb, out.data() + i * (fa + fb) + fa);
  }
  return out;
}

/// Checks that w is a batch of windows [B, H >= 2, A, obs_dim] (and A == agents when agents > 0).
template <class T>
void require_windows(const Tensor<T>& w, index_t obs_dim, const char* who, index_t agents = 0) {
  require<ShapeError>(w.rank() == 4 && w.dim(1) >= 2 && w.dim(3) == obs_dim && (agents <= 0 || w.dim(2) == agents), who,
                      ": windows must be [B, H >= 2, ", agents > 0 ? std::to_string(agents) : std::string("A"), ", ",
                      obs_dim, "], got ", to_string(w.shape()));
}

/// Steps [first, first + count) of windows [B, H, A, F]: [B, count, A, F].
template <class T>
Tensor<T> time_slice(const Tensor<T>& x, index_t first, index_t count) {
  require<ShapeError>(x.rank() == 4 && first >= 0 && count >= 0 && first + count <= x.dim(1),
                      "time_slice: steps ", first, "..", first + count, " of ", to_string(x.shape()));
  const index_t B = x.dim(0), H = x.dim(1), w = x.dim(2) * x.dim(3);
  Tensor<T> out({B, count, x.dim(2), x.dim(3)});
  for (index_t b = 0; b < B; ++b)
    std::copy(x.data() + (b * H + first) * w, x.data() + (b * H + first + count) * w, out.data() + b * count * w);
  return out;
}

}  // namespace coordiff::auxiliary
