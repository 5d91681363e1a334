#pragma once
// Two filters at once: a sample is kept only if both keep it; the reason is the first filter's when it
// rejects, else the second's. both(dynamics_consistency(...), cbf_safe(h)) is "safe MASTARS": sequential
// inpainting whose windows must be dynamically consistent (paper 000, eq. 6) and keep the CBF condition
// everywhere (paper 001).
#include <utility>

#include "coordiff/core/error.hpp"
#include "coordiff/filter/filter.hpp"

namespace coordiff::filter {

template <class First, class Second>
struct Both {
  First first;
  Second second;

  template <class T>
  Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>& batch) const {
    static_assert(check_validity_filter<First, T>() && check_validity_filter<Second, T>());
    Verdict a = first.check(samples, batch);
    const Verdict b = second.check(samples, batch);
    require<ConfigError>(a.keep.size() == b.keep.size() && a.reason.size() == a.keep.size() && b.reason.size() == b.keep.size(),
                         "filter::Both: the two filters returned verdicts of different sizes (", a.keep.size(), ", ",
                         b.keep.size(), ")");
    for (std::size_t k = 0; k < a.keep.size(); ++k) {
      if (a.keep[k] && !b.keep[k]) a.reason[k] = b.reason[k];
      a.keep[k] = a.keep[k] && b.keep[k];
    }
    return a;
  }
};

template <class First, class Second>
Both<First, Second> both(First first, Second second) {
  return Both<First, Second>{std::move(first), std::move(second)};
}

}  // namespace coordiff::filter
