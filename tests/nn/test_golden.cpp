// PyTorch parity: every layer, the attention modules and both U-Nets against fixtures made by
// tools/golden/gen_golden.py (float32 here vs float64 PyTorch, relative tolerance 1e-4).
#include <doctest/doctest.h>

#include "coordiff/nn/activations.hpp"
#include "coordiff/nn/agent_attention.hpp"
#include "coordiff/nn/conv1d.hpp"
#include "coordiff/nn/conv_transpose1d.hpp"
#include "coordiff/nn/group_norm.hpp"
#include "coordiff/nn/layer_norm.hpp"
#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
#include "coordiff/nn/multihead_attention.hpp"
#include "coordiff/nn/sinusoidal_embedding.hpp"
#include "coordiff/nn/temporal_block.hpp"
#include "coordiff/nn/temporal_unet.hpp"
#include "support/golden.hpp"

using namespace coordiff;

namespace {
/// Loads params, runs forward(x) and backward(upstream), compares output and every gradient.
template <class M, class Fwd, class Bwd>
void golden_case(const std::string& fixture, M& module, Fwd forward, Bwd backward, bool has_params = true) {
  auto npz = testing::load_golden(fixture);
  auto params = nn::parameters_of<float>(module);
  if (has_params) testing::load_golden_params(params, npz);
  nn::zero_grad(params);
  const Tensor<float> y = forward(npz);
  testing::check_close(y, npz.tensor<double>("output.y"), fixture + " output");
  const Tensor<float> dx = backward(npz.tensor<float>("upstream.y"));
  testing::check_close(dx, npz.tensor<double>("grad.input.x"), fixture + " grad x");
  for (auto& p : params) testing::check_close(p.param->grad, npz.tensor<double>("grad.param." + p.name), fixture + " grad " + p.name);
}

template <class M>
void golden_simple(const std::string& fixture, M module, bool has_params = true) {
  golden_case(
      fixture, module, [&](const io::NpzFile& f) { return module.forward(f.tensor<float>("input.x")); },
      [&](const Tensor<float>& up) { return module.backward(up); }, has_params);
}
}  // namespace

TEST_CASE("golden: Linear") {
  Rng rng(0);
  golden_simple("layer_linear", nn::Linear<float>(5, 3, rng));
}
TEST_CASE("golden: Conv1d kernel 5 padding 2") {
  Rng rng(0);
  golden_simple("layer_conv1d_k5", nn::Conv1d<float>(3, 4, 5, rng, 1, 2));
}
TEST_CASE("golden: Conv1d stride 2 padding 3 dilation 2") {
  Rng rng(0);
  golden_simple("layer_conv1d_stride_dilation", nn::Conv1d<float>(4, 6, 3, rng, 2, 3, 2));
}
TEST_CASE("golden: ConvTranspose1d (4, 2, 1)") {
  Rng rng(0);
  golden_simple("layer_conv_transpose1d", nn::ConvTranspose1d<float>(4, 3, 4, rng, 2, 1));
}
TEST_CASE("golden: ConvTranspose1d stride 3 output_padding 2 dilation 2") {
  Rng rng(0);
  golden_simple("layer_conv_transpose1d_odd", nn::ConvTranspose1d<float>(2, 3, 3, rng, 3, 1, 2, 2));
}
TEST_CASE("golden: GroupNorm") { golden_simple("layer_group_norm", nn::GroupNorm<float>(8, 16)); }
TEST_CASE("golden: LayerNorm over two trailing dims") { golden_simple("layer_layer_norm", nn::LayerNorm<float>(Shape{4, 3})); }
TEST_CASE("golden: Mish") { golden_simple("layer_mish", nn::Mish<float>(), false); }
TEST_CASE("golden: SiLU") { golden_simple("layer_silu", nn::SiLU<float>(), false); }
TEST_CASE("golden: ReLU") { golden_simple("layer_relu", nn::ReLU<float>(), false); }
TEST_CASE("golden: sinusoidal step embedding") { golden_simple("layer_sinusoidal", nn::SinusoidalPosEmb<float>(16), false); }
TEST_CASE("golden: MLP (Sequential names 0, 2, 4)") {
  Rng rng(0);
  golden_simple("layer_mlp_relu", nn::MLP<float>({6, 8, 8, 3}, nn::Activation::ReLU, rng));
}

namespace {
/// Modules taking (x, emb) whose backward returns {dx, demb}.
template <class M>
void golden_two_input(const std::string& fixture, M& module) {
  auto npz = testing::load_golden(fixture);
  auto params = nn::parameters_of<float>(module);
  testing::load_golden_params(params, npz);
  auto y = module.forward(npz.tensor<float>("input.x"), npz.tensor<float>("input.emb"));
  testing::check_close(y, npz.tensor<double>("output.y"), fixture + " output");
  auto [dx, de] = module.backward(npz.tensor<float>("upstream.y"));
  testing::check_close(dx, npz.tensor<double>("grad.input.x"), fixture + " grad x");
  testing::check_close(de, npz.tensor<double>("grad.input.emb"), fixture + " grad emb");
  for (auto& p : params) testing::check_close(p.param->grad, npz.tensor<double>("grad.param." + p.name), fixture + " grad " + p.name);
}
}  // namespace

TEST_CASE("golden: ResidualTemporalBlock (conditioned on an embedding, 1x1 residual conv)") {
  Rng rng(0);
  nn::ResidualTemporalBlock<float> blk(4, 16, 6, 5, rng, 4);
  golden_two_input("layer_residual_temporal_block", blk);
}

TEST_CASE("golden: AgentSelfAttention (MADiff inter-agent attention)") {
  Rng rng(0);
  nn::AgentSelfAttention<float> attn(32, 2, 8, 16, rng);
  golden_two_input("attn_agent", attn);
}

TEST_CASE("golden: MultiheadSelfAttention over time and over agents (torch.nn.MultiheadAttention)") {
  for (auto [fixture, axis] : {std::pair{"attn_mhsa_time", 1}, std::pair{"attn_mhsa_agents", 2}}) {
    Rng rng(0);
    nn::MultiheadSelfAttention<float> mha(16, 4, rng);
    auto npz = testing::load_golden(fixture);
    auto params = nn::parameters_of<float>(mha);
    nn::load_state_dict(params, npz, "param.m.");
    auto y = mha.forward(npz.tensor<float>("input.x"), axis);
    testing::check_close(y, npz.tensor<double>("output.y"), std::string(fixture) + " output");
    auto dx = mha.backward(npz.tensor<float>("upstream.y"));
    testing::check_close(dx, npz.tensor<double>("grad.input.x"), std::string(fixture) + " grad x");
    for (auto& p : params)
      testing::check_close(p.param->grad, npz.tensor<double>("grad.param.m." + p.name), std::string(fixture) + " grad " + p.name);
  }
}

namespace {
/// U-Nets called as forward(x, time, &returns, &keep) with those inputs stored in the fixture.
template <class Net>
void golden_conditioned_unet(const std::string& fixture, Net& net) {
  Tensor<float> t, ret, keep;
  golden_case(
      fixture, net,
      [&](const io::NpzFile& f) {
        t = f.tensor<float>("input.time");
        ret = f.tensor<float>("input.returns");
        keep = f.tensor<float>("input.keep");
        return net.forward(f.tensor<float>("input.x"), t, &ret, &keep);
      },
      [&](const Tensor<float>& up) { return net.backward(up); });
}
}  // namespace

TEST_CASE("golden: TemporalUNet (returns condition, classifier-free keep mask)") {
  nn::UNetConfig cfg;
  cfg.horizon = 8;
  cfg.transition_dim = 4;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2, 4};
  cfg.groups = 2;
  cfg.returns_condition = true;
  Rng rng(0);
  nn::TemporalUNet<float> net(cfg, rng);
  golden_conditioned_unet("unet_temporal", net);
}

namespace {
nn::UNetConfig multi_config() {
  nn::UNetConfig cfg;
  cfg.horizon = 8;
  cfg.transition_dim = 5;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2, 4};
  cfg.returns_condition = true;
  return cfg;
}
}  // namespace

TEST_CASE("golden: MultiAgentUNet (MADiff SharedConvAttentionDeconv, 3 agents)") {
  Rng rng(0);
  nn::MultiAgentUNet<float> net(multi_config(), 3, rng);
  golden_conditioned_unet("unet_multi_agent", net);
}

TEST_CASE("golden: MultiAgentUNet unconditional (cond_keep = 0)") {
  Rng rng(0);
  nn::MultiAgentUNet<float> net(multi_config(), 3, rng);
  auto params = nn::parameters_of<float>(net);
  testing::load_golden_params(params, testing::load_golden("unet_multi_agent"));
  auto f = testing::load_golden("unet_multi_agent_unconditional");
  auto t = f.tensor<float>("input.time"), ret = f.tensor<float>("input.returns"), keep = f.tensor<float>("input.keep");
  testing::check_close(net.forward(f.tensor<float>("input.x"), t, &ret, &keep), f.tensor<double>("output.y"), "output");
  testing::check_close(net.backward(f.tensor<float>("upstream.y")), f.tensor<double>("grad.input.x"), "grad x");
}
