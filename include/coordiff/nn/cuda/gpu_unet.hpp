#pragma once
// A float MultiAgentUNet evaluated on the GPU behind a host-only interface (no CUDA headers), so code
// compiled without nvcc can use it as a Denoiser: e.g. mastars::augment with a Ref<GpuUNet>. Its member
// functions are defined in gpu_unet_impl.cuh, which exactly one CUDA source of the program includes
// (the coordiff tool does so when built with COORDIFF_CUDA=ON). Without that, the program does not link.
#include <memory>
#include <string>

#include "coordiff/core/condition.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/nn/parameter.hpp"
#include "coordiff/nn/unet_config.hpp"

namespace coordiff::nn::cuda {

template <class T>
class DeviceMultiAgentUNet;

class GpuUNet {
 public:
  using value_type = float;

  /// Number of usable CUDA devices (0 without a driver or GPU; never throws).
  static int device_count();

  /// Copies the network named by `prefix` in `params` (MultiAgentUNet::collect_parameters' names) to the
  /// GPU. `allow_tf32`: TF32 tensor-core GEMMs (faster, about 1e-3 relative error).
  GpuUNet(const UNetConfig& cfg, index_t n_agents, const ParameterList<float>& params, const std::string& prefix = "",
          index_t attention_heads = 4, bool allow_tf32 = false);
  ~GpuUNet();
  GpuUNet(GpuUNet&&) noexcept;
  GpuUNet& operator=(GpuUNet&&) noexcept;

  /// The Denoiser interface, with MultiAgentUNet's meaning of the condition.
  Tensor<float> operator()(const Tensor<float>& x, const Tensor<float>& k, const Condition<float>& c);

  DeviceMultiAgentUNet<float>& device_network();

 private:
  std::unique_ptr<DeviceMultiAgentUNet<float>> net_;
};

}  // namespace coordiff::nn::cuda
