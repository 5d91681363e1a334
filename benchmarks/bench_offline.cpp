// Offline-learner update rounds (Google Benchmark) at the size of the MPE Spread experiments: 3 agents,
// 18 observations, 2 actions, 6,000 transitions, batch 1024, 64-64 networks, the published Spread
// medium-replay settings (offline::published_settings):
//   Offline/td3bc  one MA-TD3+BC round (twin decentralised critics; actor and targets every 2nd round)
//   Offline/omar   one OMAR round (critics with 10 penalty samples per row, zeroth-order search 3 x 10)
//   Offline/cfcql  one CFCQL round (5 centralised-critic updates with 3 x 10 counterfactual rows per row)
// items_per_second = rounds per second; "GFLOP/s" counts the multiply-adds of the critic and actor
// products (x2), backward as twice forward. benchmarks/peer/bench_offline_torch.py runs the same rounds in
// PyTorch; benchmarks/run_offline_bench.sh runs both.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdlib>
#include <string>

#include "coordiff/core/threading.hpp"
#include "coordiff/offline/learners.hpp"

namespace cd = coordiff;

namespace {

constexpr cd::index_t kAgents = 3, kObs = 18, kAct = 2, kTransitions = 6000;

cd::rl::ReplayBuffer<float> spread_sized_data() {
  cd::Rng rng(7, 0);
  cd::rl::ReplayBuffer<float> buf(kTransitions, kAgents, kObs, kAct);
  buf.add({rng.normal<float>({kTransitions, kAgents, kObs}), rng.uniform<float>({kTransitions, kAgents, kAct}, -1.f, 1.f),
           rng.normal<float>({kTransitions, kAgents}), rng.normal<float>({kTransitions, kAgents, kObs}),
           cd::Tensor<float>({kTransitions}, 0.f)});
  return buf;
}

/// Multiply-adds of one round, forward counted once and backward twice.
double round_flops(cd::offline::Algorithm algo) {
  const double B = 1024, h = 64, dec = (kObs + kAct) * h + h * h + h, cen = kAgents * (kObs + kAct) * h + h * h + h;
  const double actor = kObs * h + h * h + h * kAct;
  switch (algo) {
    case cd::offline::Algorithm::Td3Bc:  // per agent: targets (actor + 2 heads), 2 heads x 3, actor step every 2nd
      return 2 * kAgents * B * (actor + 2 * dec + 2 * 3 * dec + 0.5 * 3 * (actor + dec));
    case cd::offline::Algorithm::Omar:  // + 10 penalty rows per row per head (first layer once), search 30 rows
      return 2 * kAgents * B * (actor + 2 * dec + 2 * 3 * (dec + 10 * (h * h + h + 2 * h)) + 3 * (actor + dec) + 30 * (h * h + h));
    default:  // 5 updates of 1 centralised critic with 30 counterfactual rows per row, then 3 actor steps
      return 2 * B * (5 * (kAgents * actor + 2 * cen + 2 * 3 * (cen + 30 * (h * h + h + 2 * h))) + kAgents * 3 * (actor + cen));
  }
}

void run_rounds(benchmark::State& state, cd::offline::Algorithm algo) {
  cd::set_num_threads(1);
  const auto data = spread_sized_data();
  const auto s = cd::offline::published_settings(algo, "spread", "medium-replay");
  cd::offline::with_learner<float>(s, kAgents, kObs, kAct, [&](auto& learner) {
    for (int warm = 0; warm < 2; ++warm) learner.update(data);
    for (auto _ : state) benchmark::DoNotOptimize(learner.update(data));
    return 0;
  });
  state.SetItemsProcessed(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(round_flops(algo) * static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(run_rounds, td3bc, cd::offline::Algorithm::Td3Bc)->Name("Offline/td3bc")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_rounds, omar, cd::offline::Algorithm::Omar)->Name("Offline/omar")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run_rounds, cfcql, cd::offline::Algorithm::Cfcql)->Name("Offline/cfcql")->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 256 << 20);  // as the coordiff tool: reuse freed temporaries (apps/coordiff.cpp)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
