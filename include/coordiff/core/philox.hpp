#pragma once
// Counter-based Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// A draw is a pure function of (seed, stream, index): the same numbers come out whatever the thread
// count or backend, which is what makes sampling reproducible. Index i of a stream lives in lane i%4
// of block i/4, so a tensor can be filled in parallel in any order.
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "coordiff/core/tensor.hpp"

#ifdef __CUDACC__
#define COORDIFF_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define COORDIFF_HOST_DEVICE inline
#endif

namespace coordiff {

using PhiloxBlock = std::array<std::uint32_t, 4>;
using PhiloxKey = std::array<std::uint32_t, 2>;

namespace detail {
inline constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;  // multipliers from the Random123 reference
inline constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;  // Weyl key increments (golden ratio, sqrt(3)-1)
inline constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;

COORDIFF_HOST_DEVICE void philox_round(std::uint32_t c[4], const std::uint32_t k[2]) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c[2];
  const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
  const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
  const std::uint32_t n0 = hi1 ^ c[1] ^ k[0], n2 = hi0 ^ c[3] ^ k[1];
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}
}  // namespace detail

/// The raw Philox4x32 bijection with `rounds` rounds (10 is the standard, crush-resistant choice).
inline PhiloxBlock philox4x32(PhiloxBlock counter, PhiloxKey key, int rounds = 10) {
  std::uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
  std::uint32_t k[2] = {key[0], key[1]};
  for (int r = 0; r < rounds; ++r) {
    if (r > 0) {
      k[0] += detail::kPhiloxW0;
      k[1] += detail::kPhiloxW1;
    }
    detail::philox_round(c, k);
  }
  return {c[0], c[1], c[2], c[3]};
}

/// 32 random bits -> uniform double in the open interval (0, 1).
inline double uniform_open01(std::uint32_t bits) { return (static_cast<double>(bits) + 0.5) * 0x1p-32; }

/// A keyed stream of random numbers: key = seed, counter = (index/4, stream).
class Philox {
 public:
  constexpr Philox(std::uint64_t seed, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}
  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }

  PhiloxBlock block(std::uint64_t block_index) const {
    return philox4x32({static_cast<std::uint32_t>(block_index), static_cast<std::uint32_t>(block_index >> 32),
                       static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)},
                      {static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)});
  }
  std::uint32_t bits(std::uint64_t index) const { return block(index / 4)[index % 4]; }
  /// Uniform in (0, 1) at `index`.
  double uniform(std::uint64_t index) const { return uniform_open01(bits(index)); }
  /// Standard normal at `index` (Box-Muller on lanes (0,1) and (2,3) of block index/4).
  double normal(std::uint64_t index) const {
    const auto n = normal4(index / 4);
    return n[index % 4];
  }
  std::array<double, 4> normal4(std::uint64_t block_index) const {
    const PhiloxBlock b = block(block_index);
    std::array<double, 4> out{};
    for (int pair = 0; pair < 2; ++pair) {
      const double r = std::sqrt(-2.0 * std::log(uniform_open01(b[2 * pair])));
      const double theta = 2.0 * std::numbers::pi * uniform_open01(b[2 * pair + 1]);
      out[2 * pair] = r * std::cos(theta);
      out[2 * pair + 1] = r * std::sin(theta);
    }
    return out;
  }

  /// Fills t[i] = mean + stddev * normal(offset + i). Parallel-safe and order-independent.
  template <class T>
  void fill_normal(Tensor<T>& t, std::uint64_t offset = 0, T mean = T(0), T stddev = T(1)) const {
    const index_t n = t.size();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (index_t i = 0; i < n; ++i)
      t[i] = static_cast<T>(mean + stddev * normal(offset + static_cast<std::uint64_t>(i)));
  }
  /// Fills t[i] uniformly in (lo, hi) from index offset + i.
  template <class T>
  void fill_uniform(Tensor<T>& t, T lo, T hi, std::uint64_t offset = 0) const {
    const index_t n = t.size();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (index_t i = 0; i < n; ++i)
      t[i] = static_cast<T>(lo + (hi - lo) * uniform(offset + static_cast<std::uint64_t>(i)));
  }

 private:
  std::uint64_t seed_;
  std::uint64_t stream_;
};

/// Sequential convenience wrapper: a Philox stream with a running index.
class Rng {
 public:
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0) : gen_(seed, stream) {}
  double uniform() { return gen_.uniform(next_++); }
  double normal() { return gen_.normal(next_++); }
  std::uint32_t bits() { return gen_.bits(next_++); }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>(uniform() * static_cast<double>(n)) % n; }
  template <class T>
  Tensor<T> normal(Shape shape, T mean = T(0), T stddev = T(1)) {
    Tensor<T> t(std::move(shape));
    gen_.fill_normal(t, next_, mean, stddev);
    next_ += round_up4(static_cast<std::uint64_t>(t.size()));
    return t;
  }
  template <class T>
  Tensor<T> uniform(Shape shape, T lo, T hi) {
    Tensor<T> t(std::move(shape));
    gen_.fill_uniform(t, lo, hi, next_);
    next_ += round_up4(static_cast<std::uint64_t>(t.size()));
    return t;
  }
  std::uint64_t position() const { return next_; }
  const Philox& generator() const { return gen_; }

 private:
  // Tensors start on a block boundary so that their values do not depend on earlier scalar draws' parity.
  static std::uint64_t round_up4(std::uint64_t n) { return (n + 3) / 4 * 4; }
  Philox gen_;
  std::uint64_t next_ = 0;
};

}  // namespace coordiff
