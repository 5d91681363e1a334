#pragma once
// CBF gradient guidance (paper 001 with gradient guidance): at every reverse step the predicted clean
// trajectory x0^ takes a step of size `scale` down the gradient of the CBF hinge cost (safety/
// trajectory_condition.hpp), i.e. toward h >= 0 and dh/dt + alpha h >= 0 for every agent and step.
// It is guidance::CostGradient with that cost; chain it with classifier-free guidance through the
// denoiser if both are wanted.
#include <utility>

#include "coordiff/guidance/cost_gradient.hpp"
#include "coordiff/safety/trajectory_condition.hpp"

namespace coordiff::guidance {

template <class Barrier>
using CbfGradient = CostGradient<safety::CbfHingeCost<Barrier>>;

template <class Barrier>
CbfGradient<Barrier> cbf_gradient(Barrier barrier, double scale, safety::CbfLossOptions options = {},
                                  CostAt at = CostAt::PredictedClean) {
  return CbfGradient<Barrier>{safety::CbfHingeCost<Barrier>{std::move(barrier), options}, scale, at};
}

}  // namespace coordiff::guidance
