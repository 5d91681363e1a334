#pragma once
// Learning-rate factors as small value types: lr(step) = base_lr * schedule.factor(step).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "coordiff/core/error.hpp"

namespace coordiff::nn::optim {

/// Linear warm-up from 1/warmup_steps to 1 over the first warmup_steps steps (step counts from 1), then 1.
struct LinearWarmup {
  std::int64_t warmup_steps = 0;
  double factor(std::int64_t step) const {
    if (warmup_steps <= 0 || step >= warmup_steps) return 1.0;
    return static_cast<double>(std::max<std::int64_t>(step, 1)) / static_cast<double>(warmup_steps);
  }
};

/// Linear warm-up, then cosine decay from 1 to min_factor at total_steps (and min_factor after).
struct CosineWithWarmup {
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;
  double min_factor = 0.0;
  double factor(std::int64_t step) const {
    require<ConfigError>(total_steps > warmup_steps, "CosineWithWarmup: total_steps must exceed warmup_steps");
    if (step < warmup_steps) return LinearWarmup{warmup_steps}.factor(step);
    const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) /
                                              static_cast<double>(total_steps - warmup_steps));
    return min_factor + (1 - min_factor) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
  }
};

/// Sets optimizer.lr() = base_lr * schedule.factor(step).
template <class Optimizer, class Schedule>
void apply_schedule(Optimizer& optimizer, const Schedule& schedule, double base_lr, std::int64_t step) {
  optimizer.set_lr(base_lr * schedule.factor(step));
}

}  // namespace coordiff::nn::optim
