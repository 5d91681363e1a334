#pragma once
// Filters built from user functions: Callable wraps a function that returns a whole Verdict, Threshold
// a per-sample score with a cut-off (the form of the MASTARS dynamics-consistency check, eq. 6:
// keep iff the mean transition-model error is below epsilon).
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "coordiff/filter/filter.hpp"

namespace coordiff::filter {

/// Wraps `Verdict f(const Tensor<T>& samples, const diffusion::Batch<T>&)`. The verdict must have B keep
/// flags and B reasons; a verdict without reasons gets them filled in.
template <class F>
struct Callable {
  F fn;

  template <class T>
    requires std::invocable<const F&, const Tensor<T>&, const diffusion::Batch<T>&>
  Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>& batch) const {
    Verdict v = fn(samples, batch);
    const auto B = static_cast<std::size_t>(samples.dim(0));
    require<ConfigError>(v.keep.size() == B, "filter::Callable: the filter returned ", v.keep.size(),
                         " keep flags for a batch of ", B);
    if (v.reason.empty()) {
      v.reason.resize(B);
      for (std::size_t b = 0; b < B; ++b)
        if (!v.keep[b]) v.reason[b] = "rejected by the user filter";
    }
    require<ConfigError>(v.reason.size() == B, "filter::Callable: the filter returned ", v.reason.size(),
                         " reasons for a batch of ", B, " (expected ", B, " or none)");
    return v;
  }
};

template <class F>
Callable(F) -> Callable<F>;

/// Callable filter around f (copied or moved in).
template <class F>
Callable<std::decay_t<F>> from_function(F&& f) {
  return Callable<std::decay_t<F>>{std::forward<F>(f)};
}

/// Keeps sample b iff score(samples, batch)[b] < threshold (a NaN score is rejected).
template <class F>
struct Threshold {
  F score;
  double threshold = 0.0;
  std::string score_name = "score";          ///< how rejection reasons name the score ...
  std::string threshold_name = "threshold";  ///< ... and the threshold

  template <class T>
    requires std::invocable<const F&, const Tensor<T>&, const diffusion::Batch<T>&>
  Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>& batch) const {
    const std::vector<double> s = score(samples, batch);
    const auto B = static_cast<std::size_t>(samples.dim(0));
    require<ConfigError>(s.size() == B, "filter::Threshold: the score function returned ", s.size(),
                         " scores for a batch of ", B);
    Verdict v{std::vector<std::uint8_t>(B, 0), std::vector<std::string>(B)};
    for (std::size_t b = 0; b < B; ++b) {
      if (s[b] < threshold) {
        v.keep[b] = 1;
        continue;
      }
      std::ostringstream os;
      if (s[b] != s[b])
        os << score_name << " is NaN (" << threshold_name << " " << threshold << ")";
      else
        os << score_name << " " << s[b] << " >= " << threshold_name << " " << threshold;
      v.reason[b] = os.str();
    }
    return v;
  }
};

template <class F>
Threshold(F, double) -> Threshold<F>;

}  // namespace coordiff::filter
