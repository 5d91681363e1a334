#pragma once
// Shared by the compile-fail tests: valid policies for every family, and a run() that composes a
// Generator from six policies and generates once, as a user would. Each bad_<family>.cpp passes five of
// these and one policy that misses a requirement of its family; compiled with
// -DCOORDIFF_COMPILE_FAIL_CONTROL it passes the repaired policy instead and must compile cleanly.
#include <cstdint>
#include <utility>

#include "coordiff/diffusion/generator.hpp"
#include "coordiff/filter/accept_all.hpp"
#include "coordiff/guidance/none.hpp"
#include "coordiff/mask/none.hpp"
#include "coordiff/order/joint.hpp"
#include "coordiff/schedule/linear.hpp"

namespace compile_fail {

using namespace coordiff;

/// A valid denoiser: predicts zero noise.
struct ZeroNoise {
  using value_type = double;
  Tensor<double> operator()(const Tensor<double>& x, const Tensor<double>&, const Condition<double>&) {
    return Tensor<double>(x.shape());
  }
};

template <class Schedule, class Denoiser, class Mask, class Order, class Filter, class Guide>
int run(Schedule schedule, Denoiser denoiser, Mask mask, Order order, Filter filter, Guide guide) {
  auto generator = make_generator(std::move(schedule), std::move(denoiser), std::move(mask), std::move(order),
                                  std::move(filter), std::move(guide), diffusion::TimestepPlan::full(10));
  diffusion::Batch<double> batch;
  batch.data = Tensor<double>({2, 4, 3, 2});
  return static_cast<int>(generator.generate(batch).stats.rounds);
}

}  // namespace compile_fail
