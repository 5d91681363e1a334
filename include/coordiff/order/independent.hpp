#pragma once
// One round per agent (0, 1, ...), each generated without seeing the others: the independent
// (per-agent) generation baseline. Also hosts the one-agent-per-round plan shared by the sequential
// orders (MASTARS section 3.2).
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "coordiff/order/order.hpp"

namespace coordiff::order {

namespace detail {
/// order[b] is sample b's generation order kappa (a permutation of the agents); round l generates
/// agent order[b][l] of every sample b.
/// Agent indices sorted by key, largest first; ties keep the lower agent index first (stable).
template <class K>
std::vector<index_t> argsort_descending(const std::vector<K>& key) {
  std::vector<index_t> kappa(key.size());
  std::iota(kappa.begin(), kappa.end(), index_t(0));
  std::stable_sort(kappa.begin(), kappa.end(), [&key](index_t x, index_t y) {
    return key[static_cast<std::size_t>(x)] > key[static_cast<std::size_t>(y)];
  });
  return kappa;
}

inline diffusion::RoundPlan one_agent_per_round(const std::vector<std::vector<index_t>>& order, index_t A,
                                                bool others_visible) {
  diffusion::RoundPlan plan(static_cast<std::size_t>(A));
  for (std::size_t l = 0; l < plan.size(); ++l) {
    plan[l].others_visible = others_visible;
    plan[l].agents.reserve(order.size());
    for (const auto& kappa : order) plan[l].agents.push_back({kappa[l]});
  }
  return plan;
}
}  // namespace detail

struct Independent {
  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    std::vector<index_t> identity(static_cast<std::size_t>(batch.agents()));
    std::iota(identity.begin(), identity.end(), index_t(0));
    const std::vector<std::vector<index_t>> order(static_cast<std::size_t>(batch.batch_size()), identity);
    return detail::one_agent_per_round(order, batch.agents(), /*others_visible=*/false);
  }
};

}  // namespace coordiff::order
