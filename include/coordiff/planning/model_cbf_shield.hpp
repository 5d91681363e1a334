#pragma once
// A trained model's learned CBF (eq. 12, on its normalised observations) as a CBF-QP shield on the actions
// executed in a batched environment (safety/cbf_qp_shield.hpp): the one-step prediction is a copy of the
// environment stepped with the candidate actions, its observations normalised like the CBF's training rows.
// Any environment with a copy constructor and step(actions [B, N, 2]).obs [B, N, O] fits.
#include <string>

#include "coordiff/mastars/model.hpp"
#include "coordiff/safety/cbf_qp_shield.hpp"

namespace coordiff::planning {

/// The shield's options for a model: its CBF's (gamma, alpha, dt) and the task's action box.
inline safety::CbfQpShieldOptions model_cbf_shield_options(const mastars::Model<float>& m, double action_bound) {
  safety::CbfQpShieldOptions o;
  o.bound = action_bound;
  o.condition = m.cbf_options();
  return o;
}

/// Shielded actions [B, N, 2] for the actions a policy chose in the environment's present state, whose
/// observations obs [B, N, O] the policy was given.
template <class Env>
Tensor<double> model_cbf_shield(const Env& e, const mastars::Model<float>& m, const Tensor<double>& obs,
                                const Tensor<double>& actions, const safety::CbfQpShieldOptions& o) {
  require<ConfigError>(m.has_cbf(), "model_cbf_shield: the model has no trained CBF (train it on a dataset with costs)");
  require<ShapeError>(obs.rank() == 3 && obs.dim(1) == m.agents && obs.dim(2) == m.obs_dim, "model_cbf_shield: expected "
                      "observations [B, ", m.agents, ", ", m.obs_dim, "], got ", to_string(obs.shape()));
  const auto predict = [&](const Tensor<double>& a) {
    Env next = e;
    return m.normalize_observations(next.step(a).obs);
  };
  return safety::cbf_qp_shield<float>(m.barrier, m.normalize_observations(obs), actions, predict, o, "model_cbf_shield");
}

}  // namespace coordiff::planning
