#pragma once
// Counter-based Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// A draw is a pure function of (seed, stream, index): the same numbers come out whatever the thread
// count or backend, which is what makes sampling reproducible. Index i of a stream lives in lane i%4
// of block i/4, so a tensor can be filled in parallel in any order.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "coordiff/core/host_device.hpp"
#include "coordiff/core/tensor.hpp"

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

/// Philox4x32-10 on raw arrays; callable from host and CUDA device code.
COORDIFF_HOST_DEVICE void philox4x32_10(const std::uint32_t counter[4], const std::uint32_t key[2],
                                        std::uint32_t out[4]) {
  std::uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
  std::uint32_t k[2] = {key[0], key[1]};
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k[0] += detail::kPhiloxW0;
      k[1] += detail::kPhiloxW1;
    }
    detail::philox_round(c, k);
  }
  out[0] = c[0];
  out[1] = c[1];
  out[2] = c[2];
  out[3] = c[3];
}

/// Block `block_index` of the stream keyed by (seed, stream): counter = (block_index, stream), key = seed.
COORDIFF_HOST_DEVICE void philox_stream_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block_index,
                                              std::uint32_t out[4]) {
  const std::uint32_t counter[4] = {static_cast<std::uint32_t>(block_index), static_cast<std::uint32_t>(block_index >> 32),
                                    static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)};
  const std::uint32_t key[2] = {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  philox4x32_10(counter, key, out);
}

/// 32 random bits -> uniform double in the open interval (0, 1).
COORDIFF_HOST_DEVICE double uniform_open01(std::uint32_t bits) {
  return (static_cast<double>(bits) + 0.5) * 2.3283064365386963e-10;  // 2^-32
}

/// Box-Muller on two 32-bit draws -> two standard normals (computed in double on every backend).
COORDIFF_HOST_DEVICE void box_muller(std::uint32_t a, std::uint32_t b, double& n0, double& n1) {
  const double r = sqrt(-2.0 * log(uniform_open01(a)));
  const double theta = 6.283185307179586 * uniform_open01(b);  // 2*pi
  n0 = r * cos(theta);
  n1 = r * sin(theta);
}

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

/// A keyed stream of random numbers: key = seed, counter = (index/4, stream).
class Philox {
 public:
  constexpr Philox(std::uint64_t seed, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}
  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }

  PhiloxBlock block(std::uint64_t block_index) const {
    PhiloxBlock b;
    philox_stream_block(seed_, stream_, block_index, b.data());
    return b;
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
    box_muller(b[0], b[1], out[0], out[1]);
    box_muller(b[2], b[3], out[2], out[3]);
    return out;
  }

  /// Fills t[i] = mean + stddev * normal(offset + i). Parallel-safe and order-independent; each Philox
  /// block (four values) is computed once.
  template <class T>
  void fill_normal(Tensor<T>& t, std::uint64_t offset = 0, T mean = T(0), T stddev = T(1)) const {
    for_each_block(t.size(), offset, [&](std::uint64_t block, std::uint64_t first, std::uint64_t last) {
      const auto n = normal4(block);
      for (std::uint64_t idx = first; idx < last; ++idx)
        t[static_cast<index_t>(idx - offset)] = static_cast<T>(mean + stddev * n[idx % 4]);
    });
  }
  /// Fills t[i] uniformly in (lo, hi) from index offset + i.
  template <class T>
  void fill_uniform(Tensor<T>& t, T lo, T hi, std::uint64_t offset = 0) const {
    for_each_block(t.size(), offset, [&](std::uint64_t block, std::uint64_t first, std::uint64_t last) {
      const PhiloxBlock b = this->block(block);
      for (std::uint64_t idx = first; idx < last; ++idx)
        t[static_cast<index_t>(idx - offset)] = static_cast<T>(lo + (hi - lo) * uniform_open01(b[idx % 4]));
    });
  }

 private:
  /// fn(block, first, last) for every Philox block touching indices [offset, offset + n), with the
  /// indices [first, last) of that range inside the block.
  template <class Fn>
  static void for_each_block(index_t n, std::uint64_t offset, Fn&& fn) {
    if (n <= 0) return;
    const std::uint64_t begin = offset / 4, end = (offset + static_cast<std::uint64_t>(n) - 1) / 4 + 1;
    const auto blocks = static_cast<std::int64_t>(end - begin);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t k = 0; k < blocks; ++k) {
      const std::uint64_t block = begin + static_cast<std::uint64_t>(k);
      fn(block, std::max(block * 4, offset), std::min(block * 4 + 4, offset + static_cast<std::uint64_t>(n)));
    }
  }
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
