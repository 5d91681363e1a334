#pragma once
// Multi-layer perceptron Linear -> act -> ... -> Linear, named like a torch nn.Sequential of the same
// layers (Linear i at index 2i): MADiff's inverse dynamics and MASTARS's auxiliary models.
#include <string>
#include <vector>

#include "coordiff/nn/activations.hpp"
#include "coordiff/nn/linear.hpp"

namespace coordiff::nn {

template <class T>
class MLP {
 public:
  MLP() = default;
  /// first_index shifts the Sequential indices (e.g. 1 when a parameter-free module sits at index 0, as
  /// the sinusoidal embedding in Diffuser's time_mlp).
  MLP(std::vector<index_t> sizes, Activation act, Rng& rng, bool activate_last = false, index_t first_index = 0)
      : act_(act), activate_last_(activate_last), first_index_(first_index) {
    require<ConfigError>(sizes.size() >= 2, "MLP: need at least input and output sizes, got ", sizes.size());
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) layers_.emplace_back(sizes[i], sizes[i + 1], rng);
    pre_.resize(layers_.size());
  }
  std::vector<Linear<T>>& layers() { return layers_; }

  void collect_parameters(ParameterList<T>& out, const std::string& prefix) {
    for (std::size_t i = 0; i < layers_.size(); ++i) layers_[i].collect_parameters(
          out, join_name(prefix, std::to_string(first_index_ + 2 * static_cast<index_t>(i))));
  }

  Tensor<T> forward(const Tensor<T>& x) {
    Tensor<T> h = x;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      h = layers_[i].forward(h);
      if (activated(i)) {
        Tensor<T> a(h.shape());
        activation_forward(act_, h.data(), a.data(), h.size());
        if (grad_enabled()) pre_[i] = std::move(h);
        h = std::move(a);
      }
    }
    return h;
  }

  Tensor<T> backward(const Tensor<T>& dy) {
    Tensor<T> g = dy;
    for (std::size_t i = layers_.size(); i-- > 0;) {
      if (activated(i)) {
        require_cached(pre_[i].shape() == g.shape(), "MLP");
        Tensor<T> d(g.shape());
        activation_backward(act_, pre_[i].data(), g.data(), d.data(), g.size());
        g = std::move(d);
      }
      g = layers_[i].backward(g);
    }
    return g;
  }

 private:
  bool activated(std::size_t i) const { return i + 1 < layers_.size() || activate_last_; }
  std::vector<Linear<T>> layers_;
  Activation act_ = Activation::ReLU;
  bool activate_last_ = false;
  index_t first_index_ = 0;
  std::vector<Tensor<T>> pre_;
};

}  // namespace coordiff::nn
