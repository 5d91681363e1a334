#pragma once
// A schedule stored as its beta table, with alpha_bar as the running product (diffusers'
// alphas_cumprod), computed in double. The shipped schedules derive from it.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::schedule {

class BetaTable {
 public:
  BetaTable() = default;
  /// Takes betas in (0, 1); `name` appears in error messages.
  explicit BetaTable(std::vector<double> betas, const std::string& name = "schedule") : betas_(std::move(betas)) {
    require<ConfigError>(!betas_.empty(), name, ": needs at least one diffusion step");
    alpha_bar_.resize(betas_.size());
    double prod = 1.0;
    for (std::size_t k = 0; k < betas_.size(); ++k) {
      const double b = betas_[k];
      require<ConfigError>(std::isfinite(b) && b > 0.0 && b < 1.0, name, ": beta[", k, "] = ", b,
                           " is outside the open interval (0, 1)");
      prod *= 1.0 - b;
      alpha_bar_[k] = prod;
    }
  }
  index_t num_steps() const { return static_cast<index_t>(betas_.size()); }
  double beta(index_t k) const { return betas_[checked(k)]; }
  double alpha(index_t k) const { return 1.0 - beta(k); }
  double alpha_bar(index_t k) const { return alpha_bar_[checked(k)]; }
  const std::vector<double>& betas() const { return betas_; }
  const std::vector<double>& alpha_bars() const { return alpha_bar_; }

 private:
  std::size_t checked(index_t k) const {
    require<ConfigError>(k >= 0 && k < num_steps(), "schedule: diffusion step ", k, " outside 0 .. ", num_steps() - 1);
    return static_cast<std::size_t>(k);
  }
  std::vector<double> betas_, alpha_bar_;
};

}  // namespace coordiff::schedule
