// BatchNorm1d (affine=False): training-mode output moments, running statistics against their closed form,
// evaluation mode, the training-mode input gradient against finite differences, and given moments.
#include <doctest/doctest.h>

#include <cmath>

#include "coordiff/core/philox.hpp"
#include "coordiff/nn/batch_norm.hpp"
#include "support/gradcheck.hpp"

using namespace coordiff;

TEST_CASE("BatchNorm1d: training mode standardises every column over the batch, running moments as torch") {
  Rng rng(5, 0);
  const index_t B = 7, C = 3;
  Tensor<double> x = rng.normal<double>({B, C});
  for (index_t b = 0; b < B; ++b) x(b, 1) = 4 + 3 * x(b, 1);  // another location and scale
  nn::BatchNorm1d<double> bn(C, 0.1, 1e-5);
  const Tensor<double> y = bn.forward(x);
  for (index_t c = 0; c < C; ++c) {
    double m = 0, v = 0, raw_m = 0, raw_v = 0;
    for (index_t b = 0; b < B; ++b) m += y(b, c) / B, raw_m += x(b, c) / B;
    for (index_t b = 0; b < B; ++b) v += (y(b, c) - m) * (y(b, c) - m) / B, raw_v += (x(b, c) - raw_m) * (x(b, c) - raw_m) / B;
    CHECK(m == doctest::Approx(0).epsilon(1e-12).scale(1));
    CHECK(v == doctest::Approx(raw_v / (raw_v + 1e-5)).epsilon(1e-12));
    // running = 0.9 * initial + 0.1 * batch, the variance unbiased (B / (B - 1)).
    CHECK(bn.running_mean()[static_cast<std::size_t>(c)] == doctest::Approx(0.1 * raw_m).epsilon(1e-12));
    CHECK(bn.running_var()[static_cast<std::size_t>(c)] == doctest::Approx(0.9 + 0.1 * raw_v * B / (B - 1)).epsilon(1e-12));
  }
  // Evaluation mode: the running moments, whatever the batch.
  bn.train(false);
  const Tensor<double> e = bn.forward(x);
  for (index_t c = 0; c < C; ++c) {
    const double m = bn.running_mean()[static_cast<std::size_t>(c)], v = bn.running_var()[static_cast<std::size_t>(c)];
    CHECK(e(2, c) == doctest::Approx((x(2, c) - m) / std::sqrt(v + 1e-5)).epsilon(1e-12));
  }
  CHECK_THROWS_AS(bn.backward(e), Error);  // evaluation mode keeps nothing to differentiate
  CHECK_THROWS_AS(bn.forward(Tensor<double>({B, C + 1})), ShapeError);
  CHECK_THROWS_AS(nn::BatchNorm1d<double>(0), ConfigError);
}

TEST_CASE("BatchNorm1d: training-mode input gradient (through the batch moments) matches finite differences") {
  Rng rng(6, 0);
  nn::BatchNorm1d<double> bn(4);
  Tensor<double> x = rng.normal<double>({6, 4});
  for (index_t b = 0; b < 6; ++b) x(b, 2) *= 0.01;  // a nearly constant column: eps matters
  const Tensor<double> up = rng.normal<double>({6, 4});
  bn.forward(x);
  Tensor<double> dx = bn.backward(up);
  auto loss = [&] {
    nn::NoGradGuard g;
    return testing::dot(bn.forward(x), up);
  };
  testing::check_gradients(loss, {{"input", &x, &dx}});
  // The gradient of a loss shared by every row (a column-constant upstream) vanishes: shifting a column
  // does not change its standardised values.
  const Tensor<double> shared({6, 4}, 1.0);
  bn.forward(x);
  const Tensor<double> d0 = bn.backward(shared);
  for (double v : d0) CHECK(std::abs(v) < 1e-9);
}

TEST_CASE("normalise_with: given moments, on a column range") {
  nn::ColumnMoments m{{1.0, 2.0, -1.0}, {4.0, 1.0, 0.25}, 10};
  Tensor<double> x({2, 2});
  x(0, 0) = 3, x(0, 1) = -1, x(1, 0) = 2, x(1, 1) = 0;
  nn::normalise_with(x, m, 0.0, 1);  // columns 1 and 2 of the moments
  CHECK(x(0, 0) == doctest::Approx(1.0));
  CHECK(x(0, 1) == doctest::Approx(0.0));
  CHECK(x(1, 0) == doctest::Approx(0.0));
  CHECK(x(1, 1) == doctest::Approx(2.0));
  CHECK_THROWS_AS(nn::normalise_with(x, m, 0.0, 2), ShapeError);
}
