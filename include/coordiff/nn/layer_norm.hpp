#pragma once
// Layer normalisation (Ba et al. 2016; torch.nn.LayerNorm) over the trailing `normalized_shape` dims.
#include <string>

#include "coordiff/backend/cpu/normalize.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

template <class T>
class LayerNorm {
 public:
  LayerNorm() = default;
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5)
      : shape_(std::move(normalized_shape)), eps_(eps), weight_(shape_), bias_(shape_) {
    require<ConfigError>(!shape_.empty() && numel(shape_) > 0, "LayerNorm: empty normalized_shape");
    weight_.value.fill(T(1));
  }
  Parameter<T>& weight() { return weight_; }
  Parameter<T>& bias() { return bias_; }
  void collect_parameters(ParameterList<T>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight_});
    out.push_back({join_name(prefix, "bias"), &bias_});
  }

  Tensor<T> forward(const Tensor<T>& x) {
    const std::size_t r = shape_.size();
    require<ShapeError>(x.rank() >= r && Shape(x.shape().end() - static_cast<std::ptrdiff_t>(r), x.shape().end()) == shape_,
                        "LayerNorm: expected trailing dims ", to_string(shape_), ", got ", to_string(x.shape()));
    const index_t len = numel(shape_), rows = x.size() / len;
    xhat_.resize(x.shape(), false);
    inv_std_.resize({rows}, false);
    backend::cpu::standardize_rows(x.data(), rows, len, eps_, xhat_.data(), inv_std_.data());
    Tensor<T> y(x.shape());
    for (index_t row = 0; row < rows; ++row)
      for (index_t i = 0; i < len; ++i) y[row * len + i] = xhat_[row * len + i] * weight_.value[i] + bias_.value[i];
    cached_ = grad_enabled();
    if (!cached_) xhat_ = Tensor<T>();
    return y;
  }

  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "LayerNorm");
    require_shape(dy.shape(), xhat_.shape(), "LayerNorm::backward dy");
    const index_t len = numel(shape_), rows = dy.size() / len;
    Tensor<T> dxhat(dy.shape());
    for (index_t row = 0; row < rows; ++row)
      for (index_t i = 0; i < len; ++i) {
        const index_t j = row * len + i;
        weight_.grad[i] += dy[j] * xhat_[j];
        bias_.grad[i] += dy[j];
        dxhat[j] = dy[j] * weight_.value[i];
      }
    Tensor<T> dx(dy.shape());
    backend::cpu::standardize_rows_backward(dxhat.data(), xhat_.data(), inv_std_.data(), rows, len, dx.data());
    return dx;
  }

 private:
  Shape shape_;
  double eps_ = 1e-5;
  Parameter<T> weight_, bias_;
  Tensor<T> xhat_, inv_std_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
