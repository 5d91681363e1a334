#pragma once
// Cosine schedule (Nichol & Dhariwal 2021, eq. 17): abar(s) = cos^2((s + offset)/(1 + offset) * pi/2),
// beta_k = min(1 - abar((k+1)/K) / abar(k/K), max_beta). With offset 0.008 and max_beta 0.999 this is
// diffusers' "squaredcos_cap_v2", the schedule of MADiff and MASTARS.
#include <cmath>

#include "coordiff/core/host_device.hpp"
#include "coordiff/schedule/table.hpp"

namespace coordiff::schedule {

COORDIFF_HOST_DEVICE double cosine_alpha_bar_fn(double s, double offset) {
  const double c = cos((s + offset) / (1.0 + offset) * 1.5707963267948966);
  return c * c;
}

COORDIFF_HOST_DEVICE double cosine_beta(index_t k, index_t num_steps, double offset, double max_beta) {
  const double n = static_cast<double>(num_steps);
  const double b = 1.0 - cosine_alpha_bar_fn(static_cast<double>(k + 1) / n, offset) /
                             cosine_alpha_bar_fn(static_cast<double>(k) / n, offset);
  return b < max_beta ? b : max_beta;
}

class Cosine : public BetaTable {
 public:
  explicit Cosine(index_t num_steps = 200, double offset = 0.008, double max_beta = 0.999)
      : BetaTable(make(num_steps, offset, max_beta), "schedule::Cosine") {}

 private:
  static std::vector<double> make(index_t n, double offset, double max_beta) {
    require<ConfigError>(n >= 1, "schedule::Cosine: num_steps must be >= 1, got ", n);
    require<ConfigError>(offset >= 0 && max_beta > 0 && max_beta < 1, "schedule::Cosine: need offset >= 0 and max_beta in"
                         " (0, 1), got offset=", offset, " max_beta=", max_beta);
    std::vector<double> b(static_cast<std::size_t>(n));
    for (index_t k = 0; k < n; ++k) b[static_cast<std::size_t>(k)] = cosine_beta(k, n, offset, max_beta);
    return b;
  }
};

}  // namespace coordiff::schedule
