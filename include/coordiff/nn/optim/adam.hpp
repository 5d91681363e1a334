#pragma once
// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019) with torch.optim semantics:
//   g <- g + wd*p (Adam) | p <- p*(1 - lr*wd) (AdamW);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
//   denom = sqrt(v_hat_max or v)/sqrt(1-b2^t) + eps;  p <- p - lr/(1-b1^t) * m / denom
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // true = AdamW
  bool amsgrad = false;

  void validate() const {
    require<ConfigError>(lr >= 0, "Adam: learning rate must be >= 0, got ", lr);
    require<ConfigError>(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "Adam: betas must lie in [0, 1), got (",
                         beta1, ", ", beta2, ")");
    require<ConfigError>(eps >= 0 && weight_decay >= 0, "Adam: eps and weight_decay must be >= 0");
  }
};

/// AdamW defaults of torch.optim.AdamW (weight decay 1e-2, decoupled).
inline AdamOptions adamw_options(double lr = 1e-3, double weight_decay = 1e-2) {
  AdamOptions o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.decoupled_weight_decay = true;
  return o;
}

template <class T>
class Adam {
 public:
  Adam(ParameterList<T> params, AdamOptions options = {}) : params_(std::move(params)), opt_(options) {
    opt_.validate();
    for (auto& p : params_) {
      exp_avg_.emplace_back(p.param->shape());
      exp_avg_sq_.emplace_back(p.param->shape());
      if (opt_.amsgrad) max_exp_avg_sq_.emplace_back(p.param->shape());
    }
  }

  double lr() const { return opt_.lr; }
  void set_lr(double lr) {
    require<ConfigError>(lr >= 0, "Adam: learning rate must be >= 0, got ", lr);
    opt_.lr = lr;
  }
  std::int64_t step_count() const { return step_; }
  const AdamOptions& options() const { return opt_; }
  void zero_grad() { nn::zero_grad(params_); }

  /// One update from the accumulated gradients. A non-finite gradient raises NumericError naming the
  /// parameter before anything is modified.
  void step() {
    for (auto& p : params_) require_finite(p.param->grad, "Adam::step: gradient of '" + p.name + "'");
    ++step_;
    const double bc1 = 1 - std::pow(opt_.beta1, static_cast<double>(step_));
    const double bc2 = 1 - std::pow(opt_.beta2, static_cast<double>(step_));
    const double step_size = opt_.lr / bc1, sqrt_bc2 = std::sqrt(bc2);
    for (std::size_t k = 0; k < params_.size(); ++k) {
      Tensor<T>& w = params_[k].param->value;
      const Tensor<T>& g0 = params_[k].param->grad;
      T* m = exp_avg_[k].data();
      T* v = exp_avg_sq_[k].data();
      T* vmax = opt_.amsgrad ? max_exp_avg_sq_[k].data() : nullptr;
      for (index_t i = 0; i < w.size(); ++i) {
        double g = g0[i];
        if (opt_.weight_decay != 0) {
          if (opt_.decoupled_weight_decay) w[i] = static_cast<T>(w[i] * (1 - opt_.lr * opt_.weight_decay));
          else g += opt_.weight_decay * w[i];
        }
        m[i] = static_cast<T>(opt_.beta1 * m[i] + (1 - opt_.beta1) * g);
        v[i] = static_cast<T>(opt_.beta2 * v[i] + (1 - opt_.beta2) * g * g);
        double vv = v[i];
        if (vmax) {
          vmax[i] = std::max(vmax[i], v[i]);
          vv = vmax[i];
        }
        const double denom = std::sqrt(vv) / sqrt_bc2 + opt_.eps;
        w[i] = static_cast<T>(w[i] - step_size * m[i] / denom);
      }
    }
  }

  /// Optimizer state as named tensors (for checkpoints): exp_avg.<param>, exp_avg_sq.<param>, ...
  std::vector<std::pair<std::string, Tensor<T>*>> state() {
    std::vector<std::pair<std::string, Tensor<T>*>> s;
    for (std::size_t k = 0; k < params_.size(); ++k) {
      s.emplace_back("exp_avg." + params_[k].name, &exp_avg_[k]);
      s.emplace_back("exp_avg_sq." + params_[k].name, &exp_avg_sq_[k]);
      if (opt_.amsgrad) s.emplace_back("max_exp_avg_sq." + params_[k].name, &max_exp_avg_sq_[k]);
    }
    return s;
  }
  /// Restores the bias-correction step count with state() (torch keeps it per parameter as "step").
  void set_step_count(std::int64_t s) {
    require<ConfigError>(s >= 0, "Adam: step count must be >= 0, got ", s);
    step_ = s;
  }

 private:
  ParameterList<T> params_;
  AdamOptions opt_;
  std::vector<Tensor<T>> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;
  std::int64_t step_ = 0;
};

/// torch.optim.AdamW: Adam with decoupled weight decay (defaults lr 1e-3, weight_decay 1e-2). Any options
/// passed in are used with decoupled_weight_decay forced on.
template <class T>
class AdamW : public Adam<T> {
 public:
  explicit AdamW(ParameterList<T> params, AdamOptions options = adamw_options())
      : Adam<T>(std::move(params), decoupled(options)) {}

 private:
  static AdamOptions decoupled(AdamOptions o) {
    o.decoupled_weight_decay = true;
    return o;
  }
};

}  // namespace coordiff::nn::optim
