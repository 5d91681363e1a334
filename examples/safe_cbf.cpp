// Paper 001's safety pieces end to end on the multi-agent double integrator, without a diffusion model:
//   1. behaviour data with Definition 3 costs (LQR + noise + random agents),
//   2. a decentralised CBF h_i(o_i) learned from it with eq. 12's hinge losses, checked on held-out data,
//   3. filter::CbfSafe on held-out 8-step windows: how well "the CBF condition holds everywhere" tells the
//      windows without any cost from the others,
//   4. guidance::CbfGradient pushing windows that break the condition toward satisfying it (the gradient
//      step the sampler takes on its predicted clean sample, here applied to the windows themselves).
// Usage: safe_cbf [--agents N] [--episodes E] [--cbf-steps S] [--seed K]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/diffusion/batch.hpp"
#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/filter/cbf_safe.hpp"
#include "coordiff/guidance/cbf_gradient.hpp"
#include "coordiff/safety/cbf_data.hpp"
#include "coordiff/safety/cbf_training.hpp"

namespace cd = coordiff;
using cd::index_t;

namespace {

long long flag(int argc, char** argv, const char* name, long long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) {
      char* end = nullptr;
      const long long v = std::strtoll(argv[i + 1], &end, 10);
      if (!end || *end || v < 1) {
        std::fprintf(stderr, "safe_cbf: %s needs a positive integer, got '%s'\n", name, argv[i + 1]);
        std::exit(2);
      }
      return v;
    }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    cd::env::DoubleIntegratorConfig cfg;
    cfg.agents = flag(argc, argv, "--agents", 4);
    const index_t episodes = flag(argc, argv, "--episodes", 200), cbf_steps = flag(argc, argv, "--cbf-steps", 2000);
    const auto seed = static_cast<std::uint64_t>(flag(argc, argv, "--seed", 1));
    cd::env::DoubleIntegratorCollectOptions behaviour;  // LQR + noise, 20 % random agents
    const auto train = cd::env::collect_double_integrator(cfg, episodes, seed, behaviour);
    const auto test = cd::env::collect_double_integrator(cfg, std::max<index_t>(episodes / 4, 1), seed + 1000, behaviour);
    const auto st = cd::env::safety_stats(train);
    std::printf("data: %lld episodes of %lld steps, %lld agents; return %.2f, cost %.2f, safe episodes %.1f %%\n",
                static_cast<long long>(episodes), static_cast<long long>(cfg.episode_length),
                static_cast<long long>(cfg.agents), st.mean_return, st.mean_cost, 100 * st.safe_rate);

    // 2. The CBF.
    cd::Rng rng(seed);
    cd::safety::MlpBarrier<float> h(cfg.obs_dim(), 64, rng);
    cd::safety::CbfTrainOptions o;
    o.steps = cbf_steps;
    o.loss.dt = cfg.dt;
    o.seed = seed;
    const auto losses = cd::safety::train_cbf(h, cd::safety::cbf_data(train), o);
    const auto rep = cd::safety::evaluate_cbf(h, cd::safety::cbf_data(test), o.loss);
    std::printf("CBF: eq. 12 loss %.4f -> %.4f; held-out: safe rows with h >= 0 %.1f %% (%lld), dangerous rows with "
                "h < 0 %.1f %% (%lld), safe transitions with dh/dt + h >= 0 %.1f %%\n",
                losses.front(), losses.back(), 100 * rep.safe_satisfied, static_cast<long long>(rep.safe_rows),
                100 * rep.unsafe_satisfied, static_cast<long long>(rep.unsafe_rows), 100 * rep.derivative_satisfied);

    // 3. The filter on held-out 8-step windows (every 8th start).
    const index_t H = 8, A = cfg.agents, O = cfg.obs_dim();
    std::vector<std::pair<index_t, index_t>> starts;
    for (index_t e = 0; e < test.episodes(); ++e)
      for (index_t t = 0; t + H <= test.steps(); t += H) starts.emplace_back(e, t);
    const auto W = static_cast<index_t>(starts.size());
    cd::Tensor<float> x({W, H, A, O});
    std::vector<bool> truly_safe(static_cast<std::size_t>(W), true);
    for (index_t w = 0; w < W; ++w) {
      const auto [e, t0] = starts[static_cast<std::size_t>(w)];
      for (index_t t = 0; t < H; ++t)
        for (index_t i = 0; i < A; ++i) {
          for (index_t k = 0; k < O; ++k) x(w, t, i, k) = test.observations(e, t0 + t, i, k);
          if (t > 0 && test.costs(e, t0 + t - 1, i) != 0) truly_safe[static_cast<std::size_t>(w)] = false;
        }
    }
    const auto verdict = cd::filter::cbf_safe(h, o.loss).check(x, cd::diffusion::Batch<float>{});
    index_t kept = 0, kept_safe = 0, safe = 0, safe_kept = 0;
    for (index_t w = 0; w < W; ++w) {
      const bool k = verdict.keep[static_cast<std::size_t>(w)] != 0, s = truly_safe[static_cast<std::size_t>(w)];
      kept += k, kept_safe += k && s, safe += s, safe_kept += s && k;
    }
    std::printf("filter: %lld windows, %lld without cost; CbfSafe keeps %lld, of which %.1f %% are without cost (%.1f %% "
                "of those without cost are kept)\n",
                static_cast<long long>(W), static_cast<long long>(safe), static_cast<long long>(kept),
                kept ? 100.0 * double(kept_safe) / double(kept) : 0.0, safe ? 100.0 * double(safe_kept) / double(safe) : 0.0);

    // 4. Guidance on the rejected windows: 50 steps of x <- x - s grad(hinge cost).
    std::vector<index_t> rejected;
    for (index_t w = 0; w < W; ++w)
      if (!verdict.keep[static_cast<std::size_t>(w)]) rejected.push_back(w);
    if (!rejected.empty()) {
      cd::Tensor<float> r = cd::take_rows(x, rejected);
      const auto cost = [&](const cd::Tensor<float>& y) {
        const auto cv = cd::safety::hinge_cost<float>(h, y, o.loss);
        double s = 0;
        for (index_t b = 0; b < cv.value.size(); ++b) s += cv.value[b] / double(cv.value.size());
        return s;
      };
      const double before = cost(r);
      const auto guide = cd::guidance::cbf_gradient(h, 1e-2, o.loss);
      const cd::guidance::StepInfo info{10, 0.5, cd::denoiser::Prediction::Sample};
      for (int it = 0; it < 50; ++it) {
        auto clean = cd::denoiser::from_function<float>(
            [&](const cd::Tensor<float>&, const cd::Tensor<float>&, const cd::Condition<float>&) { return r; });
        r = guide.model_output(clean, r, cd::Tensor<float>({r.dim(0)}, 10.0f), cd::Condition<float>{}, info);
      }
      const auto after = cd::filter::cbf_safe(h, o.loss).check(r, cd::diffusion::Batch<float>{});
      index_t now_kept = 0;
      for (auto k : after.keep) now_kept += k;
      std::printf("guidance: %zu rejected windows, mean hinge cost %.3f -> %.3f after 50 gradient steps; %lld now satisfy "
                  "the CBF condition everywhere\n",
                  rejected.size(), before, cost(r), static_cast<long long>(now_kept));
    }
    return 0;
  } catch (const cd::Error& e) {
    std::fprintf(stderr, "safe_cbf: %s\n", e.what());
    return 2;
  }
}
