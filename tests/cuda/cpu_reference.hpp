#pragma once
// CPU reference results for the CUDA parity tests. They are computed in a separate C++ translation unit
// (cpu_reference.cpp) so that the CUDA sources never include Eigen (DESIGN.md principle 3); only
// tensors and parameter copies cross over.
#include <string>
#include <utility>
#include <vector>

#include "coordiff/core/condition.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/nn/unet_config.hpp"
#include "coordiff/schedule/cosine.hpp"

namespace coordiff::cuda_test {

using NamedTensors = std::vector<std::pair<std::string, Tensor<float>>>;

/// A layer's parameters, its input(s) and its CPU output, all in the CPU layout ([N, C, L] signals).
struct LayerCase {
  NamedTensors params;
  Tensor<float> x, extra, extra2, ref;
};

LayerCase conv1d_case();            // Conv1d(5 -> 12, k 3, stride 2, padding 1) named "c", x [4, 5, 9]
LayerCase conv_transpose1d_case();  // ConvTranspose1d(6 -> 4, k 4, stride 2, padding 1) named "u", x [3, 6, 5]
/// GroupNorm(4 groups, 12 channels) + Mish + per-sample vector (extra [N, C]) + residual (extra2 [N, C, L]);
/// params "weight", "bias".
LayerCase group_norm_case();
/// AgentSelfAttention(32 channels, 4 heads, embedding 16) named "a" with gamma 0.6: x [3, 5, 32, 4],
/// extra = mish(embedding) [3, 5, 16], ref [3, 5, 32, 4].
LayerCase attention_case();

/// The MultiAgentUNet used by the network parity tests (returns condition on, 3 agents).
nn::UNetConfig unet_parity_config();
NamedTensors unet_parameters(std::uint64_t seed);
/// CPU MultiAgentUNet (parameters of unet_parameters(seed)) forward on x [B, H, A, F].
Tensor<float> unet_forward(std::uint64_t seed, const Tensor<float>& x, const Tensor<float>& time,
                           const Tensor<float>& returns, const Tensor<float>& keep);
/// Parameter gradients of the CPU network (parameters of unet_parameters(seed)) for one forward pass
/// on (x, time, returns, keep) followed by backward(dy).
NamedTensors unet_gradients(std::uint64_t seed, const Tensor<float>& x, const Tensor<float>& time,
                            const Tensor<float>& returns, const Tensor<float>& keep, const Tensor<float>& dy);

/// nn::optim::Adam (lr 0.01, weight decay 0.1) on `start` for the given gradients, one step each.
Tensor<float> adam_steps(const Tensor<float>& start, const std::vector<Tensor<float>>& grads);

/// diffusion::Trainer run for `steps` steps on a small random dataset twice, once with the CPU network and
/// once with nn::cuda::GpuUNet loaded from the same parameters: the largest relative difference
/// max|a - b| / max|b| over the final parameters and the two loss histories' largest relative difference.
std::pair<double, double> trainer_parity(std::uint64_t seed, index_t steps);

/// 20 DDIM or DDPM steps (cosine schedule, 100 training steps, x0 clipped).
diffusion::Sampler<schedule::Cosine> parity_sampler(diffusion::Solver solver);
/// parity_sampler(solver) with the CPU network; guidance_weight 0: unguided, else classifier-free;
/// known (may be null): entries inpainted from known_values.
Tensor<float> unet_sample(std::uint64_t seed, diffusion::Solver solver, const Tensor<float>& known_values,
                          const Tensor<std::uint8_t>* known, const Condition<float>& cond, double guidance_weight,
                          std::uint64_t noise_seed);

}  // namespace coordiff::cuda_test
