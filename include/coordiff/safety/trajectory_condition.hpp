#pragma once
// The CBF condition along generated trajectories x [B, H, A, F] (each agent's feature row at each step is
// the barrier's input z): for every sample b, agent i and step t,
//   safety      h_t >= 0,
//   derivative  (h_{t+1} - h_t)/dt + alpha h_t >= 0   (t < H - 1; eq. 12's forward difference).
// hinge_cost() is the sum of the margin-gamma hinges of both (a differentiable cost for guidance);
// first_violation() names the first place a trajectory breaks either with margin 0 (for the filter).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/guidance/cost_gradient.hpp"
#include "coordiff/safety/barrier.hpp"
#include "coordiff/safety/cbf_training.hpp"

namespace coordiff::safety {

namespace detail {
/// Rows z [(B H A), F] of x [B, H, A, F] (row (b, t, i) = x[b, t, i, :]: x is already in that order).
template <class T>
Tensor<T> agent_rows(const Tensor<T>& x) {
  require<ShapeError>(x.rank() == 4 && x.size() > 0, "CBF trajectory condition: expected x [B, H, A, F], got ",
                      to_string(x.shape()));
  return x.reshape({x.dim(0) * x.dim(1) * x.dim(2), x.dim(3)});
}
}  // namespace detail

/// Differentiable hinge cost of the CBF condition (margin gamma = options.margin) per sample.
template <class T, class H>
guidance::CostValue<T> hinge_cost(const H& barrier, const Tensor<T>& x, const CbfLossOptions& o) {
  static_assert(check_barrier<H, T>());
  const Tensor<T> z = detail::agent_rows(x);
  const Tensor<T> h = barrier.values(z), g = barrier.input_gradients(z);
  const index_t B = x.dim(0), Hn = x.dim(1), A = x.dim(2), F = x.dim(3);
  guidance::CostValue<T> cv{Tensor<T>({B}), Tensor<T>(x.shape())};
  std::vector<double> dh(static_cast<std::size_t>(h.size()), 0.0);
  const auto row = [&](index_t b, index_t t, index_t i) { return (b * Hn + t) * A + i; };
  for (index_t b = 0; b < B; ++b) {
    double c = 0;
    for (index_t i = 0; i < A; ++i)
      for (index_t t = 0; t < Hn; ++t) {
        const index_t r = row(b, t, i);
        if (o.margin - h[r] > 0) c += o.margin - h[r], dh[static_cast<std::size_t>(r)] -= 1;
        if (t + 1 < Hn) {
          const index_t rn = row(b, t + 1, i);
          const double v = o.margin - (h[rn] - h[r]) / o.dt - o.alpha * h[r];
          if (v > 0) {
            c += v;
            dh[static_cast<std::size_t>(r)] += 1 / o.dt - o.alpha;
            dh[static_cast<std::size_t>(rn)] -= 1 / o.dt;
          }
        }
      }
    cv.value[b] = static_cast<T>(c);
  }
  for (index_t r = 0; r < h.size(); ++r)
    for (index_t f = 0; f < F; ++f) cv.gradient[r * F + f] = static_cast<T>(dh[static_cast<std::size_t>(r)] * g[r * F + f]);
  return cv;
}

/// The first (agent, step) of sample b where the condition fails with margin 0, as a message; empty if
/// none does. `check_derivative` false checks h >= 0 alone.
template <class T>
std::string first_violation(const Tensor<T>& h, index_t b, index_t Hn, index_t A, const CbfLossOptions& o,
                            bool check_derivative) {
  for (index_t t = 0; t < Hn; ++t)
    for (index_t i = 0; i < A; ++i) {
      const double ht = h[(b * Hn + t) * A + i];
      if (!(ht >= 0)) return "agent " + std::to_string(i) + " step " + std::to_string(t) + ": h = " + std::to_string(ht) + " < 0";
      if (check_derivative && t + 1 < Hn) {
        const double d = (h[(b * Hn + t + 1) * A + i] - ht) / o.dt + o.alpha * ht;
        if (!(d >= 0))
          return "agent " + std::to_string(i) + " steps " + std::to_string(t) + "-" + std::to_string(t + 1) +
                 ": dh/dt + alpha h = " + std::to_string(d) + " < 0";
      }
    }
  return {};
}

/// Paper 001's y_i(tau_i) (eq. 8) of every agent's window, the CBF part of the diffusion condition:
///   min( min over safe steps of h, min over dangerous steps of -h, min over safe steps t < H-1 of
///        (h_{t+1} - h_t)/dt + alpha h_t ),
/// positive when the window satisfies the decentralised CBF conditions (eq. 7). dangerous [B, H, A]
/// (1 = in the dangerous set, from the data's costs) may be null: every step counts as safe.
template <class T, class H>
Tensor<T> cbf_satisfaction(const H& barrier, const Tensor<T>& x, const Tensor<std::uint8_t>* dangerous,
                           const CbfLossOptions& o) {
  static_assert(check_barrier<H, T>());
  const Tensor<T> h = barrier.values(detail::agent_rows(x));
  const index_t B = x.dim(0), Hn = x.dim(1), A = x.dim(2);
  if (dangerous) require_shape(dangerous->shape(), {B, Hn, A}, "cbf_satisfaction: dangerous flags");
  Tensor<T> y({B, A});
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < A; ++i) {
      double m = std::numeric_limits<double>::infinity();
      for (index_t t = 0; t < Hn; ++t) {
        const index_t r = (b * Hn + t) * A + i;
        const bool bad = dangerous && (*dangerous)[r];
        m = std::min(m, bad ? -double(h[r]) : double(h[r]));
        if (!bad && t + 1 < Hn) m = std::min(m, (h[r + A] - double(h[r])) / o.dt + o.alpha * h[r]);
      }
      y(b, i) = static_cast<T>(m);
    }
  return y;
}

/// A DifferentiableCost (guidance::CostGradient) over a barrier: the hinge cost above.
template <class H>
struct CbfHingeCost {
  H barrier;
  CbfLossOptions options;
  template <class T>
  guidance::CostValue<T> value_and_gradient(const Tensor<T>& x) const {
    return hinge_cost<T>(barrier, x, options);
  }
};

}  // namespace coordiff::safety
