#pragma once
// Group normalisation (Wu & He 2018; torch.nn.GroupNorm) over x [N, C, *], per-channel affine.
#include <string>

#include "coordiff/backend/cpu/normalize.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

template <class T>
class GroupNorm {
 public:
  GroupNorm() = default;
  GroupNorm(index_t groups, index_t channels, double eps = 1e-5)
      : groups_(groups), channels_(channels), eps_(eps), weight_(Shape{channels}), bias_(Shape{channels}) {
    require<ConfigError>(groups > 0 && channels > 0 && channels % groups == 0, "GroupNorm: ", channels,
                         " channels cannot be split into ", groups, " groups");
    weight_.value.fill(T(1));
  }
  Parameter<T>& weight() { return weight_; }
  Parameter<T>& bias() { return bias_; }

  void collect_parameters(ParameterList<T>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight_});
    out.push_back({join_name(prefix, "bias"), &bias_});
  }

  Tensor<T> forward(const Tensor<T>& x) {
    require<ShapeError>(x.rank() >= 2 && x.dim(1) == channels_, "GroupNorm: expected input [N, ", channels_,
                        ", ...], got ", to_string(x.shape()));
    n_ = x.dim(0);
    spatial_ = numel(Shape(x.shape().begin() + 2, x.shape().end()));  // not size / (N*C): N may be 0
    const index_t rows = n_ * groups_, len = (channels_ / groups_) * spatial_;
    xhat_.resize(x.shape(), false);
    inv_std_.resize({rows}, false);
    backend::cpu::standardize_rows(x.data(), rows, len, eps_, xhat_.data(), inv_std_.data());
    Tensor<T> y(x.shape());
#pragma omp parallel for schedule(static) if (x.size() > 32768)
    for (index_t nc = 0; nc < n_ * channels_; ++nc) {
      const index_t c = nc % channels_;
      const T w = weight_.value[c], b = bias_.value[c];
      for (index_t i = 0; i < spatial_; ++i) y[nc * spatial_ + i] = xhat_[nc * spatial_ + i] * w + b;
    }
    cached_ = grad_enabled();
    if (!cached_) xhat_ = Tensor<T>();
    return y;
  }

  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "GroupNorm");
    require_shape(dy.shape(), xhat_.shape(), "GroupNorm::backward dy");
    Tensor<T> dxhat(dy.shape());
    for (index_t n = 0; n < n_; ++n)  // fixed order over the batch keeps parameter gradients deterministic
      for (index_t c = 0; c < channels_; ++c) {
        const index_t off = (n * channels_ + c) * spatial_;
        T gw = 0, gb = 0;
        for (index_t i = 0; i < spatial_; ++i) {
          gw += dy[off + i] * xhat_[off + i];
          gb += dy[off + i];
          dxhat[off + i] = dy[off + i] * weight_.value[c];
        }
        weight_.grad[c] += gw;
        bias_.grad[c] += gb;
      }
    Tensor<T> dx(dy.shape());
    backend::cpu::standardize_rows_backward(dxhat.data(), xhat_.data(), inv_std_.data(), n_ * groups_,
                                            (channels_ / groups_) * spatial_, dx.data());
    return dx;
  }

 private:
  index_t groups_ = 1, channels_ = 1;
  double eps_ = 1e-5;
  Parameter<T> weight_, bias_;
  index_t n_ = 0, spatial_ = 0;
  Tensor<T> xhat_, inv_std_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
