#pragma once
// 1-D convolution (torch.nn.Conv1d, zero padding) as im2col + one GEMM over the whole batch.
#include <string>

#include "coordiff/backend/cpu/gemm.hpp"
#include "coordiff/backend/cpu/im2col.hpp"
#include "coordiff/nn/init.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

template <class T>
class Conv1d {
 public:
  Conv1d() = default;
  Conv1d(index_t in_channels, index_t out_channels, index_t kernel, Rng& rng, index_t stride = 1,
         index_t padding = 0, index_t dilation = 1, bool bias = true)
      : cin_(in_channels), cout_(out_channels), k_(kernel), s_(stride), p_(padding), d_(dilation), has_bias_(bias),
        weight_(Shape{out_channels, in_channels, kernel}) {
    require<ConfigError>(cin_ > 0 && cout_ > 0 && k_ > 0 && s_ > 0 && p_ >= 0 && d_ > 0,
                         "Conv1d: invalid configuration in=", cin_, " out=", cout_, " kernel=", k_, " stride=", s_,
                         " padding=", p_, " dilation=", d_);
    init_uniform_fan_in(weight_, cin_ * k_, rng);
    if (has_bias_) {
      bias_ = Parameter<T>(Shape{cout_});
      init_uniform_fan_in(bias_, cin_ * k_, rng);
    }
  }

  Parameter<T>& weight() { return weight_; }
  Parameter<T>& bias() { return bias_; }
  index_t in_channels() const { return cin_; }
  index_t out_channels() const { return cout_; }
  index_t output_length(index_t L) const { return (L + 2 * p_ - d_ * (k_ - 1) - 1) / s_ + 1; }

  void collect_parameters(ParameterList<T>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight_});
    if (has_bias_) out.push_back({join_name(prefix, "bias"), &bias_});
  }

  /// x [N, Cin, L] -> [N, Cout, Lout], Lout = (L + 2p - d(k-1) - 1)/s + 1.
  Tensor<T> forward(const Tensor<T>& x) {
    require<ShapeError>(x.rank() == 3 && x.dim(1) == cin_, "Conv1d: expected input [N, ", cin_, ", L], got ",
                        to_string(x.shape()));
    const index_t N = x.dim(0), L = x.dim(2), Lout = output_length(L);
    require<ShapeError>(Lout > 0, "Conv1d: input length ", L, " too short for kernel ", k_, " dilation ", d_);
    geom_ = {cin_, L, Lout, k_, s_, p_, d_};
    n_ = N;
    const index_t ncol = N * Lout;
    col_.resize({cin_ * k_, ncol}, false);
    backend::cpu::im2col_1d(x.data(), N, geom_, col_.data());
    Tensor<T> ycm({cout_, ncol});
    if (has_bias_)
      for (index_t o = 0; o < cout_; ++o) std::fill(ycm.data() + o * ncol, ycm.data() + (o + 1) * ncol, bias_.value[o]);
    backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::No, cout_, ncol, cin_ * k_, T(1),
                       weight_.value.data(), cin_ * k_, col_.data(), ncol, has_bias_ ? T(1) : T(0), ycm.data(), ncol);
    Tensor<T> y({N, cout_, Lout});
    backend::cpu::channel_major_to_batch(ycm.data(), N, cout_, Lout, y.data());
    cached_ = grad_enabled();
    if (!cached_) col_ = Tensor<T>();
    return y;
  }

  /// dy [N, Cout, Lout] -> dx [N, Cin, L]; accumulates weight and bias gradients.
  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "Conv1d");
    const index_t Lout = geom_.cols_per_sample, ncol = n_ * Lout;
    require_shape(dy.shape(), {n_, cout_, Lout}, "Conv1d::backward dy");
    Tensor<T> dycm({cout_, ncol});
    backend::cpu::batch_to_channel_major(dy.data(), n_, cout_, Lout, dycm.data());
    backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::Yes, cout_, cin_ * k_, ncol, T(1), dycm.data(),
                       ncol, col_.data(), ncol, T(1), weight_.grad.data(), cin_ * k_);
    if (has_bias_)
      for (index_t o = 0; o < cout_; ++o) {
        T s = 0;
        for (index_t j = 0; j < ncol; ++j) s += dycm[o * ncol + j];
        bias_.grad[o] += s;
      }
    Tensor<T> dcol({cin_ * k_, ncol});
    backend::cpu::gemm(backend::cpu::Trans::Yes, backend::cpu::Trans::No, cin_ * k_, ncol, cout_, T(1),
                       weight_.value.data(), cin_ * k_, dycm.data(), ncol, T(0), dcol.data(), ncol);
    Tensor<T> dx({n_, cin_, geom_.signal_length});
    backend::cpu::col2im_1d(dcol.data(), n_, geom_, dx.data());
    return dx;
  }

 private:
  index_t cin_ = 0, cout_ = 0, k_ = 1, s_ = 1, p_ = 0, d_ = 1;
  bool has_bias_ = true;
  Parameter<T> weight_, bias_;
  backend::cpu::Conv1dGeometry geom_{};
  index_t n_ = 0;
  Tensor<T> col_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
