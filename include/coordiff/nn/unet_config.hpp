#pragma once
// Hyper-parameters of the temporal U-Nets (defaults: MADiff's MPE denoiser).
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::nn {

struct UNetConfig {
  index_t horizon = 8;           // H, trajectory length (divisible by 2^(levels-1))
  index_t transition_dim = 1;    // F, features per step
  index_t dim = 128;             // base channel count and embedding width
  std::vector<index_t> dim_mults{1, 4, 8};
  index_t kernel_size = 5;
  index_t groups = 8;            // GroupNorm groups
  bool returns_condition = false;  // return/condition embedding for classifier-free guidance
  index_t condition_dim = 1;       // C, values per agent condition (1: MADiff's return; 2: paper 001's (CBF, return))

  index_t levels() const { return static_cast<index_t>(dim_mults.size()); }
  index_t embed_dim() const { return returns_condition ? 2 * dim : dim; }

  void validate(bool with_agent_attention = false) const {
    require<ConfigError>(transition_dim > 0 && dim > 0 && !dim_mults.empty() && kernel_size > 0 && kernel_size % 2 == 1,
                         "UNetConfig: transition_dim, dim, dim_mults and an odd kernel_size are required");
    require<ConfigError>(condition_dim >= 1, "UNetConfig: condition_dim must be >= 1, got ", condition_dim);
    require<ConfigError>(dim % 2 == 0 && dim >= 4, "UNetConfig: dim must be even and >= 4 (sinusoidal embedding), got ", dim);
    const index_t factor = index_t(1) << (levels() - 1);
    require<ConfigError>(horizon > 0 && horizon % factor == 0, "UNetConfig: horizon ", horizon, " must be divisible by ",
                         factor, " (", levels() - 1, " down-samplings)");
    for (index_t m : dim_mults) {
      const index_t c = dim * m;
      require<ConfigError>(m > 0 && c % groups == 0, "UNetConfig: ", c, " channels not divisible into ", groups, " groups");
      if (with_agent_attention)
        require<ConfigError>(c % 16 == 0, "UNetConfig: agent attention needs channels divisible by 16, got ", c);
    }
  }
};

}  // namespace coordiff::nn
