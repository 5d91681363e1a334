#pragma once
// The Denoiser family: concept, adapters and the analytic Gaussian-mixture denoiser. The trained
// networks (nn::MultiAgentUNet) satisfy the concept directly.
#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/denoiser/gaussian_mixture.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
