#pragma once
// A random generation order per sample (the random-order ablation of MASTARS). Sample b's permutation
// comes from the Philox stream (seed, first_sample + b), so it is reproducible and does not depend on
// how the samples were split into batches. One agent per round, others visible.
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/order/independent.hpp"

namespace coordiff::order {

struct Random {
  std::uint64_t seed = 0;

  /// The draws start at this counter index: a noise stream (diffusion::SampleNoise) can carry the same
  /// (seed, stream) key when the sampler and the order share a seed, but it uses small counters, so
  /// starting far away keeps the order independent of the noise.
  static constexpr std::uint64_t kFirstDraw = std::uint64_t(1) << 62;

  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    const index_t B = batch.batch_size(), A = batch.agents();
    std::vector<std::vector<index_t>> order(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) {
      const Philox gen(seed, batch.first_sample + static_cast<std::uint64_t>(b));
      auto& kappa = order[static_cast<std::size_t>(b)];
      kappa.resize(static_cast<std::size_t>(A));
      std::iota(kappa.begin(), kappa.end(), index_t(0));
      // Fisher-Yates: position i swaps with a uniform j in [0, i].
      std::uint64_t draw = kFirstDraw;
      for (index_t i = A - 1; i > 0; --i) {
        const double u = gen.uniform(draw++);  // in (0, 1)
        index_t j = static_cast<index_t>(u * static_cast<double>(i + 1));
        if (j > i) j = i;  // guard against rounding at u close to 1
        std::swap(kappa[static_cast<std::size_t>(i)], kappa[static_cast<std::size_t>(j)]);
      }
    }
    return detail::one_agent_per_round(order, A, /*others_visible=*/true);
  }
};

}  // namespace coordiff::order
