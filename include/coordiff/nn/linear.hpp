#pragma once
// Fully connected layer y = x W^T + b over the last axis (torch.nn.Linear).
#include <string>

#include "coordiff/backend/cpu/gemm.hpp"
#include "coordiff/nn/init.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

template <class T>
class Linear {
 public:
  Linear() = default;
  /// weight [out, in], bias [out] (optional), initialised as PyTorch does.
  Linear(index_t in_features, index_t out_features, Rng& rng, bool bias = true)
      : in_(in_features), out_(out_features), has_bias_(bias), weight_(Shape{out_features, in_features}) {
    require<ConfigError>(in_features > 0 && out_features > 0, "Linear: features must be positive, got in=",
                         in_features, " out=", out_features);
    init_uniform_fan_in(weight_, in_, rng);
    if (has_bias_) {
      bias_ = Parameter<T>(Shape{out_});
      init_uniform_fan_in(bias_, in_, rng);
    }
  }

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }
  Parameter<T>& weight() { return weight_; }
  Parameter<T>& bias() { return bias_; }

  void collect_parameters(ParameterList<T>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight_});
    if (has_bias_) out.push_back({join_name(prefix, "bias"), &bias_});
  }

  /// x: (..., in) -> (..., out)
  Tensor<T> forward(const Tensor<T>& x) {
    require<ShapeError>(x.rank() >= 1 && x.dim(-1) == in_, "Linear: expected input (..., ", in_, "), got ",
                        to_string(x.shape()));
    const index_t rows = x.size() / in_;
    Shape ys = x.shape();
    ys.back() = out_;
    Tensor<T> y(ys);
    if (has_bias_)
      for (index_t r = 0; r < rows; ++r) std::copy(bias_.value.begin(), bias_.value.end(), y.data() + r * out_);
    backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::Yes, rows, out_, in_, T(1), x.data(), in_,
                       weight_.value.data(), in_, has_bias_ ? T(1) : T(0), y.data(), out_);
    if (grad_enabled()) {
      input_ = x;
      cached_ = true;
    }
    return y;
  }

  /// dy: (..., out) -> dx: (..., in); accumulates weight/bias gradients.
  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "Linear");
    Shape expect = input_.shape();
    expect.back() = out_;
    require_shape(dy.shape(), expect, "Linear::backward dy");
    const index_t rows = dy.size() / out_;
    Tensor<T> dx(input_.shape());
    backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::No, rows, in_, out_, T(1), dy.data(), out_,
                       weight_.value.data(), in_, T(0), dx.data(), in_);
    backend::cpu::gemm(backend::cpu::Trans::Yes, backend::cpu::Trans::No, out_, in_, rows, T(1), dy.data(), out_,
                       input_.data(), in_, T(1), weight_.grad.data(), in_);
    if (has_bias_)
      for (index_t r = 0; r < rows; ++r)
        for (index_t o = 0; o < out_; ++o) bias_.grad[o] += dy[r * out_ + o];
    return dx;
  }

 private:
  index_t in_ = 0, out_ = 0;
  bool has_bias_ = true;
  Parameter<T> weight_, bias_;
  Tensor<T> input_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
