#pragma once
// MASTARS eq. 6 (after Li et al. 2024): keep a generated window only if it agrees with the environment's
// dynamics as learned by a transition model. Actions are recovered with an inverse dynamics model,
// a_t = I(o_t, o_{t+1}), the next observations predicted as f(o_t, a_t), and the window's score is the
// mean squared prediction error
//   score = 1 / ((H - 1) A) * sum_{t < H-1, i} w_{t,i} * mean_k (f(o^i_t, a^i_t)_k - o^i_{t+1,k})^2,
// kept iff score < epsilon. With Scope::Generated (the default, as MASTARS's generator) w_{t,i} = 1
// only for transitions that touch a generated entry - a step of agent i that differs from the batch's
// input window, which the generator leaves bit-identical where it is known - and the sum is still
// divided by all (H - 1) A transitions; with Scope::All every transition counts.
//
// Inverse must provide `Tensor<T> actions(const Tensor<T>& windows [B, H, A, O])` -> [B, H - 1, A, U] and
// Transition `Tensor<T> errors(const Tensor<T>& windows, const Tensor<T>& actions)` -> [B, H - 1, A]
// (auxiliary::InverseDynamics and auxiliary::TransitionModel do). They are held by pointer: the filter
// is cheap to copy and the models are not modified.
#include <cstdint>
#include <vector>

#include "coordiff/filter/callable.hpp"
#include "coordiff/filter/filter.hpp"

namespace coordiff::filter {

template <class Inverse, class Transition>
struct DynamicsConsistency {
  enum class Scope { Generated, All };

  Inverse* inverse = nullptr;
  Transition* transition = nullptr;
  double epsilon = 0.01;  ///< the official MASTARS code's adapt_threshold; paper Table 9 tunes it per task
  Scope scope = Scope::Generated;

  /// Per-sample scores (see above).
  template <class T>
  std::vector<double> score(const Tensor<T>& samples, const diffusion::Batch<T>& batch) const {
    require<ConfigError>(inverse != nullptr && transition != nullptr,
                         "filter::DynamicsConsistency: needs an inverse dynamics and a transition model");
    require<ShapeError>(samples.rank() == 4 && samples.dim(1) >= 2, "filter::DynamicsConsistency: samples must be",
                        " [B, H >= 2, A, O], got ", to_string(samples.shape()));
    const index_t B = samples.dim(0), H = samples.dim(1), A = samples.dim(2), O = samples.dim(3);
    if (scope == Scope::Generated) require_shape(batch.data.shape(), samples.shape(), "filter::DynamicsConsistency batch data");
    const Tensor<T> actions = inverse->actions(samples);
    const Tensor<T> err = transition->errors(samples, actions);
    require_shape(err.shape(), {B, H - 1, A}, "filter::DynamicsConsistency transition errors");
    std::vector<double> s(static_cast<std::size_t>(B), 0.0);
    for (index_t b = 0; b < B; ++b)
      for (index_t a = 0; a < A; ++a) {
        bool prev = scope == Scope::All || generated(samples, batch, b, 0, a, O);
        for (index_t t = 0; t + 1 < H; ++t) {
          const bool next = scope == Scope::All || generated(samples, batch, b, t + 1, a, O);
          if (prev || next) s[static_cast<std::size_t>(b)] += static_cast<double>(err(b, t, a));
          prev = next;
        }
      }
    for (double& v : s) v /= static_cast<double>((H - 1) * A);
    return s;
  }

  template <class T>
  Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>& batch) const {
    const auto scores = [this](const Tensor<T>& x, const diffusion::Batch<T>& b) { return score(x, b); };
    return Threshold<decltype(scores)>{scores, epsilon, "mean transition-model error", "epsilon"}.check(samples, batch);
  }

 private:
  template <class T>
  static bool generated(const Tensor<T>& samples, const diffusion::Batch<T>& batch, index_t b, index_t t, index_t a,
                        index_t O) {
    const T* x = &samples(b, t, a, 0);
    const T* known = &batch.data(b, t, a, 0);
    for (index_t k = 0; k < O; ++k)
      if (x[k] != known[k]) return true;
    return false;
  }
};

/// DynamicsConsistency over the given models (kept by address).
template <class Inverse, class Transition>
DynamicsConsistency<Inverse, Transition> dynamics_consistency(Inverse& inverse, Transition& transition, double epsilon = 0.01) {
  return {&inverse, &transition, epsilon};
}

}  // namespace coordiff::filter
