// Composes three Generators from the policy families (docs/concepts.md) and runs each on one small batch:
//   (a) the joint baseline: all agents in one round, conditioned on their first step (MADiff);
//   (b) agent-wise sequential inpainting: one RePaint pass per agent in last-observation-value order, each
//       agent regenerated after its subgoal (MASTARS eqs. 4 and 7), filtered by a score threshold (eq. 6);
//   (c) a user-defined ordering rule: per sample, the agent that starts closest to the origin goes first.
// The denoiser is a small nn::MultiAgentUNet<float> with RANDOM weights (nothing is trained here), so the
// samples mean nothing; the point is how the policies compose and what the statistics report.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/core/threading.hpp"
#include "coordiff/diffusion/diffusion.hpp"

namespace cd = coordiff;
using cd::index_t;

namespace {

constexpr index_t kHorizon = 8, kAgents = 3, kFeatures = 2;

// ---- (c)'s ordering rule: any type with `RoundPlan plan(const Batch<T>&) const` is an OrderingRule. ----
struct ClosestToOriginFirst {
  template <class T>
  cd::diffusion::RoundPlan plan(const cd::diffusion::Batch<T>& batch) const {
    const index_t B = batch.batch_size(), A = batch.agents();
    cd::diffusion::RoundPlan rounds(static_cast<std::size_t>(A));  // one agent per round, others visible
    for (index_t b = 0; b < B; ++b) {
      auto dist = [&](index_t a) { return std::hypot(batch.data(b, 0, a, 0), batch.data(b, 0, a, 1)); };
      std::vector<index_t> kappa(static_cast<std::size_t>(A));
      std::iota(kappa.begin(), kappa.end(), index_t(0));
      std::stable_sort(kappa.begin(), kappa.end(), [&](index_t x, index_t y) { return dist(x) < dist(y); });
      for (std::size_t l = 0; l < rounds.size(); ++l) rounds[l].agents.push_back({kappa[l]});
    }
    return rounds;
  }
};

// MASTARS eq. 6 keeps a sample iff its mean transition-model error is below epsilon; without a trained
// transition model, this stand-in scores the mean step length ||x_{t+1} - x_t|| instead (the windows
// below move at most 0.14 per step; an untrained network's samples jump much further).
std::vector<double> mean_step_length(const cd::Tensor<float>& x, const cd::diffusion::Batch<float>&) {
  std::vector<double> score(static_cast<std::size_t>(x.dim(0)), 0.0);
  for (index_t b = 0; b < x.dim(0); ++b) {
    for (index_t t = 0; t + 1 < x.dim(1); ++t)
      for (index_t a = 0; a < x.dim(2); ++a)
        score[static_cast<std::size_t>(b)] +=
            std::hypot(x(b, t + 1, a, 0) - x(b, t, a, 0), x(b, t + 1, a, 1) - x(b, t, a, 1));
    score[static_cast<std::size_t>(b)] /= static_cast<double>((x.dim(1) - 1) * x.dim(2));
  }
  return score;
}

// A batch of B windows: agent a moves on a straight line towards its goal; the value of a step is minus
// the distance to the goal, so the subgoal g^a (the value peak) is the closest approach.
cd::diffusion::Batch<float> make_batch(index_t B, std::uint64_t seed) {
  cd::Rng rng(seed, /*stream=*/7);
  cd::diffusion::Batch<float> batch;
  batch.data = cd::Tensor<float>({B, kHorizon, kAgents, kFeatures});
  batch.values = cd::Tensor<float>({B, kHorizon, kAgents});
  for (index_t b = 0; b < B; ++b)
    for (index_t a = 0; a < kAgents; ++a) {
      const double x0 = rng.uniform() * 1.6 - 0.8, y0 = rng.uniform() * 1.6 - 0.8;
      const double vx = rng.uniform() * 0.2 - 0.1, vy = rng.uniform() * 0.2 - 0.1;
      const double gx = rng.uniform() * 1.6 - 0.8, gy = rng.uniform() * 1.6 - 0.8;
      for (index_t t = 0; t < kHorizon; ++t) {
        const double x = x0 + vx * static_cast<double>(t), y = y0 + vy * static_cast<double>(t);
        batch.data(b, t, a, 0) = static_cast<float>(x);
        batch.data(b, t, a, 1) = static_cast<float>(y);
        batch.values(b, t, a) = static_cast<float>(-std::hypot(x - gx, y - gy));
      }
    }
  return batch;
}

/// The rounds of sample 0, e.g. "{0,1,2}" (one round) or "{2} {0} {1}" (one agent per round).
std::string rounds_of_sample0(const cd::diffusion::RoundPlan& plan) {
  std::string s;
  for (const auto& round : plan) {
    s += s.empty() ? "{" : " {";
    for (index_t a : round.agents.front()) s += (s.back() == '{' ? "" : ",") + std::to_string(a);
    s += '}';
  }
  return s;
}

template <class Gen>
void report(const char* name, Gen& generator, const cd::diffusion::Batch<float>& batch) {
  const auto out = generator.generate(batch);
  const auto& s = out.stats;
  std::printf("%-38s %6lld %10.3f %9.3f %9lld %8.3f   %s\n", name, static_cast<long long>(s.rounds),
              s.generated_fraction, s.accepted_fraction, static_cast<long long>(s.denoiser_calls), s.total_seconds,
              rounds_of_sample0(generator.policies().order.plan(batch)).c_str());
}

/// The value of `--name N` (N >= 1), or `fallback` if the flag is absent. Flags: --steps, --batch, --seed, --threads.
long flag(int argc, char** argv, const std::string& name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) {
      char* end = nullptr;
      const long v = std::strtol(argv[i + 1], &end, 10);
      if (!argv[i + 1][0] || *end || v < 1) throw cd::ConfigError("flag " + name + ": expected a positive integer");
      return v;
    }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) try {
  const index_t K = flag(argc, argv, "--steps", 50), B = flag(argc, argv, "--batch", 8);
  const auto seed = static_cast<std::uint64_t>(flag(argc, argv, "--seed", 3));
  if (const long threads = flag(argc, argv, "--threads", 0)) cd::set_num_threads(static_cast<int>(threads));

  // One small network shared by the three generators through denoiser::Ref.
  cd::nn::UNetConfig cfg;
  cfg.horizon = kHorizon;
  cfg.transition_dim = kFeatures;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.groups = 4;
  cfg.kernel_size = 3;
  cd::Rng init(seed);
  cd::nn::MultiAgentUNet<float> net(cfg, kAgents, init);
  const cd::denoiser::Ref<cd::nn::MultiAgentUNet<float>> shared(net);
  const cd::schedule::Cosine schedule(K);
  const auto batch = make_batch(B, seed);

  // (a) Joint baseline.
  auto joint = cd::make_generator(schedule, shared, cd::mask::HistoryPrefix{1}, cd::order::Joint{},
                                  cd::filter::AcceptAll{}, cd::guidance::None{}, cd::diffusion::TimestepPlan::full(K));

  // (b) Agent-wise sequential inpainting (MASTARS): AfterSubgoal + LastObsValue, RePaint resampling,
  // known entries pasted at level k (eq. 5c), and a threshold filter.
  cd::diffusion::SamplerOptions mastars_options;
  mastars_options.paste = cd::diffusion::PasteRule::Mastars;
  auto mastars = cd::make_generator(schedule, shared, cd::mask::AfterSubgoal{}, cd::order::LastObsValue{},
                                    cd::filter::Threshold{&mean_step_length, 1.0}, cd::guidance::None{},
                                    cd::diffusion::TimestepPlan::full(K).with_resampling(5, 2), mastars_options);

  // (c) The user-defined ordering rule, each agent regenerated entirely in its round.
  auto closest = cd::make_generator(schedule, shared, cd::mask::None{}, ClosestToOriginFirst{}, cd::filter::AcceptAll{},
                                    cd::guidance::None{}, cd::diffusion::TimestepPlan::full(K));

  std::printf("MultiAgentUNet<float> with random weights (untrained: samples are not meaningful); %lld samples of "
              "%lld agents x %lld steps x %lld features, %lld diffusion steps\n\n",
              static_cast<long long>(B), static_cast<long long>(kAgents), static_cast<long long>(kHorizon),
              static_cast<long long>(kFeatures), static_cast<long long>(K));
  std::printf("%-38s %6s %10s %9s %9s %8s   %s\n", "composition", "rounds", "generated", "accepted", "den.calls",
              "seconds", "rounds of sample 0");
  report("(a) joint: HistoryPrefix + Joint", joint, batch);
  report("(b) MASTARS: AfterSubgoal + LOV", mastars, batch);
  report("(c) user: None + ClosestToOriginFirst", closest, batch);
  std::printf("\ngenerated: share of entries regenerated; accepted: share of samples the filter kept; den.calls:\n"
              "batched denoiser calls (RePaint resampling adds reverse steps to (b)).\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "compose_generator: %s\n", e.what());
  return 1;
}
