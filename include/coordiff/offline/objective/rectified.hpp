#pragma once
// OMAR's rectified actor (Pan et al. 2022, eq. 6; paper 000 eq. 14):
//     (1 - c) * (-mean Q1(o, pi(o))) + c * mean (pi(o) - a*)^2,
// a* = the better, under Q1, of pi(o) and the best action of a zeroth-order search (zeroth_order.hpp)
// from N(mu, sigma). c is omar_coe (per dataset in OMAR's configs).
#include "coordiff/offline/objective/objective.hpp"
#include "coordiff/offline/zeroth_order.hpp"

namespace coordiff::offline::objective {

struct Rectified {
  static constexpr const char* kName = "omar";
  double coefficient = 1.0;  ///< omar_coe
  ZerothOrderOptions search{};

  template <class T>
  ActorTerms<T> terms(const ActorStep<T>& s) const {
    const index_t B = s.policy.dim(0), U = s.policy.dim(1);
    const ZerothOrderResult<T> found = zeroth_order_search<T>(s.score, B, U, search, s.gen);
    Tensor<T> anchor = s.policy;
    for (index_t b = 0; b < B; ++b)
      if (found.value[b] > s.q_policy[b])
        for (index_t u = 0; u < U; ++u) anchor(b, u) = found.action(b, u);
    return {1.0 - coefficient, coefficient, anchor};
  }
};

}  // namespace coordiff::offline::objective
