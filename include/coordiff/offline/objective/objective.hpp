#pragma once
// The ActorObjective family: what an offline actor-critic learner's actor minimises. Every member is
//     L = -q_weight * mean_b Q1(o_b, pi(o_b)) + bc_weight * mean_{b,u} (pi(o_b) - anchor_b)^2 + l2 * mean pi^2
// and differs in the weights and the anchor actions it regresses on (dataset actions for TD3+BC,
// zeroth-order search results for OMAR, none for a plain policy gradient). The action L2 term is the
// learner's option. Requirements and an example: docs/concepts.md#actorobjective.
#include <concepts>
#include <functional>
#include <string_view>

#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::offline::objective {

/// What an objective sees of one agent's actor step on a batch of B rows.
template <class T>
struct ActorStep {
  const Tensor<T>& policy;    ///< [B, U] pi_i(o_i), the actions the gradient flows through
  const Tensor<T>& data;      ///< [B, U] agent i's dataset actions
  const Tensor<T>& q_policy;  ///< [B] Q1 at the policy actions
  std::function<Tensor<T>(const Tensor<T>&)> score;  ///< Q1 of candidates [S, B, U] for agent i -> [S, B]
  Philox gen;                 ///< this step's random stream
};

template <class T>
struct ActorTerms {
  double q_weight = 1;  ///< weight of -mean Q1 (treated as a constant: no gradient flows into it)
  double bc_weight = 0;
  Tensor<T> anchor;     ///< [B, U], required when bc_weight != 0
};

template <class O, class T>
concept ActorObjective = requires(const O& o, const ActorStep<T>& step) {
  { o.terms(step) } -> std::same_as<ActorTerms<T>>;
  { O::kName } -> std::convertible_to<std::string_view>;
};

template <class O, class T>
constexpr bool check_actor_objective() {
  static_assert(requires(const O& o, const ActorStep<T>& step) {
    { o.terms(step) } -> std::same_as<ActorTerms<T>>;
  }, "coordiff ActorObjective: missing `offline::objective::ActorTerms<T> terms(const ActorStep<T>&) const` "
     "(see docs/concepts.md#actorobjective)");
  static_assert(requires { { O::kName } -> std::convertible_to<std::string_view>; },
                "coordiff ActorObjective: missing `static constexpr const char* kName` (see docs/concepts.md#actorobjective)");
  return true;
}

}  // namespace coordiff::offline::objective
