#pragma once
// The Barrier family: a control barrier function h(z) of one agent's feature vector z (its state and
// observation, paper 001's h_i(s_i, o_i)), positive inside the certified safe set. Guidance and filters
// evaluate it on every (sample, step, agent) row of a trajectory batch, so the interface is batched:
//   values(z [N, F]) -> [N],   input_gradients(z [N, F]) -> dh/dz [N, F].
// Two barriers: DiscBarrier (analytic: outside a disc in two chosen features) and MlpBarrier (learned,
// eq. 12; cbf_training.hpp).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <string>
#include <utility>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/nn/mlp.hpp"

namespace coordiff::safety {

template <class H, class T>
concept Barrier = requires(const H& h, const Tensor<T>& z) {
  { h.values(z) } -> std::same_as<Tensor<T>>;
  { h.input_gradients(z) } -> std::same_as<Tensor<T>>;
};

template <class H, class T>
constexpr bool check_barrier() {
  static_assert(requires(const H& h, const Tensor<T>& z) {
    { h.values(z) } -> std::same_as<Tensor<T>>;
  }, "coordiff Barrier: missing `Tensor<T> values(const Tensor<T>& z) const` (z [N, F] -> h [N])");
  static_assert(requires(const H& h, const Tensor<T>& z) {
    { h.input_gradients(z) } -> std::same_as<Tensor<T>>;
  }, "coordiff Barrier: missing `Tensor<T> input_gradients(const Tensor<T>& z) const` (z [N, F] -> dh/dz [N, F])");
  return true;
}

/// h(z) = (z_x - cx)^2 + (z_y - cy)^2 - r^2: non-negative outside the disc of radius r around (cx, cy) in
/// features (x_feature, y_feature). A valid CBF for single-integrator motion away from one obstacle.
template <class T>
struct DiscBarrier {
  index_t x_feature = 0, y_feature = 1;
  double cx = 0, cy = 0, radius = 1;

  void check_input(const Tensor<T>& z) const {
    require<ShapeError>(z.rank() == 2 && z.dim(1) > std::max(x_feature, y_feature), "DiscBarrier: expected z [N, F] with F > ",
                        std::max(x_feature, y_feature), ", got ", to_string(z.shape()));
  }
  Tensor<T> values(const Tensor<T>& z) const {
    check_input(z);
    Tensor<T> h({z.dim(0)});
    for (index_t n = 0; n < z.dim(0); ++n) {
      const double dx = z(n, x_feature) - cx, dy = z(n, y_feature) - cy;
      h[n] = static_cast<T>(dx * dx + dy * dy - radius * radius);
    }
    return h;
  }
  Tensor<T> input_gradients(const Tensor<T>& z) const {
    check_input(z);
    Tensor<T> g(z.shape());
    for (index_t n = 0; n < z.dim(0); ++n) {
      g(n, x_feature) = static_cast<T>(2 * (z(n, x_feature) - cx));
      g(n, y_feature) = static_cast<T>(2 * (z(n, y_feature) - cy));
    }
    return g;
  }
};

/// A learned barrier: an MLP F -> hidden -> hidden -> 1 with SiLU (smooth, so that its input gradient,
/// which guidance follows, is continuous). `input_gradients` runs a backward pass, which also adds to the
/// MLP's parameter gradients; training zeroes them before every step.
template <class T>
class MlpBarrier {
 public:
  MlpBarrier() = default;
  MlpBarrier(index_t features, index_t hidden, Rng& rng)
      : features_(features), net_({features, hidden, hidden, 1}, nn::Activation::SiLU, rng) {
    require<ConfigError>(features >= 1 && hidden >= 1, "MlpBarrier: features and hidden must be >= 1, got ", features, ", ",
                         hidden);
  }
  index_t features() const { return features_; }
  nn::MLP<T>& network() { return net_; }
  void collect_parameters(nn::ParameterList<T>& out, const std::string& prefix) { net_.collect_parameters(out, prefix); }

  Tensor<T> values(const Tensor<T>& z) const {
    check_input(z);
    nn::NoGradGuard no_grad;
    return net_.forward(z).reshape({z.dim(0)});
  }
  Tensor<T> input_gradients(const Tensor<T>& z) const {
    check_input(z);
    nn::GradGuard with_grad;
    net_.forward(z);
    return net_.backward(Tensor<T>({z.dim(0), 1}, T(1)));
  }
  /// Forward with activations kept (training): h [N].
  Tensor<T> forward_train(const Tensor<T>& z) {
    check_input(z);
    return net_.forward(z).reshape({z.dim(0)});
  }
  /// Backward of forward_train for dL/dh [N]: adds the parameter gradients.
  void backward_train(const Tensor<T>& dh) { net_.backward(dh.reshape({dh.dim(0), 1})); }

 private:
  void check_input(const Tensor<T>& z) const {
    require<ShapeError>(z.rank() == 2 && z.dim(1) == features_, "MlpBarrier: expected z [N, ", features_, "], got ",
                        to_string(z.shape()));
    require_finite(z, "MlpBarrier input");
  }
  index_t features_ = 0;
  mutable nn::MLP<T> net_;
};

}  // namespace coordiff::safety
