// CUDA parity tests: every device routine is compared with the CPU reference. Without a GPU the whole
// executable reports SKIPPED (exit code 77, which ctest shows as "Skipped"), never failed.
#include <algorithm>
#include <cmath>
#include <string>
#include <cstdio>
#include <vector>

#include "coordiff/backend/cuda/random.cuh"
#include "coordiff/backend/cuda/runtime.cuh"
#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/guidance/none.hpp"
#include "coordiff/diffusion/cuda/sampler.cuh"
#include "coordiff/nn/cuda/gpu_unet_impl.cuh"
#include "coordiff/nn/cuda/multi_agent_unet.cuh"
#include "cpu_reference.hpp"
#include "coordiff/schedule/cosine.hpp"
#include "coordiff/schedule/linear.hpp"

namespace {
int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
  if (!ok) ++failures;
}

void test_philox_normal_parity() {
  const std::int64_t n = 10003;  // not a multiple of 4
  for (std::uint64_t offset : {0ull, 6ull}) {
    coordiff::backend::cuda::DeviceBuffer<double> buf(n);
    coordiff::backend::cuda::fill_normal<double>(buf.data(), n, 1234, 5, offset);
    const auto gpu = buf.to_host();
    coordiff::Tensor<double> cpu(coordiff::Shape{n});
    coordiff::Philox(1234, 5).fill_normal(cpu, offset);
    double worst = 0;
    for (std::int64_t i = 0; i < n; ++i) worst = std::fmax(worst, std::fabs(gpu[i] - cpu[i]));
    // Same bits; Box-Muller's log/cos differ between libm and CUDA's math library by a few ulp at most.
    expect(worst < 1e-12, offset ? "philox normal parity (offset 6)" : "philox normal parity");
  }
}
__global__ void schedule_betas_kernel(double* cosine, double* linear, std::int64_t steps) {
  const std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (k >= steps) return;
  cosine[k] = coordiff::schedule::cosine_beta(k, steps, 0.008, 0.999);
  linear[k] = coordiff::schedule::linear_beta(k, steps, 1e-4, 2e-2);
}

// The schedule formulas are COORDIFF_HOST_DEVICE: a kernel evaluates the same betas as the host tables.
void test_schedule_math_on_device() {
  const std::int64_t steps = 200;
  coordiff::backend::cuda::DeviceBuffer<double> cos_buf(steps), lin_buf(steps);
  schedule_betas_kernel<<<(steps + 127) / 128, 128>>>(cos_buf.data(), lin_buf.data(), steps);
  const auto cos_gpu = cos_buf.to_host(), lin_gpu = lin_buf.to_host();
  const coordiff::schedule::Cosine cosine(steps);
  const coordiff::schedule::Linear linear(steps);
  double worst = 0;
  for (std::int64_t k = 0; k < steps; ++k)
    worst = std::fmax(worst, std::fmax(std::fabs(cos_gpu[k] - cosine.beta(k)) / cosine.beta(k),
                                       std::fabs(lin_gpu[k] - linear.beta(k)) / linear.beta(k)));
  expect(worst < 1e-12, "cosine and linear betas on the device match the host schedule");
}

namespace bc = coordiff::backend::cuda;
namespace nc = coordiff::nn::cuda;
namespace ref = coordiff::cuda_test;
using coordiff::index_t;
using coordiff::Tensor;

static_assert(coordiff::denoiser::check_denoiser<nc::DeviceMultiAgentUNet<float>>());

/// Host parameter copies as the ParameterList the device network loads from.
struct OwnedParameters {
  std::vector<coordiff::nn::Parameter<float>> storage;
  coordiff::nn::ParameterList<float> list;
  explicit OwnedParameters(const ref::NamedTensors& named) {
    storage.reserve(named.size());
    for (const auto& [name, value] : named) {
      storage.emplace_back();
      storage.back().value = value;
      list.push_back({name, &storage.back()});
    }
  }
};

/// max |a - b| / max |b|: relative to the reference's scale, so that entries near zero do not dominate.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < b.size() && i < a.size(); ++i) {
    diff = std::fmax(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::fmax(scale, std::fabs(static_cast<double>(b[i])));
  }
  return a.size() == b.size() && scale > 0 ? diff / scale : 1e30;
}
/// [N, C, L] (the CPU layout) -> [N, L, C] (the device layout).
std::vector<float> channels_last(const Tensor<float>& x) {
  const index_t N = x.dim(0), C = x.dim(1), L = x.dim(2);
  std::vector<float> y(static_cast<std::size_t>(x.size()));
  for (index_t n = 0; n < N; ++n)
    for (index_t c = 0; c < C; ++c)
      for (index_t l = 0; l < L; ++l) y[static_cast<std::size_t>((n * L + l) * C + c)] = x[(n * C + c) * L + l];
  return y;
}
std::vector<float> host(const Tensor<float>& t) { return std::vector<float>(t.data(), t.data() + t.size()); }
std::vector<float> download(const float* device, std::size_t n, cudaStream_t s) {
  std::vector<float> h(n);
  bc::check(cudaMemcpyAsync(h.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync D2H");
  bc::check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  return h;
}
void report(double err, double tol, const char* what) {
  std::printf("  %s: relative error %.3g (tolerance %.0e)\n", what, err, tol);
  expect(err < tol, what);
}

void test_conv_parity() {
  bc::Stream stream;
  bc::Blas blas(stream.get());
  bc::DeviceArray<float> dx, dy, col;
  {
    const auto c = ref::conv1d_case();
    const OwnedParameters p(c.params);
    const nc::detail::DeviceConv<float> conv(nc::ParameterSource<float>(p.list, ""), "c", 5, 12, 3, 2, 1);
    dx.upload(channels_last(c.x), stream.get());
    dy.ensure(static_cast<std::size_t>(c.ref.size()));
    conv.forward(blas, dx.data(), 4, 9, dy.data(), col);
    report(relative_error(dy.to_host(stream.get()), channels_last(c.ref)), 1e-5, "Conv1d (k 3, stride 2, padding 1)");
  }
  {
    const auto c = ref::conv_transpose1d_case();
    const OwnedParameters p(c.params);
    const nc::detail::DeviceConvTranspose<float> up(nc::ParameterSource<float>(p.list, ""), "u", 6, 4, 4, 2, 1);
    dx.upload(channels_last(c.x), stream.get());
    dy.ensure(static_cast<std::size_t>(c.ref.size()));
    up.forward(blas, dx.data(), 3, 5, dy.data(), col);
    report(relative_error(dy.to_host(stream.get()), channels_last(c.ref)), 1e-5,
           "ConvTranspose1d (k 4, stride 2, padding 1)");
  }
}

void test_group_norm_parity() {
  const auto c = ref::group_norm_case();
  const index_t N = c.x.dim(0), C = c.x.dim(1), L = c.x.dim(2);
  bc::Stream stream;
  bc::DeviceArray<float> dx, dy(static_cast<std::size_t>(c.x.size())), w, b, per_sample, residual;
  dx.upload(channels_last(c.x), stream.get());
  w.upload(host(c.params.at(0).second), stream.get());
  b.upload(host(c.params.at(1).second), stream.get());
  per_sample.upload(host(c.extra), stream.get());
  residual.upload(channels_last(c.extra2), stream.get());
  bc::group_norm_act(dx.data(), N, L, C, 4, 1e-5, w.data(), b.data(), bc::Act::Mish,
                     bc::NormEpilogue<float>{per_sample.data(), C, residual.data()}, dy.data(), stream.get());
  report(relative_error(dy.to_host(stream.get()), channels_last(c.ref)), 1e-5, "GroupNorm + Mish + per-sample + residual");
}

void test_attention_parity() {
  const auto c = ref::attention_case();
  const index_t B = c.x.dim(0), A = c.x.dim(1), C = c.x.dim(2), L = c.x.dim(3), E = c.extra.dim(2);
  const OwnedParameters p(c.params);
  nc::detail::ProjectionTable<float> table{E, 0, {}, {}};
  nc::detail::DeviceAgentAttention<float> attn(nc::ParameterSource<float>(p.list, ""), "a", C, 4, table);
  // The step projections the network computes in its one table GEMM: mish(emb) W^T + b, here on the host.
  std::vector<float> te(static_cast<std::size_t>(B * A * table.total));
  for (index_t r = 0; r < B * A; ++r)
    for (index_t o = 0; o < table.total; ++o) {
      double acc = table.bias[static_cast<std::size_t>(o)];
      for (index_t e = 0; e < E; ++e) acc += double(c.extra[r * E + e]) * table.weight[static_cast<std::size_t>(o * E + e)];
      te[static_cast<std::size_t>(r * table.total + o)] = static_cast<float>(acc);
    }
  bc::Stream stream;
  bc::Blas blas(stream.get());
  bc::DeviceArray<float> dx, dte;
  dx.upload(channels_last(c.x.reshape({B * A, C, L})), stream.get());
  dte.upload(te, stream.get());
  const float* dy = attn.forward(blas, dx.data(), B, A, L, dte.data(), table.total, false);
  report(relative_error(download(dy, static_cast<std::size_t>(c.x.size()), stream.get()),
                        channels_last(c.ref.reshape({B * A, C, L}))),
         1e-5, "agent self-attention (5 agents, 4 heads)");
}

void test_unet_parity() {
  const std::uint64_t seed = 21;
  const auto cfg = ref::unet_parity_config();
  const OwnedParameters p(ref::unet_parameters(seed));
  nc::DeviceMultiAgentUNet<float> net(cfg, 3, p.list);
  coordiff::Rng rng(22);
  for (index_t A : {3, 1}) {
    const index_t B = 5;
    const Tensor<float> x = rng.normal<float>({B, cfg.horizon, A, cfg.transition_dim});
    Tensor<float> t({B}), returns = rng.normal<float>({B, A}), keep({B, A});
    for (index_t b = 0; b < B; ++b) t[b] = float(rng.below(100));
    for (index_t i = 0; i < B * A; ++i) keep[i] = float(i % 3 != 0);
    const Tensor<float> want = ref::unet_forward(seed, x, t, returns, keep);
    const Tensor<float> got = net.forward(x, t, &returns, &keep);
    report(relative_error(host(got), host(want)), 1e-4,
           A == 3 ? "MultiAgentUNet forward, 3 agents" : "MultiAgentUNet forward, 1 agent (shared weights)");
  }
  // Steady state: a repeated call of the same size makes no device allocation.
  const Tensor<float> x = rng.normal<float>({7, cfg.horizon, 3, cfg.transition_dim});
  const Tensor<float> t({7}, 3.0f), returns({7, 3}, 0.5f);
  net.forward(x, t, &returns);
  const std::size_t before = bc::DevicePool::instance().device_allocations();
  net.forward(x, t, &returns);
  expect(bc::DevicePool::instance().device_allocations() == before, "a repeated forward pass makes no device allocation");

  bool named = false;
  try {
    coordiff::nn::ParameterList<float> missing(p.list.begin() + 1, p.list.end());
    nc::DeviceMultiAgentUNet<float> broken(cfg, 3, missing);
  } catch (const coordiff::ConfigError& e) {
    named = std::string(e.what()).find(p.list.front().name) != std::string::npos;
  }
  expect(named, "a missing parameter is named in the error");
}

// Every parameter's gradient after one forward/backward, against the CPU network's.
void test_unet_gradients() {
  const std::uint64_t seed = 31;
  const auto cfg = ref::unet_parity_config();
  const OwnedParameters p(ref::unet_parameters(seed));
  nc::DeviceMultiAgentUNet<float> net(cfg, 3, p.list);
  coordiff::Rng rng(32);
  const index_t B = 4, A = 3;
  const Tensor<float> x = rng.normal<float>({B, cfg.horizon, A, cfg.transition_dim});
  const Tensor<float> dy = rng.normal<float>(x.shape());
  Tensor<float> t({B}), returns = rng.normal<float>({B, A}), keep({B, A});
  for (index_t b = 0; b < B; ++b) t[b] = float(rng.below(100));
  for (index_t i = 0; i < B * A; ++i) keep[i] = float(i % 4 != 1);
  const auto want = ref::unet_gradients(seed, x, t, returns, keep, dy);
  net.set_training(true);
  net.forward(x, t, &returns, &keep);
  net.backward(dy);
  OwnedParameters got(ref::unet_parameters(seed));
  for (auto& q : got.storage) q.grad = Tensor<float>(q.value.shape());
  net.add_gradients_to(got.list);
  double worst = 0;
  std::string worst_name;
  std::size_t compared = 0, unused = 0;
  for (std::size_t i = 0; i < got.list.size(); ++i) {
    const auto& name = got.list[i].name;
    const auto it = std::find_if(want.begin(), want.end(), [&](const auto& w) { return w.first == name; });
    if (it == want.end()) continue;
    if (name.find("self_attn." + std::to_string(cfg.levels()) + ".") == 0) {  // the never-used finest attention
      ++unused;
      continue;
    }
    const double e = relative_error(host(got.list[i].param->grad), host(it->second));
    ++compared;
    if (e > worst) worst = e, worst_name = name;
  }
  std::printf("  %zu parameter gradients compared; worst %s\n", compared, worst_name.c_str());
  report(worst, 1e-3, "MultiAgentUNet backward: every parameter gradient");
  expect(unused > 0 && compared + unused == want.size(), "every used parameter's gradient is compared");
}

void test_adam_parity() {
  coordiff::Rng rng(33);
  const Tensor<float> start = rng.normal<float>({257});
  std::vector<Tensor<float>> grads;
  for (int k = 0; k < 3; ++k) grads.push_back(rng.normal<float>({257}));
  const Tensor<float> want = ref::adam_steps(start, grads);
  bc::Stream stream;
  bc::DeviceArray<float> p, g, m(257), v(257);
  p.upload(host(start), stream.get());
  bc::check(cudaMemsetAsync(m.data(), 0, 257 * sizeof(float), stream.get()), "memset");
  bc::check(cudaMemsetAsync(v.data(), 0, 257 * sizeof(float), stream.get()), "memset");
  for (int k = 0; k < 3; ++k) {
    g.upload(host(grads[static_cast<std::size_t>(k)]), stream.get());
    bc::adam(p.data(), g.data(), m.data(), v.data(), 257, 0.01, 0.9, 0.999, 1e-8, 0.1, false, k + 1, stream.get());
  }
  report(relative_error(p.to_host(stream.get()), host(want)), 1e-6, "Adam update (3 steps, weight decay)");
}

void test_trainer_parity() {
  const auto [param_err, loss_err] = ref::trainer_parity(34, 5);
  report(loss_err, 1e-3, "diffusion::Trainer with GpuUNet: loss per step");
  report(param_err, 1e-3, "diffusion::Trainer with GpuUNet: parameters after 5 steps");
}

// The same Sampler code with the network on either backend, from the same noise.
void test_sampling_parity() {
  const std::uint64_t seed = 23;
  const auto cfg = ref::unet_parity_config();
  const OwnedParameters p(ref::unet_parameters(seed));
  nc::DeviceMultiAgentUNet<float> net(cfg, 3, p.list);
  const Tensor<float> shape({16, cfg.horizon, 3, cfg.transition_dim});
  coordiff::Condition<float> cond;
  cond.value = Tensor<float>({16, 3}, 0.8f);
  const auto solver = coordiff::diffusion::Solver::Ddim;
  const Tensor<float> cpu = ref::unet_sample(seed, solver, shape, nullptr, cond, 0, 2024);
  const Tensor<float> gpu = ref::parity_sampler(solver).sample(net, coordiff::guidance::None{}, shape, nullptr, cond,
                                                                coordiff::diffusion::SampleNoise(2024, 0));
  report(relative_error(host(gpu), host(cpu)), 1e-3, "diffusion::Sampler, 20 DDIM steps, device network as the Denoiser");
}

// The whole loop on the device: DDPM (step noise every step) unguided, and DDIM with classifier-free
// guidance and inpainting; then a replay of the recorded graph must repeat the result bit for bit.
void test_device_sampler() {
  const std::uint64_t seed = 24;
  const auto cfg = ref::unet_parity_config();
  const OwnedParameters p(ref::unet_parameters(seed));
  nc::DeviceMultiAgentUNet<float> net(cfg, 3, p.list);
  coordiff::Rng rng(25);
  const index_t B = 12, H = cfg.horizon, A = 3, F = cfg.transition_dim;
  Tensor<float> known_values = rng.uniform<float>({B, H, A, F}, -0.9f, 0.9f);
  Tensor<std::uint8_t> known({B, H, A, F});
  for (index_t b = 0; b < B; ++b)  // agent 0's first two steps are known (MASTARS' observed history)
    for (index_t t = 0; t < 2; ++t)
      for (index_t f = 0; f < F; ++f) known(b, t, 0, f) = 1;
  coordiff::Condition<float> cond;
  cond.value = rng.uniform<float>({B, A}, 0.0f, 1.0f);
  using coordiff::diffusion::Solver;
  for (Solver solver : {Solver::Ddpm, Solver::Ddim}) {
    const bool guided = solver == Solver::Ddim;
    const auto host_sampler = ref::parity_sampler(solver);
    coordiff::diffusion::cuda::DeviceSampler<coordiff::schedule::Cosine, float> sampler(
        host_sampler.schedule(), host_sampler.plan(), host_sampler.options());
    const coordiff::diffusion::SampleNoise noise(77, 0);
    const Tensor<float> want = ref::unet_sample(seed, solver, known_values, guided ? &known : nullptr, cond,
                                                guided ? 1.2 : 0.0, 77);
    Tensor<float> got, again;
    if (guided) {
      got = sampler.sample(net, coordiff::guidance::ClassifierFree{1.2}, known_values, &known, cond, noise);
      again = sampler.sample(net, coordiff::guidance::ClassifierFree{1.2}, known_values, &known, cond, noise);
    } else {
      got = sampler.sample(net, coordiff::guidance::None{}, known_values, nullptr, cond, noise);
      again = sampler.sample(net, coordiff::guidance::None{}, known_values, nullptr, cond, noise);
    }
    report(relative_error(host(got), host(want)), 1e-3,
           guided ? "DeviceSampler: DDIM + classifier-free guidance + inpainting" : "DeviceSampler: DDPM");
    expect(sampler.graph_recordings() == 1 && sampler.graph_replays() == 1, "the second call replays the recorded graph");
    expect(host(again) == host(got), "the graph replay repeats the eager run bit for bit");
    if (guided) {
      bool exact = true;
      for (index_t i = 0; i < known.size(); ++i) exact = exact && (!known[i] || got[i] == known_values[i]);
      expect(exact, "inpainted entries equal the known values exactly");
    }
  }
}
}  // namespace

int main() {
  if (coordiff::backend::cuda::device_count() == 0) {
    std::printf("no CUDA device: CUDA parity tests skipped\n");
    return 77;
  }
  test_philox_normal_parity();
  test_schedule_math_on_device();
  const auto guarded = [](const char* name, void (*f)()) {
    try {
      f();
    } catch (const std::exception& e) {
      std::printf("FAIL: %s threw: %s\n", name, e.what());
      ++failures;
    }
  };
  guarded("conv parity", test_conv_parity);
  guarded("group norm parity", test_group_norm_parity);
  guarded("attention parity", test_attention_parity);
  guarded("U-Net parity", test_unet_parity);
  guarded("U-Net gradients", test_unet_gradients);
  guarded("Adam", test_adam_parity);
  guarded("Trainer with GpuUNet", test_trainer_parity);
  guarded("sampling parity", test_sampling_parity);
  guarded("device sampler", test_device_sampler);
  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
