#pragma once
// The NoiseSchedule family: the forward process q(x_k | x_0) = N(sqrt(abar_k) x_0, (1 - abar_k) I) over
// discrete diffusion steps k = 0 .. num_steps()-1 (DDPM, Ho et al. 2020, eq. 4). Requirements and a
// minimal user schedule: docs/concepts.md.
#include <concepts>

#include "coordiff/core/tensor.hpp"

namespace coordiff::schedule {

/// A noise schedule: num_steps() steps, beta(k) and alpha_bar(k) = prod_{i<=k} (1 - beta(i)) for
/// 0 <= k < num_steps(); alpha_bar must decrease strictly and lie in (0, 1).
template <class S>
concept NoiseSchedule = requires(const S& s, index_t k) {
  { s.num_steps() } -> std::convertible_to<index_t>;
  { s.beta(k) } -> std::convertible_to<double>;
  { s.alpha_bar(k) } -> std::convertible_to<double>;
};

/// Names the first missing requirement; call from entry points that take a user schedule.
template <class S>
constexpr bool check_noise_schedule() {
  static_assert(requires(const S& s) {
    { s.num_steps() } -> std::convertible_to<index_t>;
  }, "coordiff NoiseSchedule: missing `index_t num_steps() const` (see docs/concepts.md#noiseschedule)");
  static_assert(requires(const S& s, index_t k) {
    { s.beta(k) } -> std::convertible_to<double>;
  }, "coordiff NoiseSchedule: missing `double beta(index_t k) const` (see docs/concepts.md#noiseschedule)");
  static_assert(requires(const S& s, index_t k) {
    { s.alpha_bar(k) } -> std::convertible_to<double>;
  }, "coordiff NoiseSchedule: missing `double alpha_bar(index_t k) const` (see docs/concepts.md#noiseschedule)");
  return true;
}

/// alpha_bar at a plan level: level -1 is the clean data (alpha_bar = 1).
template <NoiseSchedule S>
double alpha_bar_at(const S& s, index_t level) {
  return level < 0 ? 1.0 : static_cast<double>(s.alpha_bar(level));
}

}  // namespace coordiff::schedule
