// Reverse-process sampling speed (Google Benchmark): diffusion::Sampler walking DDPM steps with a small
// MASTARS-like MultiAgentUNet<float> (dim 32, mults (1, 2, 4), 3 agents, 18 features, horizon 8, return
// conditioning, cosine schedule with 100 training steps).
//   Sampling/ddpm_step/B  one reverse DDPM step = one denoiser forward + the ancestral update (+ its noise)
//   Sampling/cfg_step/B   one classifier-free-guided DDPM step = two forwards (conditional and null path)
//                         + the guidance combination + the update
//   Sampling/forward/B    the denoiser forward alone (no update), for reference
// Each step benchmark walks kStepsPerIteration strided levels from a fixed x_k (Sampler::denoise_from), so
// items_per_second is reverse steps per second and "rows*steps/s" counts samples (windows) x steps.
//
// With --weights=<npz> (written by benchmarks/peer/bench_sampling_torch.py) the network loads PyTorch's
// weights and two sampler steps are checked against PyTorch's before anything is timed (the peer draws
// the step noise from the same Philox streams as diffusion::SampleNoise). Run both with
// benchmarks/run_sampling_bench.sh.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "coordiff/core/condition.hpp"
#include "coordiff/core/threading.hpp"
#include "coordiff/diffusion/noise.hpp"
#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/diffusion/timestep_plan.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/guidance/none.hpp"
#include "coordiff/io/npz.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
#include "coordiff/nn/parameter.hpp"
#include "coordiff/nn/state_dict.hpp"
#include "coordiff/schedule/cosine.hpp"

namespace cd = coordiff;
using cd::diffusion::Sampler;
using cd::diffusion::SampleNoise;
using cd::diffusion::TimestepPlan;

namespace {

constexpr cd::index_t kAgents = 3, kFeatures = 18, kHorizon = 8;
constexpr cd::index_t kTrainSteps = 100;         // cosine schedule length
constexpr cd::index_t kStepsPerIteration = 10;   // reverse steps timed per benchmark iteration
constexpr double kGuidanceWeight = 1.2;          // MADiff's w
constexpr std::uint64_t kNoiseSeed = 5;

cd::nn::UNetConfig small_config() {
  cd::nn::UNetConfig c;
  c.horizon = kHorizon;
  c.transition_dim = kFeatures;
  c.dim = 32;
  c.dim_mults = {1, 2, 4};
  c.kernel_size = 5;
  c.groups = 8;
  c.returns_condition = true;
  return c;
}

cd::diffusion::SamplerOptions ddpm_options() {
  cd::diffusion::SamplerOptions o;  // DDPM, fixed-small variance, epsilon prediction
  o.clip_sample = true;             // x0^ clamped to [-1, 1] (MADiff)
  return o;
}

std::string g_weights;  // --weights=path

cd::nn::MultiAgentUNet<float>& model() {
  static std::unique_ptr<cd::nn::MultiAgentUNet<float>> net = [] {
    cd::Rng rng(0);
    auto m = std::make_unique<cd::nn::MultiAgentUNet<float>>(small_config(), kAgents, rng);
    for (auto& p : cd::nn::parameters_of<float>(*m))  // attention active, as in a trained model
      if (p.name.find("gamma") != std::string::npos) p.param->value.fill(0.5f);
    if (g_weights.empty()) return m;
    const auto npz = cd::io::NpzFile::load(g_weights);
    cd::nn::load_state_dict(cd::nn::parameters_of<float>(*m), npz, "param.");
    // Parity gate: the same two-step DDPM walk (levels k1 -> k2 -> clean, no guidance and with
    // classifier-free guidance) as PyTorch, from the same x and with the same step noise.
    const auto x = npz.tensor<float>("parity.x");
    const auto levels = npz.tensor<std::int64_t>("parity.levels");
    cd::Condition<float> cond;
    cond.value = npz.tensor<float>("parity.returns");
    const cd::schedule::Cosine sched(kTrainSteps);
    const Sampler<cd::schedule::Cosine> sampler(
        sched, TimestepPlan::from_levels(kTrainSteps, {levels[0], levels[1]}), ddpm_options());
    cd::nn::NoGradGuard ng;
    for (const char* which : {"ddpm", "cfg"}) {
      const SampleNoise noise(kNoiseSeed, 0);
      const auto y = std::strcmp(which, "ddpm") == 0
                         ? sampler.denoise_from(*m, cd::guidance::None{}, x, cond, noise)
                         : sampler.denoise_from(*m, cd::guidance::ClassifierFree{kGuidanceWeight}, x, cond, noise);
      const auto expected = npz.tensor<double>(std::string("parity.") + which);
      double worst = 0, scale = 0;
      for (cd::index_t i = 0; i < y.size(); ++i) {
        worst = std::max(worst, std::abs(static_cast<double>(y[i]) - expected[i]));
        scale = std::max(scale, std::abs(expected[i]));
      }
      std::fprintf(stderr, "parity %s (2 steps, levels %lld -> %lld -> clean): max |coordiff - torch| = %.3g (max |x| = %.3g)\n",
                   which, static_cast<long long>(levels[0]), static_cast<long long>(levels[1]), worst, scale);
      if (!(worst <= 1e-4 * std::max(scale, 1.0))) {
        std::fprintf(stderr, "parity check FAILED for %s: refusing to time different computations\n", which);
        std::exit(1);
      }
    }
    return m;
  }();
  return *net;
}

template <class Guide>
void run_steps(benchmark::State& state, const Guide& guide) {
  const cd::index_t B = state.range(0);
  auto& net = model();
  const cd::schedule::Cosine sched(kTrainSteps);
  const Sampler<cd::schedule::Cosine> sampler(sched, TimestepPlan::strided(kTrainSteps, kStepsPerIteration),
                                              ddpm_options());
  cd::Rng rng(1);
  const auto x_start = rng.normal<float>({B, kHorizon, kAgents, kFeatures});
  cd::Condition<float> cond;
  cond.value = cd::Tensor<float>({B, kAgents}, 0.9f);
  const SampleNoise noise(kNoiseSeed, 0);
  cd::nn::NoGradGuard ng;  // inference: no activation caching (torch.no_grad() on the peer side)
  for (auto _ : state) benchmark::DoNotOptimize(sampler.denoise_from(net, guide, x_start, cond, noise));
  state.SetItemsProcessed(state.iterations() * kStepsPerIteration);  // items_per_second = steps/s
  state.counters["rows*steps/s"] =
      benchmark::Counter(static_cast<double>(B * kStepsPerIteration), benchmark::Counter::kIsIterationInvariantRate);
}

// The denoiser alone (one forward per iteration), to separate the network from the sampler's own work.
void bm_forward(benchmark::State& state) {
  const cd::index_t B = state.range(0);
  auto& net = model();
  cd::Rng rng(1);
  const auto x = rng.normal<float>({B, kHorizon, kAgents, kFeatures});
  const cd::Tensor<float> k({B}, 50.0f);
  cd::Condition<float> cond;
  cond.value = cd::Tensor<float>({B, kAgents}, 0.9f);
  cd::nn::NoGradGuard ng;
  for (auto _ : state) benchmark::DoNotOptimize(net(x, k, cond));
  state.SetItemsProcessed(state.iterations());
  state.counters["rows*steps/s"] = benchmark::Counter(static_cast<double>(B), benchmark::Counter::kIsIterationInvariantRate);
}

void bm_ddpm_step(benchmark::State& state) { run_steps(state, cd::guidance::None{}); }
void bm_cfg_step(benchmark::State& state) { run_steps(state, cd::guidance::ClassifierFree{kGuidanceWeight}); }

double g_min_time = 1.0;  // --min-time=seconds per benchmark

void batches(benchmark::internal::Benchmark* b) {
  b->Arg(1)->Arg(32)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(g_min_time);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--weights=", 10) == 0) g_weights = argv[i] + 10;
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
    if (std::strncmp(argv[i], "--min-time=", 11) == 0) g_min_time = std::atof(argv[i] + 11);
  }
  if (threads > 0) cd::set_num_threads(threads);
  // Registered here so that --min-time applies; names match the PyTorch peer's.
  benchmark::RegisterBenchmark("Sampling/forward", bm_forward)->Apply(batches);
  benchmark::RegisterBenchmark("Sampling/ddpm_step", bm_ddpm_step)->Apply(batches);
  benchmark::RegisterBenchmark("Sampling/cfg_step", bm_cfg_step)->Apply(batches);
  benchmark::Initialize(&argc, argv);
  model();  // load + parity check before any timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
