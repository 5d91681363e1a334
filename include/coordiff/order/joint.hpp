#pragma once
// All agents in one round (MADiff's joint generation).
#include <cstddef>
#include <numeric>
#include <vector>

#include "coordiff/order/order.hpp"

namespace coordiff::order {

struct Joint {
  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    std::vector<index_t> all(static_cast<std::size_t>(batch.agents()));
    std::iota(all.begin(), all.end(), index_t(0));
    diffusion::Round round;
    round.agents.assign(static_cast<std::size_t>(batch.batch_size()), all);
    round.others_visible = true;  // no other agents exist; set for definiteness
    return {round};
  }
};

}  // namespace coordiff::order
