#pragma once
// Forward noising q(x_k | x_0) (DDPM, Ho et al. 2020, eq. 4) and the per-sample noise streams that
// make sampling reproducible: sample b of a batch draws from the Philox stream keyed by its global
// index, the round and the purpose of the draw, so its output does not depend on the batch it is in,
// on the thread count, or on what other samples drew.
#include <cmath>
#include <cstdint>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/host_device.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::diffusion {

/// x_k = sqrt(abar) x0 + sqrt(1 - abar) eps, one abar for the whole tensor.
template <class T>
Tensor<T> add_noise(const Tensor<T>& x0, const Tensor<T>& eps, double alpha_bar) {
  require_shape(eps.shape(), x0.shape(), "add_noise: noise");
  Tensor<T> x(x0.shape());
  const double a = std::sqrt(alpha_bar), s = std::sqrt(1.0 - alpha_bar);
  for (index_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(a * x0[i] + s * eps[i]);
  return x;
}

/// x_k = sqrt(abar_b) x0 + sqrt(1 - abar_b) eps with one abar per sample (leading axis).
template <class T>
Tensor<T> add_noise(const Tensor<T>& x0, const Tensor<T>& eps, const std::vector<double>& alpha_bar) {
  require_shape(eps.shape(), x0.shape(), "add_noise: noise");
  require<ShapeError>(x0.rank() >= 1 && static_cast<index_t>(alpha_bar.size()) == x0.dim(0), "add_noise: ",
                      alpha_bar.size(), " alpha_bar values for a batch of ", x0.rank() ? x0.dim(0) : 0);
  Tensor<T> x(x0.shape());
  const index_t B = x0.dim(0), per = B ? x0.size() / B : 0;
  for (index_t b = 0; b < B; ++b) {
    const double a = std::sqrt(alpha_bar[static_cast<std::size_t>(b)]), s = std::sqrt(1.0 - alpha_bar[static_cast<std::size_t>(b)]);
    for (index_t j = b * per; j < (b + 1) * per; ++j) x[j] = static_cast<T>(a * x0[j] + s * eps[j]);
  }
  return x;
}

/// What a draw is for; part of the stream key so that the draws of different purposes never overlap.
enum class NoisePurpose : std::uint64_t { Initial = 0, Step = 1, Paste = 2, Renoise = 3 };

/// The Philox stream of sample `global_sample`'s draws of one round and purpose, and the counter block
/// where event `event` of a sample with `per_sample` values starts (host and device: the CUDA sampler
/// draws the same numbers).
COORDIFF_HOST_DEVICE std::uint64_t sample_noise_stream(std::uint64_t global_sample, std::uint64_t round,
                                                       std::uint64_t purpose) {
  return (global_sample << 12) | (round << 2) | purpose;
}
COORDIFF_HOST_DEVICE std::uint64_t sample_noise_padded(std::uint64_t per_sample) { return (per_sample + 3) / 4 * 4; }

/// Standard normal noise for a batch whose sample b has global index first_sample + b.
/// Stream key: (first_sample + b) << 12 | round << 2 | purpose; counter: event * (padded sample size) + j.
class SampleNoise {
 public:
  static constexpr std::uint64_t kMaxRounds = 1024;

  SampleNoise(std::uint64_t seed, std::uint64_t first_sample, std::uint64_t round = 0)
      : seed_(seed), first_(first_sample), round_(round) {
    require<ConfigError>(round < kMaxRounds, "SampleNoise: at most ", kMaxRounds, " rounds, got round ", round);
  }
  SampleNoise for_round(std::uint64_t round) const { return SampleNoise(seed_, first_, round); }

  /// Fills out [B, ...] for one event (e.g. the index of the step in the plan).
  template <class T>
  void fill(Tensor<T>& out, NoisePurpose purpose, std::uint64_t event) const {
    require<ShapeError>(out.rank() >= 1, "SampleNoise: needs a batch axis");
    const index_t B = out.dim(0), per = B ? out.size() / B : 0;
    const std::uint64_t padded = sample_noise_padded(static_cast<std::uint64_t>(per));
#pragma omp parallel for schedule(static) if (out.size() > 65536)
    for (index_t b = 0; b < B; ++b) {
      const Philox gen(seed_, stream(static_cast<std::uint64_t>(b), purpose));
      const std::uint64_t base = event * padded;
      for (index_t j = 0; j < per; j += 4) {  // base is a multiple of 4: whole Philox blocks
        const auto n4 = gen.normal4((base + static_cast<std::uint64_t>(j)) / 4);
        for (index_t r = 0; r < 4 && j + r < per; ++r) out[b * per + j + r] = static_cast<T>(n4[static_cast<std::size_t>(r)]);
      }
    }
  }
  template <class T>
  Tensor<T> normal(const Shape& shape, NoisePurpose purpose, std::uint64_t event) const {
    Tensor<T> t(shape);
    fill(t, purpose, event);
    return t;
  }

  std::uint64_t seed() const { return seed_; }
  std::uint64_t first_sample() const { return first_; }
  std::uint64_t round() const { return round_; }

 private:
  std::uint64_t stream(std::uint64_t b, NoisePurpose p) const {
    return sample_noise_stream(first_ + b, round_, static_cast<std::uint64_t>(p));
  }
  std::uint64_t seed_, first_, round_;
};

}  // namespace coordiff::diffusion
