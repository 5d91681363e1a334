#pragma once
// The conservative (CQL) critic penalty of OMAR and CFCQL in its counterfactual form (CFCQL, Shao et al.
// 2023, eq. 4; paper 000 eq. 13). For each agent g whose action the critic sees, S actions are drawn
// uniformly in [-1, 1]^U and put in place of agent g's data action (the other agents keep theirs); the
// penalty is
//     alpha * mean_b [ sum_g w_g * tau * logsumexp_k((Q(s_b, a^g_bk) - log mu) / tau) - Q(s_b, a_b) ]
// with log mu = U log(1/2) the density of the uniform proposal (importance-sampled soft maximum) and
// w_g = 1 / G. A decentralised critic Q_i(o_i, a_i) sees one agent (G = 1): plain MA-CQL as in OMAR.
#include <algorithm>
#include <cmath>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::offline {

struct ConservativePenaltyOptions {
  double alpha = 1.0;        ///< cql_alpha
  double temperature = 1.0;  ///< tau of the soft maximum (lse_temp)
  double log_density = 0.0;  ///< log of the proposal density of the sampled actions, U log(1/2) for U(-1,1)^U
};

template <class T>
struct ConservativePenalty {
  double value = 0;
  Tensor<T> d_sampled;  ///< d value / d q_sampled, [G, S, B]
  Tensor<T> d_data;     ///< d value / d q_data, [B]
};

/// q_sampled [G, S, B]: critic values with agent g's action replaced by sample k; q_data [B]: at the
/// data actions. Returns the penalty and its gradient with respect to both inputs.
template <class T>
ConservativePenalty<T> conservative_penalty(const Tensor<T>& q_sampled, const Tensor<T>& q_data,
                                            const ConservativePenaltyOptions& opt) {
  require<ShapeError>(q_sampled.rank() == 3 && q_data.rank() == 1 && q_sampled.dim(2) == q_data.dim(0) &&
                          q_sampled.dim(0) >= 1 && q_sampled.dim(1) >= 1 && q_data.dim(0) >= 1,
                      "conservative_penalty: expected q_sampled [G, S, B] and q_data [B], got ",
                      to_string(q_sampled.shape()), " and ", to_string(q_data.shape()));
  require<ConfigError>(opt.temperature > 0, "conservative_penalty: temperature must be > 0, got ", opt.temperature);
  const index_t G = q_sampled.dim(0), S = q_sampled.dim(1), B = q_sampled.dim(2);
  const double tau = opt.temperature, scale = opt.alpha / static_cast<double>(B), w = 1.0 / static_cast<double>(G);
  ConservativePenalty<T> out{0, Tensor<T>(q_sampled.shape()), Tensor<T>(q_data.shape())};
  for (index_t b = 0; b < B; ++b) {
    double soft_max = 0;
    for (index_t g = 0; g < G; ++g) {
      double top = -INFINITY;
      for (index_t k = 0; k < S; ++k) top = std::max(top, (q_sampled(g, k, b) - opt.log_density) / tau);
      double sum = 0;
      for (index_t k = 0; k < S; ++k) sum += std::exp((q_sampled(g, k, b) - opt.log_density) / tau - top);
      soft_max += w * tau * (top + std::log(sum));
      for (index_t k = 0; k < S; ++k)  // d (tau lse) / d q_k = softmax_k
        out.d_sampled(g, k, b) =
            static_cast<T>(scale * w * std::exp((q_sampled(g, k, b) - opt.log_density) / tau - top) / sum);
    }
    out.value += scale * (soft_max - static_cast<double>(q_data[b]));
    out.d_data[b] = static_cast<T>(-scale);
  }
  return out;
}

}  // namespace coordiff::offline
