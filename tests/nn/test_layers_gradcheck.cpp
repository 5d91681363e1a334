// Finite-difference gradient checks (double) and closed-form checks for the basic layers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "coordiff/nn/activations.hpp"
#include "coordiff/nn/conv1d.hpp"
#include "coordiff/nn/conv_transpose1d.hpp"
#include "coordiff/nn/group_norm.hpp"
#include "coordiff/nn/layer_norm.hpp"
#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/sinusoidal_embedding.hpp"
#include "support/gradcheck.hpp"

using namespace coordiff;
using testing::GradTarget;

namespace {
// Checks input and all parameter gradients of a single-input module.
template <class M>
void gradcheck_module(M& m, Tensor<double> x, Rng& rng) {
  Tensor<double> y = m.forward(x);
  auto up = rng.normal<double>(y.shape());
  auto params = nn::parameters_of<double>(m);
  nn::zero_grad(params);
  m.forward(x);
  auto dx = m.backward(up);
  std::vector<GradTarget> targets{{"input", &x, &dx}};
  for (auto& p : params) targets.push_back({p.name, &p.param->value, &p.param->grad});
  auto loss = [&] {
    nn::NoGradGuard g;
    return testing::dot(m.forward(x), up);
  };
  testing::check_gradients(loss, targets);
}
}  // namespace

TEST_CASE("gradcheck: Conv1d kernel 5 padding 2 (MADiff Conv1dBlock)") {
  Rng rng(11);
  nn::Conv1d<double> conv(3, 4, 5, rng, 1, 2);
  gradcheck_module(conv, rng.normal<double>({2, 3, 7}), rng);
}

TEST_CASE("gradcheck: Conv1d stride 2 padding 1 (Downsample1d) and dilation 2") {
  Rng rng(12);
  nn::Conv1d<double> down(4, 4, 3, rng, 2, 1);
  gradcheck_module(down, rng.normal<double>({2, 4, 8}), rng);
  nn::Conv1d<double> dil(3, 2, 3, rng, 2, 3, 2, false);
  gradcheck_module(dil, rng.normal<double>({3, 3, 9}), rng);
}

TEST_CASE("gradcheck: ConvTranspose1d (4,2,1) upsample and output_padding") {
  Rng rng(13);
  nn::ConvTranspose1d<double> up(4, 3, 4, rng, 2, 1);
  gradcheck_module(up, rng.normal<double>({2, 4, 5}), rng);
  nn::ConvTranspose1d<double> odd(2, 3, 3, rng, 3, 1, 2, 2);
  gradcheck_module(odd, rng.normal<double>({2, 2, 4}), rng);
}

TEST_CASE("gradcheck: GroupNorm 8 groups with non-trivial affine") {
  Rng rng(14);
  nn::GroupNorm<double> gn(8, 16);
  gn.weight().value = rng.normal<double>({16}, 1.0, 0.3);
  gn.bias().value = rng.normal<double>({16}, 0.0, 0.3);
  gradcheck_module(gn, rng.normal<double>({2, 16, 5}), rng);
}

TEST_CASE("gradcheck: LayerNorm over one and two trailing dims") {
  Rng rng(15);
  nn::LayerNorm<double> ln1(Shape{6});
  ln1.weight().value = rng.normal<double>({6}, 1.0, 0.3);
  gradcheck_module(ln1, rng.normal<double>({3, 4, 6}), rng);
  nn::LayerNorm<double> ln2(Shape{4, 3});
  ln2.bias().value = rng.normal<double>({4, 3}, 0.0, 0.3);
  gradcheck_module(ln2, rng.normal<double>({2, 4, 3}), rng);
}

TEST_CASE("gradcheck: Mish, SiLU and ReLU") {
  Rng rng(16);
  auto x = rng.normal<double>({4, 9}, 0.0, 3.0);  // covers the softplus threshold region too
  x[0] = 25.0;
  nn::Mish<double> mish;
  gradcheck_module(mish, x, rng);
  nn::SiLU<double> silu;
  gradcheck_module(silu, x, rng);
  nn::ReLU<double> relu;
  for (auto& v : x) v = std::abs(v) < 1e-3 ? 0.5 : v;  // away from the kink
  gradcheck_module(relu, x, rng);
}

TEST_CASE("gradcheck: SinusoidalPosEmb with respect to the step") {
  Rng rng(17);
  nn::SinusoidalPosEmb<double> emb(16);
  gradcheck_module(emb, rng.uniform<double>({5}, 0.0, 20.0), rng);
}

TEST_CASE("gradcheck: MLP (ReLU and Mish)") {
  Rng rng(18);
  nn::MLP<double> relu_mlp({6, 8, 8, 3}, nn::Activation::ReLU, rng);
  gradcheck_module(relu_mlp, rng.normal<double>({5, 6}), rng);
  nn::MLP<double> mish_mlp({4, 7, 2}, nn::Activation::Mish, rng, true);
  gradcheck_module(mish_mlp, rng.normal<double>({3, 4}), rng);
}

TEST_CASE("Conv1d: hand-made kernel gives the closed-form output") {
  Rng rng(1);
  nn::Conv1d<double> conv(1, 1, 3, rng, 1, 1);
  conv.weight().value = Tensor<double>({1, 1, 3}, {1.0, 2.0, -1.0});
  conv.bias().value = Tensor<double>({1}, {0.5});
  Tensor<double> x({1, 1, 4}, {1, 2, 3, 4});
  auto y = conv.forward(x);
  // y[i] = x[i-1] + 2 x[i] - x[i+1] + 0.5 with zero padding
  CHECK(y.storage() == std::vector<double>{0 + 2 - 2 + 0.5, 1 + 4 - 3 + 0.5, 2 + 6 - 4 + 0.5, 3 + 8 - 0 + 0.5});
  CHECK(conv.output_length(8) == 8);
  nn::Conv1d<double> down(2, 2, 3, rng, 2, 1);
  CHECK(down.forward(Tensor<double>({1, 2, 8})).shape() == Shape{1, 2, 4});
}

TEST_CASE("ConvTranspose1d: is the adjoint of Conv1d with the same weights") {
  // <conv(x), y> == <x, convT(y)> when convT uses the same [C_out_conv, C_in_conv, K] tensor.
  Rng rng(2);
  nn::Conv1d<double> conv(3, 4, 4, rng, 2, 1, 1, false);
  nn::ConvTranspose1d<double> convt(4, 3, 4, rng, 2, 1, 0, 1, false);
  convt.weight().value = conv.weight().value;
  auto x = rng.normal<double>({2, 3, 8});
  auto y = rng.normal<double>({2, 4, 4});
  auto cx = conv.forward(x);
  auto ty = convt.forward(y);
  REQUIRE(ty.shape() == x.shape());
  CHECK(testing::dot(cx, y) == doctest::Approx(testing::dot(x, ty)).epsilon(1e-12));
}

TEST_CASE("GroupNorm: each group is standardised with the default affine") {
  Rng rng(3);
  nn::GroupNorm<double> gn(2, 4);
  auto y = gn.forward(rng.normal<double>({3, 4, 5}, 2.0, 3.0));
  for (index_t n = 0; n < 3; ++n)
    for (index_t g = 0; g < 2; ++g) {
      double m = 0, v = 0;
      for (index_t c = 2 * g; c < 2 * g + 2; ++c)
        for (index_t l = 0; l < 5; ++l) m += y(n, c, l);
      m /= 10;
      for (index_t c = 2 * g; c < 2 * g + 2; ++c)
        for (index_t l = 0; l < 5; ++l) v += (y(n, c, l) - m) * (y(n, c, l) - m);
      CHECK(m == doctest::Approx(0.0).scale(1));
      CHECK(v / 10 == doctest::Approx(1.0).epsilon(1e-4));  // eps = 1e-5 shrinks it slightly
    }
}

TEST_CASE("Mish: closed-form values") {
  const double xs[] = {-2.0, 0.0, 1.0, 30.0};
  double ys[4];
  nn::mish_forward(xs, ys, 4);
  CHECK(ys[0] == doctest::Approx(-2.0 * std::tanh(std::log1p(std::exp(-2.0)))));
  CHECK(ys[1] == 0.0);
  CHECK(ys[2] == doctest::Approx(0.8650983882673103));
  CHECK(ys[3] == doctest::Approx(30.0));
}

TEST_CASE("layers: wrong shapes and bad configurations raise coordiff errors") {
  Rng rng(4);
  nn::Conv1d<float> conv(3, 4, 5, rng, 1, 2);
  CHECK_THROWS_AS(conv.forward(Tensor<float>({2, 2, 7})), ShapeError);
  CHECK_THROWS_AS(conv.backward(Tensor<float>({2, 4, 7})), ShapeError);  // no forward yet
  CHECK_THROWS_AS(nn::GroupNorm<float>(3, 8), ConfigError);
  CHECK_THROWS_AS(nn::Conv1d<float>(3, 4, 0, rng), ConfigError);
  nn::LayerNorm<float> ln(Shape{5});
  CHECK_THROWS_AS(ln.forward(Tensor<float>({2, 4})), ShapeError);
  CHECK_THROWS_AS(nn::SinusoidalPosEmb<float>(7), ConfigError);
}

TEST_CASE("gradcheck: GroupNorm over two trailing dims and ConvTranspose1d stride 1 without bias") {
  Rng rng(19);
  nn::GroupNorm<double> gn(2, 6, 1e-3);
  gn.weight().value = rng.normal<double>({6}, 1.0, 0.3);
  gn.bias().value = rng.normal<double>({6}, 0.0, 0.3);
  gradcheck_module(gn, rng.normal<double>({2, 6, 3, 4}), rng);
  nn::ConvTranspose1d<double> ct(3, 2, 3, rng, 1, 0, 0, 1, false);
  gradcheck_module(ct, rng.normal<double>({2, 3, 5}), rng);
}

namespace {
/// Sample n of a [N, C, L] tensor as a [1, C, L] tensor.
Tensor<double> sample(const Tensor<double>& x, index_t n) {
  const index_t per = x.size() / x.dim(0);
  return Tensor<double>({1, x.dim(1), x.dim(2)}, std::vector<double>(x.data() + n * per, x.data() + (n + 1) * per));
}
double max_abs_diff(const double* a, const double* b, index_t n) {
  double m = 0;
  for (index_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// A batch large enough to take the OpenMP paths of im2col/col2im must give the per-sample results.
template <class Conv>
void check_batch_matches_samples(Conv& conv, const Tensor<double>& x, Rng& rng) {
  const index_t N = x.dim(0);
  auto y = conv.forward(x);
  auto up = rng.normal<double>(y.shape());
  auto params = nn::parameters_of<double>(conv);
  nn::zero_grad(params);
  auto dx = conv.backward(up);
  const Tensor<double> gw = conv.weight().grad, gb = conv.bias().grad;
  nn::zero_grad(params);
  const index_t ys = y.size() / N, xs = x.size() / N;
  double dy_err = 0, dx_err = 0;
  for (index_t n = 0; n < N; ++n) {
    auto yn = conv.forward(sample(x, n));
    dy_err = std::max(dy_err, max_abs_diff(yn.data(), y.data() + n * ys, ys));
    auto dxn = conv.backward(sample(up, n));
    dx_err = std::max(dx_err, max_abs_diff(dxn.data(), dx.data() + n * xs, xs));
  }
  CHECK(dy_err < 1e-12);
  CHECK(dx_err < 1e-12);
  CHECK(max_abs_diff(gw.data(), conv.weight().grad.data(), gw.size()) < 1e-10);  // summed over samples
  CHECK(max_abs_diff(gb.data(), conv.bias().grad.data(), gb.size()) < 1e-10);
  auto again = conv.forward(x);
  CHECK(again.storage() == y.storage());  // deterministic run to run
}
}  // namespace

TEST_CASE("Conv1d and ConvTranspose1d: a large batch gives the per-sample results") {
  Rng rng(5);
  nn::Conv1d<double> conv(64, 32, 5, rng, 1, 2);
  check_batch_matches_samples(conv, rng.normal<double>({16, 64, 24}), rng);
  nn::ConvTranspose1d<double> up(64, 32, 4, rng, 2, 1);
  check_batch_matches_samples(up, rng.normal<double>({16, 64, 12}), rng);
}

TEST_CASE("SinusoidalPosEmb: closed-form values and ConvTranspose1d output lengths") {
  nn::SinusoidalPosEmb<double> emb(8);  // half = 4: frequencies 1, 10^-4/3, 10^-8/3, 10^-4
  auto y = emb.forward(Tensor<double>({2}, {0.0, 3.0}));
  for (index_t j = 0; j < 4; ++j) {
    const double f = std::pow(10.0, -4.0 * static_cast<double>(j) / 3.0);
    CHECK(y(0, j) == 0.0);
    CHECK(y(0, 4 + j) == 1.0);
    CHECK(y(1, j) == doctest::Approx(std::sin(3.0 * f)).epsilon(1e-14));
    CHECK(y(1, 4 + j) == doctest::Approx(std::cos(3.0 * f)).epsilon(1e-14));
  }
  Rng rng(6);
  CHECK(nn::ConvTranspose1d<float>(2, 2, 4, rng, 2, 1).output_length(6) == 12);  // Upsample1d doubles L
  CHECK(nn::ConvTranspose1d<float>(2, 3, 3, rng, 3, 1, 2, 2).output_length(4) == 14);
}

TEST_CASE("layers: more wrong shapes and bad configurations") {
  Rng rng(7);
  nn::ConvTranspose1d<float> ct(4, 3, 4, rng, 2, 1);
  CHECK_THROWS_AS(ct.forward(Tensor<float>({2, 3, 5})), ShapeError);
  CHECK_THROWS_AS(ct.forward(Tensor<float>({4, 5})), ShapeError);
  ct.forward(Tensor<float>({2, 4, 5}));
  CHECK_THROWS_AS(ct.backward(Tensor<float>({2, 3, 9})), ShapeError);
  CHECK_THROWS_AS(nn::ConvTranspose1d<float>(2, 2, 3, rng, 2, 0, 2), ConfigError);  // output_padding >= stride
  nn::Conv1d<float> conv(2, 2, 5, rng);
  CHECK_THROWS_AS(conv.forward(Tensor<float>({1, 2, 4})), ShapeError);  // shorter than the kernel
  conv.forward(Tensor<float>({1, 2, 6}));
  CHECK_THROWS_AS(conv.backward(Tensor<float>({1, 2, 3})), ShapeError);
  nn::GroupNorm<float> gn(2, 4);
  CHECK_THROWS_AS(gn.forward(Tensor<float>({2, 6, 3})), ShapeError);
  CHECK_THROWS_AS(gn.forward(Tensor<float>({4})), ShapeError);
  CHECK(gn.forward(Tensor<float>({0, 4, 3})).shape() == Shape{0, 4, 3});  // empty batch is not an error
  CHECK_THROWS_AS(nn::LayerNorm<float>(Shape{}), ConfigError);
  nn::Mish<float> mish;
  CHECK_THROWS_AS(mish.backward(Tensor<float>({3})), ShapeError);  // no forward yet
  mish.forward(Tensor<float>({2, 3}));
  CHECK_THROWS_AS(mish.backward(Tensor<float>({3, 2})), ShapeError);
  nn::SinusoidalPosEmb<float> emb(8);
  CHECK_THROWS_AS(emb.forward(Tensor<float>({2, 1})), ShapeError);
  nn::MLP<float> mlp({3, 4, 2}, nn::Activation::ReLU, rng);
  CHECK_THROWS_AS(mlp.forward(Tensor<float>({5, 4})), ShapeError);
  CHECK_THROWS_AS(nn::MLP<float>({3}, nn::Activation::ReLU, rng), ConfigError);
  try {
    conv.forward(Tensor<float>({1, 3, 6}));
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("Conv1d") != std::string::npos);  // names the layer, the expected and the actual shape
    CHECK(msg.find("[1,3,6]") != std::string::npos);
  }
}
