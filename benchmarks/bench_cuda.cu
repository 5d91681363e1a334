// GPU sampling speed (Google Benchmark) of the MADiff-size MultiAgentUNet (dim 128, mults (1, 4, 8),
// 3 agents, 18 features, return conditioning) under classifier-free guidance, with the PyTorch peer
// (benchmarks/peer/bench_cuda_torch.py) run on the same GPU with the same weights:
//   CudaSampling/cfg_ddim/H/B   diffusion::cuda::DeviceSampler, kSteps DDIM steps with guidance w 1.2 (one
//                               doubled-batch forward per step), the whole run replayed from a CUDA graph;
//                               items_per_second = CFG steps/s, "trajectories/s" = B * runs/s
//   CudaSampling/forward/H/B    one DeviceMultiAgentUNet forward pass (device pointers, synchronised)
// --weights=<npz> (required; written by the peer) loads the peer's state_dict per horizon ("h<H>.param.*")
// and checks the forward pass against the peer's float64 output on its parity input (relative 1e-4; 2e-2
// with --tf32) before anything is timed. Run both with benchmarks/run_cuda_bench.sh.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "bench_cuda_weights.hpp"
#include "coordiff/diffusion/cuda/sampler.cuh"
#include "coordiff/nn/cuda/multi_agent_unet.cuh"
#include "coordiff/schedule/cosine.hpp"

namespace cd = coordiff;
namespace {

constexpr cd::index_t kAgents = 3, kFeatures = 18, kTrainSteps = 200, kSteps = 20;
constexpr double kGuidanceWeight = 1.2;
std::string g_weights;
bool g_tf32 = false;

cd::nn::UNetConfig madiff_config(cd::index_t horizon) {
  cd::nn::UNetConfig c;
  c.horizon = horizon;
  c.transition_dim = kFeatures;
  c.dim = 128;
  c.dim_mults = {1, 4, 8};
  c.kernel_size = 5;
  c.groups = 8;
  c.returns_condition = true;
  return c;
}

struct Weights {
  std::vector<cd::nn::Parameter<float>> storage;
  cd::nn::ParameterList<float> list;
  std::map<std::string, cd::Tensor<float>> extra;  // parity.* arrays
};

/// The peer's weights for `horizon` ("h<H>.param.*") and its parity arrays ("h<H>.parity.*").
Weights& weights(cd::index_t horizon) {
  static std::map<cd::index_t, std::unique_ptr<Weights>> cache;
  auto& slot = cache[horizon];
  if (slot) return *slot;
  slot = std::make_unique<Weights>();
  const std::string prefix = "h" + std::to_string(horizon) + ".";
  if (g_weights.empty()) {
    std::fprintf(stderr, "bench_cuda: --weights=<npz from benchmarks/peer/bench_cuda_torch.py> is required\n");
    std::exit(2);
  }
  auto all = cd::bench::read_npz(g_weights);
  slot->storage.reserve(all.size());
  for (auto& [key, t] : all) {
    if (key.rfind(prefix + "param.", 0) == 0) {
      slot->storage.emplace_back();
      slot->storage.back().value = std::move(t);
      slot->list.push_back({key.substr(prefix.size() + 6), &slot->storage.back()});
    } else if (key.rfind(prefix + "parity.", 0) == 0) {
      slot->extra.emplace(key.substr(prefix.size()), std::move(t));
    }
  }
  return *slot;
}

cd::nn::cuda::DeviceMultiAgentUNet<float>& network(cd::index_t horizon) {
  static std::map<cd::index_t, std::unique_ptr<cd::nn::cuda::DeviceMultiAgentUNet<float>>> nets;
  auto& slot = nets[horizon];
  if (slot) return *slot;
  Weights& w = weights(horizon);
  slot = std::make_unique<cd::nn::cuda::DeviceMultiAgentUNet<float>>(madiff_config(horizon), kAgents, w.list, "", 4, g_tf32);
  // Parity gate: the peer's forward output on its parity input.
  const auto& x = w.extra.at("parity.x");
  const auto& t = w.extra.at("parity.t");
  const auto& r = w.extra.at("parity.returns");
  const auto& want = w.extra.at("parity.out");
  const cd::Tensor<float> got = slot->forward(x, t, &r);
  double diff = 0, scale = 0;
  for (cd::index_t i = 0; i < want.size(); ++i) {
    diff = std::fmax(diff, std::fabs(double(got[i]) - want[i]));
    scale = std::fmax(scale, std::fabs(double(want[i])));
  }
  const double tol = g_tf32 ? 2e-2 : 1e-4;
  std::fprintf(stderr, "bench_cuda: horizon %lld parity with PyTorch: relative error %.3g (tolerance %.0e)\n",
               static_cast<long long>(horizon), diff / scale, tol);
  if (!(diff / scale < tol)) {
    std::fprintf(stderr, "bench_cuda: parity check failed; not timing\n");
    std::exit(1);
  }
  return *slot;
}

void CudaSamplingCfg(benchmark::State& state) {
  const cd::index_t H = state.range(0), B = state.range(1);
  auto& net = network(H);
  cd::diffusion::SamplerOptions opt;
  opt.solver = cd::diffusion::Solver::Ddim;
  opt.clip_sample = true;
  cd::diffusion::cuda::DeviceSampler<cd::schedule::Cosine, float> sampler(
      cd::schedule::Cosine(kTrainSteps), cd::diffusion::TimestepPlan::strided(kTrainSteps, kSteps), opt);
  const cd::Tensor<float> shape({B, H, kAgents, kFeatures});
  cd::Condition<float> cond;
  cond.value = cd::Tensor<float>({B, kAgents}, 0.9f);
  std::uint64_t first = 0;
  sampler.sample(net, cd::guidance::ClassifierFree{kGuidanceWeight}, shape, nullptr, cond, cd::diffusion::SampleNoise(1, 0));
  for (auto _ : state) {
    const auto x = sampler.sample(net, cd::guidance::ClassifierFree{kGuidanceWeight}, shape, nullptr, cond,
                                  cd::diffusion::SampleNoise(1, first));
    benchmark::DoNotOptimize(x.data());
    first += static_cast<std::uint64_t>(B);
  }
  state.SetItemsProcessed(state.iterations() * kSteps);
  state.counters["trajectories/s"] = benchmark::Counter(double(state.iterations() * B), benchmark::Counter::kIsRate);
  state.counters["graph_replays"] = double(sampler.graph_replays());
}

void CudaForward(benchmark::State& state) {
  const cd::index_t H = state.range(0), B = state.range(1);
  auto& net = network(H);
  cd::backend::cuda::DeviceArray<float> x(static_cast<std::size_t>(B * H * kAgents * kFeatures)),
      y(static_cast<std::size_t>(B * H * kAgents * kFeatures)), t(static_cast<std::size_t>(B)),
      r(static_cast<std::size_t>(B * kAgents));
  cudaMemsetAsync(x.data(), 0, x.size() * sizeof(float), net.stream());
  cudaMemsetAsync(t.data(), 0, t.size() * sizeof(float), net.stream());
  cudaMemsetAsync(r.data(), 0, r.size() * sizeof(float), net.stream());
  net.forward_device(x.data(), t.data(), r.data(), nullptr, B, kAgents, y.data());
  cudaStreamSynchronize(net.stream());
  for (auto _ : state) {
    net.forward_device(x.data(), t.data(), r.data(), nullptr, B, kAgents, y.data());
    cudaStreamSynchronize(net.stream());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["rows/s"] = benchmark::Counter(double(state.iterations() * B), benchmark::Counter::kIsRate);
}

void sizes(benchmark::internal::Benchmark* b) {
  for (long h : {8, 24})
    for (long batch : {1, 32, 256, 1024}) b->Args({h, batch});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(CudaSamplingCfg)->Name("CudaSampling/cfg_ddim")->Apply(sizes);
BENCHMARK(CudaForward)->Name("CudaSampling/forward")->Apply(sizes);

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--weights=", 10) == 0) g_weights = argv[i] + 10;
    if (std::strcmp(argv[i], "--tf32") == 0) g_tf32 = true;
  }
  if (cd::backend::cuda::device_count() == 0) {
    std::fprintf(stderr, "bench_cuda: no CUDA device\n");
    return 77;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
