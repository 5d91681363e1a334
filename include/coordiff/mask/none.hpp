#pragma once
// Regenerate the round's agents from scratch: every entry of theirs is unknown, every other agent is
// known (the whole-trajectory generation of MADiff, or a MASTARS round without a subgoal).
#include <cstdint>

#include "coordiff/mask/mask.hpp"

namespace coordiff::mask {

struct None {
  template <class T>
  Tensor<std::uint8_t> known(const diffusion::Batch<T>& batch, const diffusion::Round& round) const {
    return known_except(batch, round, [](index_t, index_t, index_t) { return true; });
  }
};

}  // namespace coordiff::mask
