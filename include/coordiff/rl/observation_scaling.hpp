#pragma once
// A fixed per-dimension observation standardisation (o - mean) / std in front of every actor and critic
// of the actor-critic learners: what OMAR's BatchNorm on the network inputs converges to, without its
// train/eval mode mismatch. Identity until set.
#include <string>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/nn/mlp.hpp"

namespace coordiff::rl {

template <class T>
class ObservationScaling {
 public:
  explicit ObservationScaling(index_t obs_dim) : mean_({obs_dim}, T(0)), std_({obs_dim}, T(1)) {}

  void set(const Tensor<T>& mean, const Tensor<T>& std, const std::string& who) {
    const index_t O = mean_.size();
    require_shape(mean.shape(), {O}, who + " mean");
    require_shape(std.shape(), {O}, who + " std");
    require_finite(mean, who + " mean");
    require_finite(std, who + " std");
    for (index_t k = 0; k < O; ++k) require<NumericError>(std[k] > 0, who, ": std[", k, "] = ", std[k], " must be > 0");
    mean_ = mean, std_ = std;
  }
  /// Observations [..., O] standardised.
  Tensor<T> operator()(Tensor<T> obs) const {
    const index_t O = mean_.size(), rows = obs.size() / O;
    for (index_t r = 0; r < rows; ++r)
      for (index_t k = 0; k < O; ++k) obs[r * O + k] = (obs[r * O + k] - mean_[k]) / std_[k];
    return obs;
  }
  const Tensor<T>& mean() const { return mean_; }
  const Tensor<T>& std() const { return std_; }

 private:
  Tensor<T> mean_, std_;
};

/// A deterministic actor MLP O -> h -> h -> U (ReLU; tanh is applied by the learner) whose last layer
/// starts in U(-3e-3, 3e-3), so initial actions are near zero (DDPG, Lillicrap et al. 2016; OMAR).
template <class T>
nn::MLP<T> make_deterministic_actor(index_t obs_dim, index_t hidden, index_t act_dim, Rng& rng) {
  nn::MLP<T> actor({obs_dim, hidden, hidden, act_dim}, nn::Activation::ReLU, rng);
  auto& last = actor.layers().back();
  last.weight().value = rng.uniform<T>(last.weight().shape(), T(-3e-3), T(3e-3));
  last.bias().value = rng.uniform<T>(last.bias().shape(), T(-3e-3), T(3e-3));
  return actor;
}

}  // namespace coordiff::rl
