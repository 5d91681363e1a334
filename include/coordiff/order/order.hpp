#pragma once
// The OrderingRule family: which agents are generated in which round. Requirements and a minimal user
// ordering rule: docs/concepts.md.
#include <concepts>

#include "coordiff/diffusion/batch.hpp"

namespace coordiff::order {

/// plan(batch) -> the rounds of this batch (see diffusion::Round).
template <class O, class T>
concept OrderingRule = requires(const O& o, const diffusion::Batch<T>& batch) {
  { o.plan(batch) } -> std::same_as<diffusion::RoundPlan>;
};

template <class O, class T>
constexpr bool check_ordering_rule() {
  static_assert(requires(const O& o, const diffusion::Batch<T>& batch) {
    { o.plan(batch) } -> std::same_as<diffusion::RoundPlan>;
  }, "coordiff OrderingRule: missing `diffusion::RoundPlan plan(const diffusion::Batch<T>&) const`"
     " (see docs/concepts.md#orderingrule)");
  return true;
}

}  // namespace coordiff::order
