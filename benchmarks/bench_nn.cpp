// U-Net forward and forward+backward timings (Google Benchmark).
//
// With --weights=<npz> (written by benchmarks/peer/bench_nn_torch.py) the networks load the PyTorch
// weights and inputs, and the outputs are checked against PyTorch's before anything is timed, so both
// sides time the identical computation. Run everything with benchmarks/run_nn_bench.sh.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "coordiff/core/threading.hpp"
#include "coordiff/io/npz.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
#include "coordiff/nn/state_dict.hpp"
#include "coordiff/nn/temporal_unet.hpp"

namespace cd = coordiff;

namespace {

// The MASTARS / MADiff MPE denoiser: dim 128, mults (1,4,8), 3 agents, 18 features, horizon 8.
constexpr cd::index_t kAgents = 3, kFeatures = 18, kHorizon = 8;

cd::nn::UNetConfig mpe_config() {
  cd::nn::UNetConfig c;
  c.horizon = kHorizon;
  c.transition_dim = kFeatures;
  c.dim = 128;
  c.dim_mults = {1, 4, 8};
  c.returns_condition = true;
  return c;
}

std::string g_weights;  // --weights=path

struct Models {
  std::unique_ptr<cd::nn::MultiAgentUNet<float>> multi;
  std::unique_ptr<cd::nn::TemporalUNet<float>> single;
};

Models& models() {
  static Models m = [] {
    Models r;
    cd::Rng rng(0);
    r.multi = std::make_unique<cd::nn::MultiAgentUNet<float>>(mpe_config(), kAgents, rng);
    r.single = std::make_unique<cd::nn::TemporalUNet<float>>(mpe_config(), rng);
    if (!g_weights.empty()) {
      auto npz = cd::io::NpzFile::load(g_weights);
      cd::nn::load_state_dict(cd::nn::parameters_of<float>(*r.multi), npz, "multi.param.");
      cd::nn::load_state_dict(cd::nn::parameters_of<float>(*r.single), npz, "single.param.");
      // Parity gate: identical outputs before timing.
      for (const char* which : {"multi", "single"}) {
        const std::string p = which;
        auto x = npz.tensor<float>(p + ".input.x");
        auto t = npz.tensor<float>(p + ".input.time");
        auto ret = npz.tensor<float>(p + ".input.returns");
        auto expected = npz.tensor<double>(p + ".output.y");
        cd::nn::NoGradGuard ng;
        auto y = p == "multi" ? r.multi->forward(x, t, &ret) : r.single->forward(x, t, &ret);
        double worst = 0, scale = 0;
        for (cd::index_t i = 0; i < y.size(); ++i) {
          worst = std::max(worst, std::abs(static_cast<double>(y[i]) - expected[i]));
          scale = std::max(scale, std::abs(expected[i]));
        }
        std::fprintf(stderr, "parity %s: max |coordiff - torch| = %.3g (max |y| = %.3g)\n", which, worst, scale);
        if (!(worst <= 1e-3 * std::max(scale, 1.0))) {
          std::fprintf(stderr, "parity check FAILED for %s: refusing to time different computations\n", which);
          std::exit(1);
        }
      }
    }
    return r;
  }();
  return m;
}

// Times net.forward (no gradients) or forward + backward on a batch shaped like `sample` (batch axis first).
template <bool Backward, class Net>
void run_unet(benchmark::State& state, Net& net, cd::Shape sample, cd::index_t return_cols) {
  const cd::index_t B = state.range(0);
  sample.insert(sample.begin(), B);
  cd::Rng rng(1);
  auto x = rng.normal<float>(sample);
  auto dy = rng.normal<float>(sample);
  cd::Tensor<float> t({B}, 17.0f), ret({B, return_cols}, 0.9f);
  for (auto _ : state) {
    if constexpr (Backward) {
      auto y = net.forward(x, t, &ret);
      benchmark::DoNotOptimize(net.backward(dy));
    } else {
      cd::nn::NoGradGuard ng;
      benchmark::DoNotOptimize(net.forward(x, t, &ret));
    }
  }
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(B), benchmark::Counter::kIsIterationInvariantRate);
}

template <bool Backward>
void bm_multi_agent_unet(benchmark::State& state) {
  run_unet<Backward>(state, *models().multi, {kHorizon, kAgents, kFeatures}, kAgents);
}
template <bool Backward>
void bm_temporal_unet(benchmark::State& state) {
  run_unet<Backward>(state, *models().single, {kHorizon, kFeatures}, 1);
}

void batches(benchmark::internal::Benchmark* b) {
  b->Arg(1)->Arg(32)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
}

}  // namespace

BENCHMARK(bm_multi_agent_unet<false>)->Name("MultiAgentUNet/forward")->Apply(batches);
BENCHMARK(bm_multi_agent_unet<true>)->Name("MultiAgentUNet/forward_backward")->Apply(batches);
BENCHMARK(bm_temporal_unet<false>)->Name("TemporalUNet/forward")->Apply(batches);
BENCHMARK(bm_temporal_unet<true>)->Name("TemporalUNet/forward_backward")->Apply(batches);

int main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--weights=", 10) == 0) g_weights = argv[i] + 10;
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
  }
  if (threads > 0) cd::set_num_threads(threads);
  benchmark::Initialize(&argc, argv);
  models();  // load + parity check before any timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
