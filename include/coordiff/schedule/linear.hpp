#pragma once
// Linear beta schedule (DDPM, Ho et al. 2020, section 4): beta_k = beta_start + k (beta_end - beta_start)
// / (K - 1); the defaults are DDPM's and diffusers' "linear".
#include "coordiff/core/host_device.hpp"
#include "coordiff/schedule/table.hpp"

namespace coordiff::schedule {

COORDIFF_HOST_DEVICE double linear_beta(index_t k, index_t num_steps, double beta_start, double beta_end) {
  return num_steps == 1 ? beta_start
                        : beta_start + (beta_end - beta_start) * static_cast<double>(k) / static_cast<double>(num_steps - 1);
}

class Linear : public BetaTable {
 public:
  explicit Linear(index_t num_steps = 1000, double beta_start = 1e-4, double beta_end = 2e-2)
      : BetaTable(make(num_steps, beta_start, beta_end), "schedule::Linear") {}

 private:
  static std::vector<double> make(index_t n, double b0, double b1) {
    require<ConfigError>(n >= 1, "schedule::Linear: num_steps must be >= 1, got ", n);
    std::vector<double> b(static_cast<std::size_t>(n));
    for (index_t k = 0; k < n; ++k) b[static_cast<std::size_t>(k)] = linear_beta(k, n, b0, b1);
    return b;
  }
};

}  // namespace coordiff::schedule
