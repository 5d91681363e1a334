#pragma once
// MASTARS eq. 4: the round generates agent a's steps after its subgoal g^a (t > g^a) and keeps the
// steps up to the value peak, which are assumed to be good behaviour. g^a = -1 regenerates all of a.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "coordiff/mask/mask.hpp"

namespace coordiff::mask {

struct AfterSubgoal {
  template <class T>
  Tensor<std::uint8_t> known(const diffusion::Batch<T>& batch, const diffusion::Round& round) const {
    const index_t B = batch.batch_size(), A = batch.agents();
    // Subgoals of the round's agents, computed once: deriving one from `values` is an argmax over H.
    std::vector<index_t> goal(static_cast<std::size_t>(B * A), 0);
    for (index_t b = 0; b < B; ++b)
      for (index_t a : round.agents[static_cast<std::size_t>(b)])
        goal[static_cast<std::size_t>(b * A + a)] = batch.subgoal(b, a);
    return known_except(batch, round, [&goal, A](index_t b, index_t t, index_t a) {
      return t > goal[static_cast<std::size_t>(b * A + a)];
    });
  }
};

}  // namespace coordiff::mask
