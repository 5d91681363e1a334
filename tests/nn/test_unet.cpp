// Gradient checks and structural invariants of the attention and U-Net modules.
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "coordiff/core/threading.hpp"
#include "coordiff/nn/agent_attention.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
#include "coordiff/nn/temporal_unet.hpp"
#include "support/gradcheck.hpp"

using namespace coordiff;

namespace {
nn::UNetConfig tiny_config(bool returns) {
  nn::UNetConfig c;
  c.horizon = 4;
  c.transition_dim = 3;
  c.dim = 16;
  c.dim_mults = {1, 2};
  c.groups = 4;
  c.kernel_size = 3;
  c.returns_condition = returns;
  return c;
}

void randomize_norms(nn::ParameterList<double>& params, Rng& rng) {
  // Move GroupNorm affine parameters and attention gates away from their trivial initial values.
  for (auto& p : params)
    if (p.name.find("block.2") != std::string::npos || p.name.find("gamma") != std::string::npos)
      p.param->value = rng.normal<double>(p.param->shape(), p.name.find("bias") != std::string::npos ? 0.0 : 0.8, 0.3);
}
}  // namespace

TEST_CASE("gradcheck: ResidualTemporalBlock with residual conv and with identity residual") {
  Rng rng(21);
  for (index_t in : {3, 8}) {
    nn::ResidualTemporalBlock<double> blk(in, 8, 6, 5, rng, 4);
    auto x = rng.normal<double>({2, in, 5});
    auto e = rng.normal<double>({2, 6});
    auto up = rng.normal<double>({2, 8, 5});
    auto params = nn::parameters_of<double>(blk);
    randomize_norms(params, rng);
    testing::check_two_input_module(blk, x, e, up);
  }
}

TEST_CASE("gradcheck: AgentSelfAttention (gamma != 0, and without residual)") {
  Rng rng(22);
  for (bool residual : {true, false}) {
    nn::AgentSelfAttention<double> attn(16, 2, 4, 5, rng, 4, residual);
    attn.gamma().value[0] = 0.7;
    auto x = rng.normal<double>({2, 3, 16, 2});
    auto e = rng.normal<double>({2, 3, 5});
    testing::check_two_input_module(attn, x, e, rng.normal<double>(x.shape()));
  }
}

TEST_CASE("AgentSelfAttention: gamma = 0 is the identity - agent permutation is equivariant") {
  Rng rng(23);
  nn::AgentSelfAttention<double> attn(32, 2, 8, 6, rng);
  auto x = rng.normal<double>({2, 3, 32, 4});
  auto e = rng.normal<double>({2, 3, 6});
  CHECK(attn.forward(x, e).storage() == x.storage());
  attn.gamma().value[0] = 0.9;
  auto y = attn.forward(x, e);
  // swap agents 0 and 2 in inputs -> outputs swap too
  auto px = x, pe = e;
  for (index_t b = 0; b < 2; ++b) {
    for (index_t i = 0; i < 32 * 4; ++i) std::swap(px[(b * 3 + 0) * 128 + i], px[(b * 3 + 2) * 128 + i]);
    for (index_t i = 0; i < 6; ++i) std::swap(pe[(b * 3 + 0) * 6 + i], pe[(b * 3 + 2) * 6 + i]);
  }
  auto py = attn.forward(px, pe);
  for (index_t b = 0; b < 2; ++b)
    for (index_t i = 0; i < 128; ++i) {
      CHECK(py[(b * 3 + 0) * 128 + i] == doctest::Approx(y[(b * 3 + 2) * 128 + i]).epsilon(1e-12));
      CHECK(py[(b * 3 + 1) * 128 + i] == doctest::Approx(y[(b * 3 + 1) * 128 + i]).epsilon(1e-12));
    }
}

namespace {
/// Checks dL/dx and every parameter tensor (on a 24-element spread subset) of a conditioned U-Net.
template <class Net>
void gradcheck_unet(Net& net, Tensor<double> x, const Tensor<double>& t, const Tensor<double>& ret,
                    const Tensor<double>& keep, Rng& rng) {
  auto params = nn::parameters_of<double>(net);
  randomize_norms(params, rng);
  auto up = rng.normal<double>(x.shape());
  net.forward(x, t, &ret, &keep);
  auto dx = net.backward(up);
  auto targets = testing::parameter_targets(params);
  targets.push_back({"x", &x, &dx});
  testing::check_gradients(
      [&] {
        nn::NoGradGuard g;
        return testing::dot(net.forward(x, t, &ret, &keep), up);
      },
      targets, 1e-6, 1e-5, /*max_elements=*/24);
}
}  // namespace

TEST_CASE("gradcheck: TemporalUNet with return conditioning and classifier-free keep mask") {
  Rng rng(24);
  nn::TemporalUNet<double> net(tiny_config(true), rng);
  Tensor<double> t({2}, {3.0, 17.0}), ret({2, 1}, {0.4, -0.2}), keep({2}, {1.0, 0.0});
  gradcheck_unet(net, rng.normal<double>({2, 4, 3}), t, ret, keep, rng);
}

TEST_CASE("gradcheck: MultiAgentUNet with agent attention on bottleneck and skips") {
  Rng rng(25);
  nn::MultiAgentUNet<double> net(tiny_config(true), 3, rng);
  Tensor<double> t({2}, {5.0, 1.0}), ret({2, 3}, {0.1, 0.5, 0.9, -0.3, 0.2, 0.0}), keep({2, 3}, {1, 0, 1, 1, 1, 0});
  gradcheck_unet(net, rng.normal<double>({2, 4, 3, 3}), t, ret, keep, rng);
}

TEST_CASE("gradcheck: MultiAgentUNet with a two-value condition per agent (paper 001 eq. 10: CBF satisfaction, return)") {
  Rng rng(29);
  auto cfg = tiny_config(true);
  cfg.condition_dim = 2;
  nn::MultiAgentUNet<double> net(cfg, 3, rng);
  Tensor<double> t({2}, {5.0, 1.0}), keep({2, 3}, {1, 0, 1, 1, 1, 0});
  Tensor<double> y({2, 3, 2}, {1.0, 0.1, 0.0, 0.5, 1.0, 0.9, 0.5, -0.3, 1.0, 0.2, 0.0, 0.0});
  gradcheck_unet(net, rng.normal<double>({2, 4, 3, 3}), t, y, keep, rng);
  // Each value moves the output of a sample whose condition is kept (sample 0), not of one whose
  // condition is dropped for every agent (sample 1; agents interact through attention).
  const auto x = rng.normal<double>({2, 4, 3, 3});
  const Tensor<double> keep01({2, 3}, {1, 1, 1, 0, 0, 0});
  const auto base = net.forward(x, t, &y, &keep01);
  for (index_t c = 0; c < 2; ++c) {
    auto y2 = y;
    for (index_t b = 0; b < 2; ++b)
      for (index_t a = 0; a < 3; ++a) y2(b, a, c) += 0.7;
    const auto moved = net.forward(x, t, &y2, &keep01);
    double kept = 0.0, dropped = 0.0;
    for (index_t h = 0; h < 4; ++h)
      for (index_t a = 0; a < 3; ++a)
        for (index_t f = 0; f < 3; ++f) {
          kept = std::max(kept, std::abs(moved(0, h, a, f) - base(0, h, a, f)));
          dropped = std::max(dropped, std::abs(moved(1, h, a, f) - base(1, h, a, f)));
        }
    CHECK(kept > 1e-6);
    CHECK(dropped == 0.0);
  }
  // A one-value condition is refused by a two-value network, and the other way round.
  Tensor<double> one({2, 3}, 0.5);
  CHECK_THROWS_AS(net.forward(x, t, &one), ShapeError);
  nn::MultiAgentUNet<double> single(tiny_config(true), 3, rng);
  CHECK_THROWS_AS(single.forward(x, t, &y), ShapeError);
  cfg.condition_dim = 0;
  CHECK_THROWS_AS(nn::MultiAgentUNet<double>(cfg, 3, rng), ConfigError);
}

TEST_CASE("MultiAgentUNet: with all gates at 0 it equals the shared TemporalUNet per agent") {
  Rng rng(26);
  nn::MultiAgentUNet<double> net(tiny_config(true), 3, rng);
  auto x = rng.normal<double>({2, 4, 3, 3});
  Tensor<double> t({2}, {5.0, 1.0}), ret({2, 3}, {0.1, 0.5, 0.9, -0.3, 0.2, 0.0});
  auto y = net.forward(x, t, &ret);
  for (index_t a = 0; a < 3; ++a) {
    auto xa = x.view().select(2, a).contiguous();
    Tensor<double> ra({2, 1}, {ret(0, a), ret(1, a)});
    auto ya = net.trunk().forward(xa, t, &ra);
    for (index_t b = 0; b < 2; ++b)
      for (index_t h = 0; h < 4; ++h)
        for (index_t f = 0; f < 3; ++f) CHECK(y(b, h, a, f) == doctest::Approx(ya(b, h, f)).epsilon(1e-12));
  }
}

TEST_CASE("MultiAgentUNet: permuting agents (inputs, returns, keep flags) permutes the output - gates != 0") {
  Rng rng(28);
  nn::MultiAgentUNet<double> net(tiny_config(true), 3, rng);
  auto params = nn::parameters_of<double>(net);
  randomize_norms(params, rng);  // also sets every gamma away from 0
  auto x = rng.normal<double>({2, 4, 3, 3});
  Tensor<double> t({2}, {5.0, 1.0}), ret({2, 3}, {0.1, 0.5, 0.9, -0.3, 0.2, 0.0}), keep({2, 3}, {1, 0, 1, 1, 1, 0});
  const auto y = net.forward(x, t, &ret, &keep);
  const index_t perm[3] = {2, 0, 1};  // new agent a is old agent perm[a]
  Tensor<double> px(x.shape()), pret(ret.shape()), pkeep(keep.shape());
  for (index_t b = 0; b < 2; ++b)
    for (index_t a = 0; a < 3; ++a) {
      pret(b, a) = ret(b, perm[a]);
      pkeep(b, a) = keep(b, perm[a]);
      for (index_t h = 0; h < 4; ++h)
        for (index_t f = 0; f < 3; ++f) px(b, h, a, f) = x(b, h, perm[a], f);
    }
  const auto py = net.forward(px, t, &pret, &pkeep);
  double max_diff = 0.0;
  for (index_t b = 0; b < 2; ++b)
    for (index_t a = 0; a < 3; ++a)
      for (index_t h = 0; h < 4; ++h)
        for (index_t f = 0; f < 3; ++f) max_diff = std::max(max_diff, std::abs(py(b, h, a, f) - y(b, h, perm[a], f)));
  CHECK(max_diff < 1e-12);
  // and the agents do interact: changing agent 0's input moves agent 1's output
  auto x2 = x;
  for (index_t h = 0; h < 4; ++h) x2(0, h, 0, 0) += 1.0;
  const auto y2 = net.forward(x2, t, &ret, &keep);
  double moved = 0.0;
  for (index_t h = 0; h < 4; ++h)
    for (index_t f = 0; f < 3; ++f) moved = std::max(moved, std::abs(y2(0, h, 1, f) - y(0, h, 1, f)));
  CHECK(moved > 1e-6);
}

TEST_CASE("U-Nets: configuration and shape errors are reported") {
  Rng rng(27);
  auto cfg = tiny_config(true);
  cfg.horizon = 6;
  cfg.dim_mults = {1, 2, 4};
  CHECK_THROWS_AS(nn::TemporalUNet<float>(cfg, rng), ConfigError);  // 6 not divisible by 4
  nn::TemporalUNet<float> net(tiny_config(true), rng);
  Tensor<float> t({2}, 1.0f), ret({2, 1}, 0.5f);
  CHECK_THROWS_AS(net.forward(Tensor<float>({2, 4, 5}), t, &ret), ShapeError);
  CHECK_THROWS_AS(net.forward(Tensor<float>({2, 4, 3}), t), ConfigError);  // returns missing
  nn::MultiAgentUNet<float> multi(tiny_config(false), 2, rng);
  CHECK_THROWS_AS(multi.forward(Tensor<float>({2, 4, 0, 3}), t), ShapeError);  // no agent
  CHECK_THROWS_AS(multi.forward(Tensor<float>({2, 5, 2, 3}), t), ShapeError);  // wrong horizon
  // Weights are shared across agents, so any agent count runs. With the attention gates at their initial
  // 0 the agents do not interact: agent 0 alone gives agent 0's output of the two-agent batch.
  const auto x2 = rng.normal<float>({2, 4, 2, 3});
  const auto y2 = multi.forward(x2, t);
  const Tensor<float> x1 = x2.view().slice(2, 0, 1).contiguous();
  const auto y1 = multi.forward(x1, t);
  REQUIRE(y1.shape() == Shape{2, 4, 1, 3});
  for (index_t b = 0; b < 2; ++b)
    for (index_t h = 0; h < 4; ++h)
      for (index_t f = 0; f < 3; ++f) CHECK(y1(b, h, 0, f) == doctest::Approx(y2(b, h, 0, f)).epsilon(1e-5));
}

TEST_CASE("determinism: same seed gives bitwise-identical networks and outputs - thread count changes only rounding") {
  auto cfg = tiny_config(true);
  Rng r1(77), r2(77);
  nn::MultiAgentUNet<float> a(cfg, 3, r1), b(cfg, 3, r2);
  Rng in(5);
  auto x = in.normal<float>({4, 4, 3, 3});
  Tensor<float> t({4}, 9.0f), ret({4, 3}, 0.5f);
  auto pa = nn::parameters_of<float>(a), pb = nn::parameters_of<float>(b);
  for (std::size_t i = 0; i < pa.size(); ++i) REQUIRE(pa[i].param->value.storage() == pb[i].param->value.storage());
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (pa[i].name.find("gamma") != std::string::npos) pa[i].param->value.fill(0.5f), pb[i].param->value.fill(0.5f);
  const auto ya = a.forward(x, t, &ret);
  CHECK(ya.storage() == b.forward(x, t, &ret).storage());
  CHECK(ya.storage() == a.forward(x, t, &ret).storage());  // repeated calls are identical too
  const int before = omp_get_max_threads();
  coordiff::set_num_threads(1);
  const auto y1 = a.forward(x, t, &ret);
  coordiff::set_num_threads(before);
  for (index_t i = 0; i < y1.size(); ++i) CHECK(y1[i] == doctest::Approx(ya[i]).epsilon(1e-5));
}
