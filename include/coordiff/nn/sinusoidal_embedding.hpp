#pragma once
// Sinusoidal position / diffusion-step embedding (Vaswani et al. 2017, as in Diffuser/MADiff):
// freq_j = exp(-j ln(10000) / (half - 1)), out = [sin(t freq), cos(t freq)].
#include <cmath>
#include <string>

#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

template <class T>
class SinusoidalPosEmb {
 public:
  SinusoidalPosEmb() = default;
  explicit SinusoidalPosEmb(index_t dim) : dim_(dim) {
    require<ConfigError>(dim >= 4 && dim % 2 == 0, "SinusoidalPosEmb: dim must be even and >= 4, got ", dim);
  }
  index_t dim() const { return dim_; }
  void collect_parameters(ParameterList<T>&, const std::string&) {}

  T frequency(index_t j) const { return static_cast<T>(frequency_d(j)); }

  /// t [N] -> [N, dim]
  Tensor<T> forward(const Tensor<T>& t) {
    require_rank(t.shape(), 1, "SinusoidalPosEmb input");
    const index_t N = t.dim(0), half = dim_ / 2;
    Tensor<T> y({N, dim_});
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < half; ++j) {
        // The phase is formed in double: in float32, t ~ 1000 rad would carry ~6e-5 absolute phase error.
        const double a = static_cast<double>(t[n]) * frequency_d(j);
        y(n, j) = static_cast<T>(std::sin(a));
        y(n, half + j) = static_cast<T>(std::cos(a));
      }
    if (grad_enabled()) t_ = t, cached_ = true;
    return y;
  }

  /// dy [N, dim] -> dt [N]
  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "SinusoidalPosEmb");
    const index_t N = t_.dim(0), half = dim_ / 2;
    require_shape(dy.shape(), {N, dim_}, "SinusoidalPosEmb::backward dy");
    Tensor<T> dt({N});
    for (index_t n = 0; n < N; ++n) {
      double acc = 0;
      for (index_t j = 0; j < half; ++j) {
        const double f = frequency_d(j), a = static_cast<double>(t_[n]) * f;
        acc += f * (static_cast<double>(dy(n, j)) * std::cos(a) - static_cast<double>(dy(n, half + j)) * std::sin(a));
      }
      dt[n] = static_cast<T>(acc);
    }
    return dt;
  }

 private:
  double frequency_d(index_t j) const {
    return std::exp(-static_cast<double>(j) * std::log(10000.0) / static_cast<double>(dim_ / 2 - 1));
  }
  index_t dim_ = 0;
  Tensor<T> t_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
