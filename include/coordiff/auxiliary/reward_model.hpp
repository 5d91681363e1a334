#pragma once
// Reward model r_t = g(o_t, a_t) over the joint observations and actions of all agents (MASTARS eq. 11),
// with one output per agent: it covers a shared team reward (all outputs equal) as well as per-agent
// rewards such as OMAR's spread (a shared coverage term minus each agent's own collisions).
#include <algorithm>
#include <ostream>

#include "coordiff/auxiliary/features.hpp"
#include "coordiff/auxiliary/regressor.hpp"
#include "coordiff/auxiliary/transitions.hpp"

namespace coordiff::auxiliary {

template <class T = float>
class RewardModel {
 public:
  RewardModel() = default;
  RewardModel(index_t agents, index_t obs_dim, index_t act_dim, index_t hidden = 256, std::uint64_t seed = 0)
      : A_(agents), O_(obs_dim), U_(act_dim), net_(agents * (obs_dim + act_dim), agents, hidden, seed) {}

  FitReport fit(const Transitions<T>& t, const FitOptions& opt, std::ostream* log = nullptr) {
    require_shape(t.obs.shape(), {t.size(), A_, O_}, "RewardModel::fit observations");
    require_shape(t.actions.shape(), {t.size(), A_, U_}, "RewardModel::fit actions");
    return net_.fit(joint_input(t.obs, t.actions), t.rewards, opt, log, "reward model");
  }

  /// Rewards [N, A] for joint observations [N, A, O] and actions [N, A, U].
  Tensor<T> operator()(const Tensor<T>& obs, const Tensor<T>& actions) { return net_(joint_input(obs, actions)); }

  /// Rewards of windows [B, H, A, O] with actions [B, H - 1, A, U]: [B, H - 1, A].
  Tensor<T> rewards(const Tensor<T>& windows, const Tensor<T>& actions) {
    require_windows(windows, O_, "RewardModel::rewards", A_);
    const index_t B = windows.dim(0), H = windows.dim(1);
    require_shape(actions.shape(), {B, H - 1, A_, U_}, "RewardModel::rewards actions");
    return (*this)(time_slice(windows, 0, H - 1).reshape({-1, A_, O_}), actions.reshape({-1, A_, U_}))
        .reshape({B, H - 1, A_});
  }

  index_t agents() const { return A_; }
  nn::ParameterList<T> parameters() { return net_.parameters(); }

 private:
  /// [N, A * (O + U)]: agent 0's o and a, then agent 1's, ...
  Tensor<T> joint_input(const Tensor<T>& obs, const Tensor<T>& actions) const {
    const index_t N = obs.dim(0);
    require_shape(obs.shape(), {N, A_, O_}, "RewardModel observations");
    require_shape(actions.shape(), {N, A_, U_}, "RewardModel actions");
    return concat_features(obs, actions, "RewardModel").reshape({N, A_ * (O_ + U_)});
  }

  index_t A_ = 0, O_ = 0, U_ = 0;
  Regressor<T> net_;
};

}  // namespace coordiff::auxiliary
