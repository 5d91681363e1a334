#pragma once
// Transition model o^i_{t+1} = f(o^i_t, a^i_t) (MASTARS eq. 11), shared by all agents. The network
// predicts the change o' - o (the same function, easier to fit); the dynamics-consistency filter
// (eq. 6) compares its prediction with the generated next observation.
#include <ostream>

#include "coordiff/auxiliary/features.hpp"
#include "coordiff/auxiliary/regressor.hpp"
#include "coordiff/auxiliary/transitions.hpp"

namespace coordiff::auxiliary {

template <class T = float>
class TransitionModel {
 public:
  TransitionModel() = default;
  TransitionModel(index_t obs_dim, index_t act_dim, index_t hidden = 256, std::uint64_t seed = 0)
      : O_(obs_dim), U_(act_dim), net_(obs_dim + act_dim, obs_dim, hidden, seed) {}

  /// Reports errors of the change o' - o (the same numbers as errors of o').
  FitReport fit(const Transitions<T>& t, const FitOptions& opt, std::ostream* log = nullptr) {
    require_shape(t.obs.shape(), {t.size(), t.agents(), O_}, "TransitionModel::fit observations");
    require_shape(t.actions.shape(), {t.size(), t.agents(), U_}, "TransitionModel::fit actions");
    Tensor<T> change = t.next_obs;
    for (index_t i = 0; i < change.size(); ++i) change[i] -= t.obs[i];
    return net_.fit(concat_features(t.obs, t.actions, "TransitionModel::fit"), change.reshape({-1, O_}), opt, log,
                    "transition model");
  }

  /// Next observations [N, O] for o [N, O], a [N, U].
  Tensor<T> operator()(const Tensor<T>& obs, const Tensor<T>& actions) {
    Tensor<T> next = net_(concat_features(obs, actions, "TransitionModel"));
    for (index_t i = 0; i < next.size(); ++i) next[i] += obs[i];
    return next;
  }

  /// Per-transition mean squared error (over the O features) of windows [B, H, A, O] with actions
  /// [B, H - 1, A, U]: [B, H - 1, A].
  Tensor<T> errors(const Tensor<T>& windows, const Tensor<T>& actions) {
    require_windows(windows, O_, "TransitionModel::errors");
    const index_t B = windows.dim(0), H = windows.dim(1), A = windows.dim(2);
    require_shape(actions.shape(), {B, H - 1, A, U_}, "TransitionModel::errors actions");
    const Tensor<T> now = time_slice(windows, 0, H - 1), next = time_slice(windows, 1, H - 1);
    const Tensor<T> predicted = (*this)(now.reshape({-1, O_}), actions.reshape({-1, U_}));
    Tensor<T> err({B, H - 1, A});
    for (index_t r = 0; r < err.size(); ++r) {
      double s = 0;
      for (index_t k = 0; k < O_; ++k) {
        const double d = static_cast<double>(predicted[r * O_ + k]) - next[r * O_ + k];
        s += d * d;
      }
      err[r] = static_cast<T>(s / static_cast<double>(O_));
    }
    return err;
  }

  index_t obs_dim() const { return O_; }
  index_t act_dim() const { return U_; }
  nn::ParameterList<T> parameters() { return net_.parameters(); }

 private:
  index_t O_ = 0, U_ = 0;
  Regressor<T> net_;
};

}  // namespace coordiff::auxiliary
