#pragma once
// Condition on the first `steps` time steps of every agent (MADiff conditions on the current
// observation, t = 0) and generate the round's agents after them.
#include <cstdint>

#include "coordiff/mask/mask.hpp"

namespace coordiff::mask {

struct HistoryPrefix {
  index_t steps = 1;

  template <class T>
  Tensor<std::uint8_t> known(const diffusion::Batch<T>& batch, const diffusion::Round& round) const {
    // The horizon is only known per batch, so the range is checked here rather than at construction.
    const index_t H = batch.horizon();
    require<ConfigError>(steps >= 0 && steps <= H, "mask::HistoryPrefix: steps = ", steps,
                         " is outside [0, ", H, "] for a horizon of ", H);
    const index_t s = steps;
    return known_except(batch, round, [s](index_t, index_t t, index_t) { return t >= s; });
  }
};

}  // namespace coordiff::mask
