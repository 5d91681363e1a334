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

  T frequency(index_t j) const {
    const index_t half = dim_ / 2;
    return static_cast<T>(std::exp(-static_cast<double>(j) * std::log(10000.0) / static_cast<double>(half - 1)));
  }

  /// t [N] -> [N, dim]
  Tensor<T> forward(const Tensor<T>& t) {
    require_rank(t.shape(), 1, "SinusoidalPosEmb input");
    const index_t N = t.dim(0), half = dim_ / 2;
    Tensor<T> y({N, dim_});
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < half; ++j) {
        const T a = t[n] * frequency(j);
        y(n, j) = std::sin(a);
        y(n, half + j) = std::cos(a);
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
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < half; ++j) {
        const T f = frequency(j), a = t_[n] * f;
        dt[n] += dy(n, j) * std::cos(a) * f - dy(n, half + j) * std::sin(a) * f;
      }
    return dt;
  }

 private:
  index_t dim_ = 0;
  Tensor<T> t_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
