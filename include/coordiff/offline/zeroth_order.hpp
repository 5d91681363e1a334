#pragma once
// OMAR's zeroth-order action search (Pan et al. 2022, sec. 4.2, MPE variant): per row b, sample S
// actions from N(mu_b, sigma_b) clipped to [-1, 1], score them with Q, move mu to the softmax(Q)-weighted
// mean of the samples and sigma to their spread around it; after the last iteration return the best
// sample of that iteration. It is the population that the rectified actor regresses on.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::offline {

struct ZerothOrderOptions {
  index_t iterations = 3;     ///< omar_iters
  index_t samples = 10;       ///< omar_num_samples
  double initial_mean = 0.0;  ///< omar_mu
  double initial_std = 2.0;   ///< omar_sigma
  double temperature = 1.0;   ///< of the softmax weights
};

template <class T>
struct ZerothOrderResult {
  Tensor<T> action;  ///< [B, U], best sample of the last iteration
  Tensor<T> value;   ///< [B], its score
};

/// score(candidates [S, B, U]) -> [S, B]. Draw iteration j, sample k, row b, dim u uses
/// gen.normal(((j * S + k) * B + b) * U + u).
template <class T, class Score>
ZerothOrderResult<T> zeroth_order_search(Score&& score, index_t rows, index_t action_dim, const ZerothOrderOptions& opt,
                                         const Philox& gen) {
  require<ConfigError>(opt.iterations >= 1 && opt.samples >= 1 && opt.initial_std > 0 && opt.temperature > 0 &&
                           rows >= 1 && action_dim >= 1,
                       "zeroth_order_search: iterations, samples, rows, action_dim, initial_std and temperature must be positive");
  const index_t S = opt.samples, B = rows, U = action_dim;
  Tensor<T> mu({B, U}, static_cast<T>(opt.initial_mean)), sigma({B, U}, static_cast<T>(opt.initial_std));
  Tensor<T> cand({S, B, U}), q;
  for (index_t j = 0; j < opt.iterations; ++j) {
    Tensor<double> z({S, B, U});
    gen.fill_normal(z, static_cast<std::uint64_t>(j * S * B * U));
    for (index_t k = 0; k < S; ++k)
      for (index_t b = 0; b < B; ++b)
        for (index_t u = 0; u < U; ++u)
          cand(k, b, u) = static_cast<T>(std::clamp(static_cast<double>(mu(b, u)) + static_cast<double>(sigma(b, u)) * z(k, b, u), -1.0, 1.0));
    q = score(cand);
    require_shape(q.shape(), {S, B}, "zeroth_order_search score");
    for (index_t b = 0; b < B; ++b) {
      double top = -INFINITY, sum = 0;
      for (index_t k = 0; k < S; ++k) top = std::max(top, static_cast<double>(q(k, b)) / opt.temperature);
      for (index_t k = 0; k < S; ++k) sum += std::exp(static_cast<double>(q(k, b)) / opt.temperature - top);
      for (index_t u = 0; u < U; ++u) {
        double m = 0, v = 0;
        for (index_t k = 0; k < S; ++k) m += std::exp(static_cast<double>(q(k, b)) / opt.temperature - top) / sum * cand(k, b, u);
        for (index_t k = 0; k < S; ++k) v += (cand(k, b, u) - m) * (cand(k, b, u) - m) / static_cast<double>(S);
        mu(b, u) = static_cast<T>(m), sigma(b, u) = static_cast<T>(std::max(std::sqrt(v), 1e-6));
      }
    }
  }
  ZerothOrderResult<T> out{Tensor<T>({B, U}), Tensor<T>({B})};
  for (index_t b = 0; b < B; ++b) {
    index_t best = 0;
    for (index_t k = 1; k < S; ++k)
      if (q(k, b) > q(best, b)) best = k;
    for (index_t u = 0; u < U; ++u) out.action(b, u) = cand(best, b, u);
    out.value[b] = q(best, b);
  }
  return out;
}

}  // namespace coordiff::offline
