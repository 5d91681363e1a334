#pragma once
// The smallest MultiAgentUNet configuration the diffusion tests train: two levels of 16 and 32 channels.
#include "coordiff/nn/unet_config.hpp"

namespace coordiff::testing {

inline nn::UNetConfig tiny_unet_config(index_t horizon, index_t features, bool returns) {
  nn::UNetConfig c;
  c.horizon = horizon;
  c.transition_dim = features;
  c.dim = 16;  // agent attention needs channel counts divisible by 16
  c.dim_mults = {1, 2};
  c.groups = 4;
  c.kernel_size = 3;
  c.returns_condition = returns;
  return c;
}

}  // namespace coordiff::testing
