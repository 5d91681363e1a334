// Finite-difference gradient checks (double) and closed-form checks for the basic layers.
#include <doctest/doctest.h>

#include <cmath>

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
