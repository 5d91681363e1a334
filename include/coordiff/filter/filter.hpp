#pragma once
// The ValidityFilter family: which generated samples are kept. Requirements and a minimal user filter:
// docs/concepts.md.
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "coordiff/diffusion/batch.hpp"

namespace coordiff::filter {

/// One verdict per sample: keep[b] != 0 keeps sample b; reason[b] says why it was rejected (empty if kept).
struct Verdict {
  std::vector<std::uint8_t> keep;
  std::vector<std::string> reason;
};

/// check(samples [B, H, A, F], batch) -> Verdict with B entries.
template <class F, class T>
concept ValidityFilter = requires(const F& f, const Tensor<T>& samples, const diffusion::Batch<T>& batch) {
  { f.check(samples, batch) } -> std::same_as<Verdict>;
};

template <class F, class T>
constexpr bool check_validity_filter() {
  static_assert(requires(const F& f, const Tensor<T>& samples, const diffusion::Batch<T>& batch) {
    { f.check(samples, batch) } -> std::same_as<Verdict>;
  }, "coordiff ValidityFilter: missing `filter::Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>&)"
     " const` (see docs/concepts.md#validityfilter)");
  return true;
}

}  // namespace coordiff::filter
