// Must not compile: plan() returns the bare agent order instead of a diffusion::RoundPlan. Passes iff
// the first error is "coordiff OrderingRule: missing `diffusion::RoundPlan plan(...) const`".
#include <cstddef>
#include <numeric>
#include <vector>

#include "compile_fail.hpp"

using namespace compile_fail;

struct AllAtOnce {
  template <class T>
#ifdef COORDIFF_COMPILE_FAIL_CONTROL
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    diffusion::Round round;
    std::vector<index_t> all(static_cast<std::size_t>(batch.agents()));
    std::iota(all.begin(), all.end(), index_t(0));
    round.agents.assign(static_cast<std::size_t>(batch.batch_size()), all);
    return {round};
  }
#else
  std::vector<index_t> plan(const diffusion::Batch<T>& batch) const {
    std::vector<index_t> all(static_cast<std::size_t>(batch.agents()));
    std::iota(all.begin(), all.end(), index_t(0));
    return all;
  }
#endif
};

int main() {
  return run(schedule::Linear(10), ZeroNoise{}, mask::None{}, AllAtOnce{}, filter::AcceptAll{}, guidance::None{});
}
