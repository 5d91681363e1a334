#pragma once
// MASTARS eq. 8 (SG): per sample, agents in descending order of their subgoal g^a (late value peaks
// first: agents that peak early constrain later behaviour least, so they go last); ties go to the
// lower agent index. One agent per round, others visible.
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "coordiff/order/independent.hpp"

namespace coordiff::order {

struct SubgoalIndex {
  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    const index_t B = batch.batch_size(), A = batch.agents();
    std::vector<std::vector<index_t>> order(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) {
      std::vector<index_t> goal(static_cast<std::size_t>(A));
      for (index_t a = 0; a < A; ++a) goal[static_cast<std::size_t>(a)] = batch.subgoal(b, a);
      order[static_cast<std::size_t>(b)] = detail::argsort_descending(goal);
    }
    return detail::one_agent_per_round(order, A, /*others_visible=*/true);
  }
};

}  // namespace coordiff::order
