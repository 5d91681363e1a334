#pragma once
// Training a decentralised CBF from data with the hinge losses of paper 001, eq. 12:
//   L = mean over safe z of max(0, gamma - h(z))
//     + mean over dangerous z of max(0, gamma + h(z))
//     + mean over safe transitions (z, z') of max(0, gamma - (h(z') - h(z))/dt - alpha h(z)),
// the last with the forward-difference derivative of h and a linear class-K function alpha(h) = alpha h.
// (The paper sums; means keep the three terms on one scale whatever the label balance. Its first sum runs
// over the initial set X_0, which we take to be the safe set, as learned-CBF work usually does.)
#include <algorithm>
#include <cstdint>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/nn/optim/adam.hpp"
#include "coordiff/safety/barrier.hpp"

namespace coordiff::safety {

struct CbfLossOptions {
  double margin = 0.02;  ///< gamma > 0
  double alpha = 1.0;    ///< class-K slope
  double dt = 0.1;       ///< time between z and z' (MPE: 0.1)
  void validate() const {
    require<ConfigError>(margin >= 0 && alpha > 0 && dt > 0, "CbfLossOptions: need margin >= 0, alpha > 0 and dt > 0, got ",
                         margin, ", ", alpha, ", ", dt);
  }
};

/// Labelled feature rows: z [N, F] with its successor z_next [N, F] (valid where has_next), safe[n] (1 =
/// in the safe set, 0 = dangerous).
template <class T>
struct CbfData {
  Tensor<T> z, z_next;
  std::vector<std::uint8_t> safe, has_next;

  index_t size() const { return z.rank() ? z.dim(0) : 0; }
  void validate() const {
    require<ShapeError>(z.rank() == 2 && z.dim(0) > 0, "CbfData: z must be a non-empty [N, F], got ", to_string(z.shape()));
    require_shape(z_next.shape(), z.shape(), "CbfData: z_next");
    require<ShapeError>(static_cast<index_t>(safe.size()) == z.dim(0) && static_cast<index_t>(has_next.size()) == z.dim(0),
                        "CbfData: ", safe.size(), " safe labels and ", has_next.size(), " successor flags for ", z.dim(0),
                        " rows");
    require_finite(z, "CbfData z");
    require_finite(z_next, "CbfData z_next");
  }
};

/// The three terms, their weighted total, and dL/dh, dL/dh' (for the backward pass).
struct CbfLoss {
  double safe = 0, unsafe = 0, derivative = 0, total = 0;
  std::vector<double> dh, dh_next;
};

/// Eq. 12 on values h = h(z), h_next = h(z') of a batch.
inline CbfLoss cbf_loss(const std::vector<double>& h, const std::vector<double>& h_next, const std::vector<std::uint8_t>& safe,
                        const std::vector<std::uint8_t>& has_next, const CbfLossOptions& o) {
  o.validate();
  const std::size_t n = h.size();
  require<ShapeError>(h_next.size() == n && safe.size() == n && has_next.size() == n, "cbf_loss: inconsistent batch sizes");
  std::size_t n_safe = 0, n_unsafe = 0, n_trans = 0;
  for (std::size_t i = 0; i < n; ++i) {
    n_safe += safe[i] != 0, n_unsafe += safe[i] == 0;
    n_trans += safe[i] != 0 && has_next[i] != 0;
  }
  CbfLoss L;
  L.dh.assign(n, 0.0), L.dh_next.assign(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    if (safe[i]) {
      if (o.margin - h[i] > 0) L.safe += (o.margin - h[i]) / double(n_safe), L.dh[i] -= 1.0 / double(n_safe);
      if (has_next[i]) {
        const double g = o.margin - (h_next[i] - h[i]) / o.dt - o.alpha * h[i];
        if (g > 0) {
          L.derivative += g / double(n_trans);
          L.dh[i] += (1.0 / o.dt - o.alpha) / double(n_trans);
          L.dh_next[i] -= 1.0 / (o.dt * double(n_trans));
        }
      }
    } else if (o.margin + h[i] > 0) {
      L.unsafe += (o.margin + h[i]) / double(n_unsafe), L.dh[i] += 1.0 / double(n_unsafe);
    }
  }
  L.total = L.safe + L.unsafe + L.derivative;
  return L;
}

/// How much of a data set satisfies each condition (margin 0): safe rows with h >= 0, dangerous rows with
/// h < 0, safe transitions with dh/dt + alpha h >= 0.
struct CbfReport {
  double safe_satisfied = 0, unsafe_satisfied = 0, derivative_satisfied = 0;
  index_t safe_rows = 0, unsafe_rows = 0, transitions = 0;
};

template <class T, class H>
CbfReport evaluate_cbf(const H& barrier, const CbfData<T>& d, const CbfLossOptions& o) {
  static_assert(check_barrier<H, T>());
  d.validate();
  const Tensor<T> h = barrier.values(d.z), hn = barrier.values(d.z_next);
  CbfReport r;
  double s = 0, u = 0, t = 0;
  for (index_t i = 0; i < d.size(); ++i) {
    const auto k = static_cast<std::size_t>(i);
    if (d.safe[k]) {
      ++r.safe_rows, s += (h[i] >= 0);
      if (d.has_next[k]) ++r.transitions, t += ((hn[i] - h[i]) / o.dt + o.alpha * h[i] >= 0);
    } else {
      ++r.unsafe_rows, u += (h[i] < 0);
    }
  }
  r.safe_satisfied = r.safe_rows ? s / double(r.safe_rows) : 1.0;
  r.unsafe_satisfied = r.unsafe_rows ? u / double(r.unsafe_rows) : 1.0;
  r.derivative_satisfied = r.transitions ? t / double(r.transitions) : 1.0;
  return r;
}

struct CbfTrainOptions {
  index_t steps = 2000, batch_size = 256;
  double lr = 1e-3;
  std::uint64_t seed = 0;
  CbfLossOptions loss;
};

/// Adam on eq. 12 over minibatches drawn with replacement (Philox, from `seed`); returns the total loss
/// of each step.
template <class T>
std::vector<double> train_cbf(MlpBarrier<T>& barrier, const CbfData<T>& d, const CbfTrainOptions& o) {
  d.validate();
  o.loss.validate();
  require<ConfigError>(o.steps >= 0 && o.batch_size >= 1, "train_cbf: need steps >= 0 and batch_size >= 1");
  auto params = nn::parameters_of<T>(barrier);
  nn::optim::AdamOptions ao;
  ao.lr = o.lr;
  nn::optim::Adam<T> adam(params, ao);
  Rng rng(o.seed, 0x43424600u);  // "CBF"
  const index_t F = d.z.dim(1), B = o.batch_size;
  std::vector<double> history;
  for (index_t step = 0; step < o.steps; ++step) {
    Tensor<T> zz({2 * B, F});  // rows [0, B): z, [B, 2B): z'
    std::vector<std::uint8_t> safe(static_cast<std::size_t>(B)), next(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) {
      const index_t i = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(d.size())));
      std::copy(d.z.data() + i * F, d.z.data() + (i + 1) * F, zz.data() + b * F);
      std::copy(d.z_next.data() + i * F, d.z_next.data() + (i + 1) * F, zz.data() + (B + b) * F);
      safe[static_cast<std::size_t>(b)] = d.safe[static_cast<std::size_t>(i)];
      next[static_cast<std::size_t>(b)] = d.has_next[static_cast<std::size_t>(i)];
    }
    nn::zero_grad(params);
    const Tensor<T> h = barrier.forward_train(zz);
    std::vector<double> hc(static_cast<std::size_t>(B)), hn(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) hc[static_cast<std::size_t>(b)] = h[b], hn[static_cast<std::size_t>(b)] = h[B + b];
    const CbfLoss L = cbf_loss(hc, hn, safe, next, o.loss);
    Tensor<T> dh({2 * B});
    for (index_t b = 0; b < B; ++b)
      dh[b] = static_cast<T>(L.dh[static_cast<std::size_t>(b)]), dh[B + b] = static_cast<T>(L.dh_next[static_cast<std::size_t>(b)]);
    barrier.backward_train(dh);
    adam.step();
    history.push_back(L.total);
  }
  return history;
}

}  // namespace coordiff::safety
