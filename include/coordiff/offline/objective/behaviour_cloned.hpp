#pragma once
// TD3+BC (Fujimoto & Gu 2021, eq. 3): -lambda * mean Q1(o, pi(o)) + mean (pi(o) - a)^2 with
// lambda = alpha / mean_b |Q1(o_b, pi(o_b))| (no gradient through lambda), a the dataset action.
// Applied per agent it is MA-TD3+BC (Pan et al. 2022).
#include <cmath>

#include "coordiff/offline/objective/objective.hpp"

namespace coordiff::offline::objective {

struct BehaviourCloned {
  static constexpr const char* kName = "td3+bc";
  double alpha = 2.5;

  template <class T>
  ActorTerms<T> terms(const ActorStep<T>& s) const {
    double mean_abs = 0;
    for (index_t b = 0; b < s.q_policy.size(); ++b) mean_abs += std::abs(static_cast<double>(s.q_policy[b]));
    mean_abs /= static_cast<double>(s.q_policy.size());
    return {alpha / std::max(mean_abs, 1e-6), 1.0, s.data};
  }
};

}  // namespace coordiff::offline::objective
