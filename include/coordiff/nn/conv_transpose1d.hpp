#pragma once
// Transposed 1-D convolution (torch.nn.ConvTranspose1d): the adjoint of Conv1d's im2col, one GEMM per pass.
#include <string>

#include "coordiff/backend/cpu/gemm.hpp"
#include "coordiff/backend/cpu/im2col.hpp"
#include "coordiff/nn/init.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

template <class T>
class ConvTranspose1d {
 public:
  ConvTranspose1d() = default;
  /// weight [Cin, Cout, K] as PyTorch; PyTorch's init uses fan_in = weight.size(1) * K = Cout * K.
  ConvTranspose1d(index_t in_channels, index_t out_channels, index_t kernel, Rng& rng, index_t stride = 1,
                  index_t padding = 0, index_t output_padding = 0, index_t dilation = 1, bool bias = true)
      : cin_(in_channels), cout_(out_channels), k_(kernel), s_(stride), p_(padding), op_(output_padding),
        d_(dilation), has_bias_(bias), weight_(Shape{in_channels, out_channels, kernel}) {
    require<ConfigError>(cin_ > 0 && cout_ > 0 && k_ > 0 && s_ > 0 && p_ >= 0 && d_ > 0 && op_ >= 0 &&
                             (op_ < s_ || op_ < d_),
                         "ConvTranspose1d: invalid configuration in=", cin_, " out=", cout_, " kernel=", k_,
                         " stride=", s_, " padding=", p_, " output_padding=", op_, " dilation=", d_);
    init_uniform_fan_in(weight_, cout_ * k_, rng);
    if (has_bias_) {
      bias_ = Parameter<T>(Shape{cout_});
      init_uniform_fan_in(bias_, cout_ * k_, rng);
    }
  }

  Parameter<T>& weight() { return weight_; }
  Parameter<T>& bias() { return bias_; }
  index_t output_length(index_t L) const { return (L - 1) * s_ - 2 * p_ + d_ * (k_ - 1) + op_ + 1; }

  void collect_parameters(ParameterList<T>& out, const std::string& prefix) {
    out.push_back({join_name(prefix, "weight"), &weight_});
    if (has_bias_) out.push_back({join_name(prefix, "bias"), &bias_});
  }

  /// x [N, Cin, L] -> [N, Cout, (L-1)s - 2p + d(K-1) + output_padding + 1].
  Tensor<T> forward(const Tensor<T>& x) {
    require<ShapeError>(x.rank() == 3 && x.dim(1) == cin_, "ConvTranspose1d: expected input [N, ", cin_,
                        ", L], got ", to_string(x.shape()));
    const index_t N = x.dim(0), L = x.dim(2), Lout = output_length(L);
    require<ShapeError>(Lout > 0, "ConvTranspose1d: output length ", Lout, " is not positive for input length ", L);
    geom_ = {cout_, Lout, L, k_, s_, p_, d_};
    n_ = N;
    xcm_.resize({cin_, N * L}, false);
    backend::cpu::batch_to_channel_major(x.data(), N, cin_, L, xcm_.data());
    Tensor<T> cols({cout_ * k_, N * L});
    backend::cpu::gemm(backend::cpu::Trans::Yes, backend::cpu::Trans::No, cout_ * k_, N * L, cin_, T(1),
                       weight_.value.data(), cout_ * k_, xcm_.data(), N * L, T(0), cols.data(), N * L);
    Tensor<T> y({N, cout_, Lout});
    backend::cpu::col2im_1d(cols.data(), N, geom_, y.data());
    if (has_bias_)
      for (index_t n = 0; n < N; ++n)
        for (index_t o = 0; o < cout_; ++o) {
          T* row = y.data() + (n * cout_ + o) * Lout;
          for (index_t i = 0; i < Lout; ++i) row[i] += bias_.value[o];
        }
    cached_ = grad_enabled();
    if (!cached_) xcm_ = Tensor<T>();
    return y;
  }

  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "ConvTranspose1d");
    const index_t L = geom_.cols_per_sample, Lout = geom_.signal_length, ncol = n_ * L;
    require_shape(dy.shape(), {n_, cout_, Lout}, "ConvTranspose1d::backward dy");
    Tensor<T> dcols({cout_ * k_, ncol});
    backend::cpu::im2col_1d(dy.data(), n_, geom_, dcols.data());
    Tensor<T> dxcm({cin_, ncol});
    backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::No, cin_, ncol, cout_ * k_, T(1),
                       weight_.value.data(), cout_ * k_, dcols.data(), ncol, T(0), dxcm.data(), ncol);
    backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::Yes, cin_, cout_ * k_, ncol, T(1), xcm_.data(),
                       ncol, dcols.data(), ncol, T(1), weight_.grad.data(), cout_ * k_);
    if (has_bias_)
      for (index_t o = 0; o < cout_; ++o) {
        T s = 0;
        for (index_t n = 0; n < n_; ++n)
          for (index_t i = 0; i < Lout; ++i) s += dy[(n * cout_ + o) * Lout + i];
        bias_.grad[o] += s;
      }
    Tensor<T> dx({n_, cin_, L});
    backend::cpu::channel_major_to_batch(dxcm.data(), n_, cin_, L, dx.data());
    return dx;
  }

 private:
  index_t cin_ = 0, cout_ = 0, k_ = 1, s_ = 1, p_ = 0, op_ = 0, d_ = 1;
  bool has_bias_ = true;
  Parameter<T> weight_, bias_;
  backend::cpu::Conv1dGeometry geom_{};
  index_t n_ = 0;
  Tensor<T> xcm_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
