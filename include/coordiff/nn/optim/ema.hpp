#pragma once
// Exponential moving average of weights with Diffuser/MADiff's schedule: before start_step the
// average is reset to the current weights; afterwards, every update_every steps,
// ema <- decay * ema + (1 - decay) * weights.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn::optim {

template <class T>
class Ema {
 public:
  Ema(ParameterList<T> params, double decay = 0.995, std::int64_t start_step = 2000, std::int64_t update_every = 10)
      : params_(std::move(params)), decay_(decay), start_(start_step), every_(update_every) {
    require<ConfigError>(decay >= 0 && decay <= 1, "Ema: decay must lie in [0, 1], got ", decay);
    require<ConfigError>(update_every >= 1, "Ema: update_every must be >= 1, got ", update_every);
    for (auto& p : params_) shadow_.push_back(p.param->value);
  }

  /// Call once per optimisation step with the step number (as MADiff's trainer does).
  void update(std::int64_t step) {
    if (step % every_ != 0) return;
    if (step < start_) {
      for (std::size_t k = 0; k < params_.size(); ++k) shadow_[k] = params_[k].param->value;
      return;
    }
    for (std::size_t k = 0; k < params_.size(); ++k) {
      const Tensor<T>& w = params_[k].param->value;
      Tensor<T>& s = shadow_[k];
      for (index_t i = 0; i < s.size(); ++i) s[i] = static_cast<T>(decay_ * s[i] + (1 - decay_) * w[i]);
    }
  }

  /// Writes the averaged weights into `target` (a model of the same architecture, e.g. an eval copy).
  void copy_to(const ParameterList<T>& target) const {
    require<ShapeError>(target.size() == shadow_.size(), "Ema::copy_to: ", target.size(), " parameters, expected ",
                        shadow_.size());
    for (std::size_t k = 0; k < target.size(); ++k) {
      require_shape(target[k].param->shape(), shadow_[k].shape(), "Ema::copy_to '" + target[k].name + "'");
      target[k].param->value = shadow_[k];
    }
  }

  std::vector<std::pair<std::string, Tensor<T>*>> shadow() {
    std::vector<std::pair<std::string, Tensor<T>*>> s;
    for (std::size_t k = 0; k < params_.size(); ++k) s.emplace_back("ema." + params_[k].name, &shadow_[k]);
    return s;
  }

 private:
  ParameterList<T> params_;
  double decay_;
  std::int64_t start_, every_;
  std::vector<Tensor<T>> shadow_;
};

}  // namespace coordiff::nn::optim
