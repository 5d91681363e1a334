#include <doctest/doctest.h>

#include <omp.h>

#include <cmath>

#include "coordiff/core/philox.hpp"

using namespace coordiff;

TEST_CASE("philox: Random123 known-answer vectors for philox4x32_10") {
  CHECK(philox4x32({0, 0, 0, 0}, {0, 0}) == PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}) ==
        PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}) ==
        PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
  // The raw-array path used on the GPU gives the same block.
  const std::uint32_t c[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, k[2] = {0xa4093822u, 0x299f31d0u};
  std::uint32_t out[4];
  philox4x32_10(c, k, out);
  CHECK(out[0] == 0xd16cfe09u);
  CHECK(out[3] == 0x24126ea1u);
}

TEST_CASE("philox: normal and uniform draws have the right moments and ranges") {
  Philox g(42, 7);
  const int n = 1'000'000;
  double s = 0, s2 = 0, s4 = 0, umin = 1, umax = 0;
  for (int i = 0; i < n; ++i) {
    const double z = g.normal(static_cast<std::uint64_t>(i));
    s += z, s2 += z * z, s4 += z * z * z * z;
    const double u = g.uniform(static_cast<std::uint64_t>(i));
    umin = std::min(umin, u), umax = std::max(umax, u);
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  CHECK(std::abs(mean) < 5 / std::sqrt(double(n)));  // 5 sigma
  CHECK(std::abs(var - 1) < 5 * std::sqrt(2.0 / n));
  CHECK(std::abs(s4 / n - 3) < 5 * std::sqrt(96.0 / n));  // kurtosis of a normal is 3
  CHECK(umin > 0.0);
  CHECK(umax < 1.0);
}

TEST_CASE("philox: fills are identical across thread counts and keyed by (seed, stream)") {
  Tensor<double> a({200'003}), b({200'003}), c({200'003}), d({200'003});
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  Philox(3, 1).fill_normal(a, 5);
  omp_set_num_threads(2);
  Philox(3, 1).fill_normal(b, 5);
  omp_set_num_threads(before);
  CHECK(a.storage() == b.storage());
  Philox(3, 2).fill_normal(c, 5);
  Philox(4, 1).fill_normal(d, 5);
  CHECK(a.storage() != c.storage());
  CHECK(a.storage() != d.storage());
  CHECK(a[0] == Philox(3, 1).normal(5));  // element i is draw offset + i
  Rng r1(9), r2(9);
  CHECK(r1.normal<float>({17}).storage() == r2.normal<float>({17}).storage());
}
