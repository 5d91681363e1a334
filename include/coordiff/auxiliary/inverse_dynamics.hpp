#pragma once
// Inverse dynamics a^i_t = I(o^i_t, o^i_{t+1}) (MASTARS eq. 11; Decision Diffuser / MADiff), one network
// shared by all agents as MADiff's `share_inv`. Turns generated observation windows into actions.
#include <ostream>

#include "coordiff/auxiliary/features.hpp"
#include "coordiff/auxiliary/regressor.hpp"
#include "coordiff/auxiliary/transitions.hpp"

namespace coordiff::auxiliary {

template <class T = float>
class InverseDynamics {
 public:
  InverseDynamics() = default;
  InverseDynamics(index_t obs_dim, index_t act_dim, index_t hidden = 256, std::uint64_t seed = 0)
      : O_(obs_dim), U_(act_dim), net_(2 * obs_dim, act_dim, hidden, seed) {}

  FitReport fit(const Transitions<T>& t, const FitOptions& opt, std::ostream* log = nullptr) {
    require_shape(t.obs.shape(), {t.size(), t.agents(), O_}, "InverseDynamics::fit observations");
    require_shape(t.actions.shape(), {t.size(), t.agents(), U_}, "InverseDynamics::fit actions");
    return net_.fit(concat_features(t.obs, t.next_obs, "InverseDynamics::fit"), t.actions.reshape({-1, U_}), opt, log,
                    "inverse dynamics");
  }

  /// Actions [N, U] for observation pairs o [N, O], o' [N, O].
  Tensor<T> operator()(const Tensor<T>& obs, const Tensor<T>& next_obs) {
    return net_(concat_features(obs, next_obs, "InverseDynamics"));
  }

  /// The actions of windows [B, H, A, O]: [B, H - 1, A, U].
  Tensor<T> actions(const Tensor<T>& windows) {
    require_windows(windows, O_, "InverseDynamics::actions");
    const index_t B = windows.dim(0), H = windows.dim(1), A = windows.dim(2);
    return net_(concat_features(time_slice(windows, 0, H - 1), time_slice(windows, 1, H - 1), "InverseDynamics"))
        .reshape({B, H - 1, A, U_});
  }

  index_t obs_dim() const { return O_; }
  index_t act_dim() const { return U_; }
  nn::ParameterList<T> parameters() { return net_.parameters(); }

 private:
  index_t O_ = 0, U_ = 0;
  Regressor<T> net_;
};

}  // namespace coordiff::auxiliary
