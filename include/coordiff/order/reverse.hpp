#pragma once
// The LOV order (MASTARS eq. 7) run backwards: lowest last-observation value first. This is the
// reverse-order ablation of MASTARS Table 17. It is the exact reversal of LastObsValue's rounds, so
// tied agents come higher index first.
#include <algorithm>

#include "coordiff/order/last_obs_value.hpp"

namespace coordiff::order {

struct Reverse {
  template <class T>
  diffusion::RoundPlan plan(const diffusion::Batch<T>& batch) const {
    diffusion::RoundPlan p = LastObsValue{}.plan(batch);
    std::reverse(p.begin(), p.end());
    return p;
  }
};

}  // namespace coordiff::order
