// PyTorch parity for further configurations of the basic layers (fixtures from tools/golden/gen_layers.py;
// the primary layer cases live in test_golden.cpp). float32 here vs float64 PyTorch, relative tolerance 1e-4.
#include <doctest/doctest.h>

#include "coordiff/nn/activations.hpp"
#include "coordiff/nn/conv1d.hpp"
#include "coordiff/nn/conv_transpose1d.hpp"
#include "coordiff/nn/group_norm.hpp"
#include "coordiff/nn/layer_norm.hpp"
#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/sinusoidal_embedding.hpp"
#include "support/golden.hpp"

using namespace coordiff;

namespace {
/// Loads the fixture's parameters into `module`, runs forward(input.x) and backward(upstream.y) in float32 and
/// compares output.y, grad.input.x and every grad.param.* with PyTorch.
template <class M>
void check_layer_golden(const std::string& fixture, M module) {
  auto npz = testing::load_golden(fixture);
  auto params = nn::parameters_of<float>(module);
  nn::load_state_dict(params, npz, "param.");  // strict: names and shapes must match PyTorch's state_dict
  nn::zero_grad(params);
  testing::check_close(module.forward(npz.tensor<float>("input.x")), npz.tensor<double>("output.y"),
                       fixture + " output");
  testing::check_close(module.backward(npz.tensor<float>("upstream.y")), npz.tensor<double>("grad.input.x"),
                       fixture + " grad x");
  for (auto& p : params)
    testing::check_close(p.param->grad, npz.tensor<double>("grad.param." + p.name), fixture + " grad " + p.name);
}
}  // namespace

TEST_CASE("golden: Conv1d without bias") {
  Rng rng(0);
  check_layer_golden("layer_conv1d_nobias", nn::Conv1d<float>(5, 4, 3, rng, 1, 1, 1, false));
}
TEST_CASE("golden: Conv1d 16 -> 24 channels, kernel 5") {
  Rng rng(0);
  check_layer_golden("layer_conv1d_wide", nn::Conv1d<float>(16, 24, 5, rng, 1, 2));
}
TEST_CASE("golden: ConvTranspose1d stride 1 without bias") {
  Rng rng(0);
  check_layer_golden("layer_conv_transpose1d_s1_nobias", nn::ConvTranspose1d<float>(3, 2, 3, rng, 1, 0, 0, 1, false));
}
TEST_CASE("golden: GroupNorm over two trailing dims, eps 1e-3") {
  check_layer_golden("layer_group_norm_4d_eps", nn::GroupNorm<float>(4, 8, 1e-3));
}
TEST_CASE("golden: LayerNorm over the last dim") { check_layer_golden("layer_layer_norm_last", nn::LayerNorm<float>(Shape{6})); }
TEST_CASE("golden: Mish from -30 to 30 (softplus threshold)") { check_layer_golden("layer_mish_spread", nn::Mish<float>()); }
TEST_CASE("golden: SiLU from -30 to 30") { check_layer_golden("layer_silu_spread", nn::SiLU<float>()); }
TEST_CASE("golden: MLP with Mish after every layer") {
  Rng rng(0);
  check_layer_golden("layer_mlp_mish_last", nn::MLP<float>({4, 7, 7, 2}, nn::Activation::Mish, rng, true));
}
TEST_CASE("golden: MLP with SiLU") {
  Rng rng(0);
  check_layer_golden("layer_mlp_silu", nn::MLP<float>({3, 5, 2}, nn::Activation::SiLU, rng));
}
TEST_CASE("golden: SinusoidalPosEmb at diffusion steps up to 1000") {
  check_layer_golden("layer_sinusoidal_large_t", nn::SinusoidalPosEmb<float>(32));
}
