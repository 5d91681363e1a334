#pragma once
// Keeps a generated trajectory only if the CBF condition holds everywhere along it: h >= 0 for every agent
// and step and, unless `check_derivative` is off, (h_{t+1} - h_t)/dt + alpha h_t >= 0 (paper 001, eq. 7
// with eq. 12's forward difference). The reason names the first agent and step that fails.
#include <string>
#include <utility>

#include "coordiff/filter/filter.hpp"
#include "coordiff/safety/trajectory_condition.hpp"

namespace coordiff::filter {

template <class Barrier>
struct CbfSafe {
  Barrier barrier;
  safety::CbfLossOptions options{};  ///< dt and alpha (its margin is not used: the filter tests margin 0)
  bool check_derivative = true;

  template <class T>
  Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>&) const {
    static_assert(safety::check_barrier<Barrier, T>());
    const Tensor<T> h = barrier.values(safety::detail::agent_rows(samples));
    const index_t B = samples.dim(0), H = samples.dim(1), A = samples.dim(2);
    Verdict v;
    v.keep.resize(static_cast<std::size_t>(B));
    v.reason.resize(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) {
      std::string why = safety::first_violation(h, b, H, A, options, check_derivative);
      v.keep[static_cast<std::size_t>(b)] = why.empty() ? 1 : 0;
      if (!why.empty()) v.reason[static_cast<std::size_t>(b)] = "CBF condition: " + why;
    }
    return v;
  }
};

template <class Barrier>
CbfSafe<Barrier> cbf_safe(Barrier barrier, safety::CbfLossOptions options = {}, bool check_derivative = true) {
  return CbfSafe<Barrier>{std::move(barrier), options, check_derivative};
}

}  // namespace coordiff::filter
