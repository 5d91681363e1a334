#pragma once
// MASTARS eq. 7 (LOV): per sample, agents in descending order of the value of their last observation,
// V(o^a_{H-1}) = values[b, H-1, a]; ties go to the lower agent index. One agent per round, others visible.
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "coordiff/order/independent.hpp"

namespace coordiff::order {

struct LastObsValue {
  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    const index_t B = batch.batch_size(), H = batch.horizon(), A = batch.agents();
    require<ConfigError>(!batch.values.empty(),
                         "order::LastObsValue: needs per-step value estimates in Batch::values [B, H, A]");
    require_shape(batch.values.shape(), {B, H, A}, "order::LastObsValue: Batch values");
    std::vector<std::vector<index_t>> order(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) {
      std::vector<T> last(static_cast<std::size_t>(A));
      for (index_t a = 0; a < A; ++a) {
        last[static_cast<std::size_t>(a)] = batch.values(b, H - 1, a);
        // A NaN would break the strict weak ordering the sort relies on.
        require<NumericError>(last[static_cast<std::size_t>(a)] == last[static_cast<std::size_t>(a)],
                              "order::LastObsValue: value of sample ", b, " agent ", a, " is NaN");
      }
      order[static_cast<std::size_t>(b)] = detail::argsort_descending(last);
    }
    return detail::one_agent_per_round(order, A, /*others_visible=*/true);
  }
};

}  // namespace coordiff::order
