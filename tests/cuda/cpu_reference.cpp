// CPU side of the CUDA parity tests (see cpu_reference.hpp).
#include "cpu_reference.hpp"

#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/diffusion/trainer.hpp"
#include "coordiff/nn/cuda/gpu_unet.hpp"
#include "coordiff/nn/optim/adam.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/guidance/none.hpp"
#include "coordiff/nn/agent_attention.hpp"
#include "coordiff/nn/conv1d.hpp"
#include "coordiff/nn/conv_transpose1d.hpp"
#include "coordiff/nn/group_norm.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
#include "coordiff/schedule/cosine.hpp"

namespace coordiff::cuda_test {

namespace {
template <class M>
NamedTensors copies(M& module, const std::string& prefix) {
  NamedTensors out;
  for (const auto& p : nn::parameters_of<float>(module, prefix)) out.emplace_back(p.name, p.param->value);
  return out;
}

nn::MultiAgentUNet<float> unet(std::uint64_t seed) {
  Rng rng(seed);
  nn::MultiAgentUNet<float> net(unet_parity_config(), 3, rng);
  // gamma starts at 0 (attention off); non-zero values make the parity cover the attention path.
  for (std::size_t i = 0; i < net.attention_count(); ++i) net.attention(i).gamma().value[0] = 0.5f + 0.1f * float(i);
  return net;
}
}  // namespace

LayerCase conv1d_case() {
  Rng rng(11);
  nn::Conv1d<float> conv(5, 12, 3, rng, /*stride=*/2, /*padding=*/1);
  LayerCase c;
  c.x = rng.normal<float>({4, 5, 9});
  c.ref = conv.forward(c.x);
  c.params = copies(conv, "c");
  return c;
}

LayerCase conv_transpose1d_case() {
  Rng rng(12);
  nn::ConvTranspose1d<float> up(6, 4, 4, rng, /*stride=*/2, /*padding=*/1);
  LayerCase c;
  c.x = rng.normal<float>({3, 6, 5});
  c.ref = up.forward(c.x);
  c.params = copies(up, "u");
  return c;
}

LayerCase group_norm_case() {
  Rng rng(13);
  const index_t N = 3, C = 12, L = 7;
  nn::GroupNorm<float> gn(4, C);
  gn.weight().value = rng.normal<float>({C});
  gn.bias().value = rng.normal<float>({C});
  LayerCase c;
  c.x = rng.normal<float>({N, C, L}, 0.5f, 3.0f);
  c.extra = rng.normal<float>({N, C});
  c.extra2 = rng.normal<float>({N, C, L});
  c.ref = gn.forward(c.x);
  nn::mish_forward(c.ref.data(), c.ref.data(), c.ref.size());
  for (index_t n = 0; n < N; ++n)
    for (index_t ch = 0; ch < C; ++ch)
      for (index_t l = 0; l < L; ++l) c.ref[(n * C + ch) * L + l] += c.extra[n * C + ch] + c.extra2[(n * C + ch) * L + l];
  c.params = copies(gn, "");
  return c;
}

LayerCase attention_case() {
  Rng rng(14);
  const index_t B = 3, A = 5, C = 32, L = 4, E = 16, heads = 4;
  nn::AgentSelfAttention<float> attn(C, C / 16, C / heads, E, rng, heads);
  attn.gamma().value[0] = 0.6f;
  LayerCase c;
  c.x = rng.normal<float>({B, A, C, L});
  const Tensor<float> emb = rng.normal<float>({B, A, E});
  c.ref = attn.forward(c.x, emb);
  c.extra = Tensor<float>(emb.shape());
  nn::mish_forward(emb.data(), c.extra.data(), emb.size());
  c.params = copies(attn, "a");
  return c;
}

nn::UNetConfig unet_parity_config() {
  nn::UNetConfig cfg;
  cfg.horizon = 8;
  cfg.transition_dim = 6;
  cfg.dim = 32;
  cfg.dim_mults = {1, 2, 4};
  cfg.groups = 8;
  cfg.kernel_size = 5;
  cfg.returns_condition = true;
  return cfg;
}

NamedTensors unet_parameters(std::uint64_t seed) {
  auto net = unet(seed);
  return copies(net, "");
}

Tensor<float> unet_forward(std::uint64_t seed, const Tensor<float>& x, const Tensor<float>& time,
                           const Tensor<float>& returns, const Tensor<float>& keep) {
  auto net = unet(seed);
  return net.forward(x, time, &returns, &keep);
}

NamedTensors unet_gradients(std::uint64_t seed, const Tensor<float>& x, const Tensor<float>& time,
                            const Tensor<float>& returns, const Tensor<float>& keep, const Tensor<float>& dy) {
  auto net = unet(seed);
  const auto params = nn::parameters_of<float>(net);
  nn::zero_grad(params);
  net.forward(x, time, &returns, &keep);
  net.backward(dy);
  NamedTensors out;
  for (const auto& p : params) out.emplace_back(p.name, p.param->grad);
  return out;
}

Tensor<float> adam_steps(const Tensor<float>& start, const std::vector<Tensor<float>>& grads) {
  nn::Parameter<float> p(start.shape());
  p.value = start;
  nn::optim::AdamOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.1;
  nn::optim::Adam<float> adam({{"p", &p}}, o);
  for (const auto& g : grads) {
    p.grad = g;
    adam.step();
  }
  return p.value;
}

std::pair<double, double> trainer_parity(std::uint64_t seed, index_t steps) {
  auto cpu = unet(seed);
  nn::cuda::GpuUNet gpu(unet_parity_config(), 3, nn::parameters_of<float>(cpu));
  const auto cfg = unet_parity_config();
  Rng rng(seed + 1);
  diffusion::TrajectoryDataset<float> data;
  data.x = rng.uniform<float>({64, cfg.horizon, 3, cfg.transition_dim}, -1.0f, 1.0f);
  data.condition = rng.uniform<float>({64, 3}, 0.0f, 1.0f);
  diffusion::TrainerOptions o;
  o.batch_size = 16;
  o.steps = steps;
  o.lr = 1e-3;
  o.grad_clip = 1.0;
  o.log_every = 0;
  o.seed = 7;
  diffusion::Trainer<schedule::Cosine, nn::MultiAgentUNet<float>> on_cpu(cpu, schedule::Cosine(100), data, o);
  diffusion::Trainer<schedule::Cosine, nn::cuda::GpuUNet> on_gpu(gpu, schedule::Cosine(100), data, o);
  double loss_err = 0;
  for (index_t s = 0; s < steps; ++s) {
    const double a = on_cpu.step(), b = on_gpu.step();
    loss_err = std::max(loss_err, std::abs(a - b) / std::abs(a));
  }
  double diff = 0, scale = 0;
  const auto pc = on_cpu.parameters(), pg = on_gpu.parameters();
  for (std::size_t i = 0; i < pc.size(); ++i) {
    const auto& a = pc[i].param->value;
    const Tensor<float>* b = nullptr;
    for (const auto& q : pg)
      if (q.name == pc[i].name) b = &q.param->value;
    require<ConfigError>(b != nullptr, "trainer_parity: the GPU network has no parameter ", pc[i].name);
    for (index_t j = 0; j < a.size(); ++j) {
      diff = std::max(diff, std::abs(static_cast<double>(a[j]) - (*b)[j]));
      scale = std::max(scale, std::abs(static_cast<double>(a[j])));
    }
  }
  return {diff / scale, loss_err};
}

diffusion::Sampler<schedule::Cosine> parity_sampler(diffusion::Solver solver) {
  diffusion::SamplerOptions opt;
  opt.solver = solver;
  opt.clip_sample = true;
  return diffusion::Sampler<schedule::Cosine>(schedule::Cosine(100), diffusion::TimestepPlan::strided(100, 20), opt);
}

Tensor<float> unet_sample(std::uint64_t seed, diffusion::Solver solver, const Tensor<float>& known_values,
                          const Tensor<std::uint8_t>* known, const Condition<float>& cond, double guidance_weight,
                          std::uint64_t noise_seed) {
  auto net = unet(seed);
  const auto sampler = parity_sampler(solver);
  const diffusion::SampleNoise noise(noise_seed, 0);
  if (guidance_weight == 0) return sampler.sample(net, guidance::None{}, known_values, known, cond, noise);
  return sampler.sample(net, guidance::ClassifierFree{guidance_weight}, known_values, known, cond, noise);
}

}  // namespace coordiff::cuda_test
