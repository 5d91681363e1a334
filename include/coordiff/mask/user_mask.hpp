#pragma once
// Known flags given by the user, [B, H, A, F] or [H, A, F] (the same for every sample). Only the
// round's agents take them; the other agents stay known, since a round generates only its own agents.
#include <cstdint>

#include "coordiff/mask/mask.hpp"

namespace coordiff::mask {

struct UserMask {
  /// Nonzero = known.
  Tensor<std::uint8_t> flags;

  template <class T>
  Tensor<std::uint8_t> known(const diffusion::Batch<T>& batch, const diffusion::Round& round) const {
    const index_t B = batch.batch_size(), H = batch.horizon(), A = batch.agents(), F = batch.features();
    const Shape full{B, H, A, F}, shared{H, A, F};
    const bool per_sample = flags.shape() == full;
    require<ShapeError>(per_sample || flags.shape() == shared, "mask::UserMask: expected known flags of shape ",
                        to_string(full), " or ", to_string(shared), ", got ", to_string(flags.shape()));
    const index_t per = H * A * F;
    Tensor<std::uint8_t> out(full, std::uint8_t(1));
    for (index_t b = 0; b < B; ++b) {
      const index_t src = per_sample ? b * per : 0;
      for (index_t a : round.agents[static_cast<std::size_t>(b)])
        for (index_t t = 0; t < H; ++t)
          for (index_t f = 0; f < F; ++f) {
            const index_t i = (t * A + a) * F + f;
            out[b * per + i] = flags[src + i] != 0 ? 1 : 0;
          }
    }
    return out;
  }
};

}  // namespace coordiff::mask
