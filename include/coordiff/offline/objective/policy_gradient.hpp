#pragma once
// Deterministic policy gradient through the first critic, -mean Q1(o, pi(o)) (DDPG/TD3; the actor of
// MATD3 and of CFCQL, whose bc_tau defaults to 0).
#include "coordiff/offline/objective/objective.hpp"

namespace coordiff::offline::objective {

struct PolicyGradient {
  static constexpr const char* kName = "policy-gradient";
  template <class T>
  ActorTerms<T> terms(const ActorStep<T>&) const {
    return {1.0, 0.0, {}};
  }
};

}  // namespace coordiff::offline::objective
