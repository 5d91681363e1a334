#pragma once
// A float MultiAgentUNet evaluated and trained on the GPU behind a host-only interface (no CUDA headers),
// so code compiled without nvcc can use it: as a Denoiser (mastars::augment with a Ref<GpuUNet>) and as
// the network of diffusion::Trainer (forward, backward and collect_parameters as MultiAgentUNet's: the
// parameters it exposes are host copies, the optimiser updates them on the host, and the next forward
// pass in training mode sends them to the GPU). Its member functions are defined in gpu_unet_impl.cuh,
// which exactly one CUDA source of the program includes (the coordiff tool does so when built with
// COORDIFF_CUDA=ON). Without that, the program does not link.
#include <memory>
#include <string>
#include <vector>

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

  /// MultiAgentUNet::forward: x [B, H, A, F], time [B], returns [B, A], keep [B, A]. With gradients enabled
  /// (nn::grad_enabled()) it first sends the host parameters to the GPU and keeps what backward needs.
  Tensor<float> forward(const Tensor<float>& x, const Tensor<float>& time, const Tensor<float>* returns = nullptr,
                        const Tensor<float>* cond_keep = nullptr);
  /// dy [B, H, A, F] for the last forward: adds every parameter's gradient to the host parameters' grad.
  void backward(const Tensor<float>& dy);
  /// The host copies of the parameters, under MultiAgentUNet's names (after `prefix`).
  void collect_parameters(ParameterList<float>& out, const std::string& prefix);

  DeviceMultiAgentUNet<float>& device_network();

 private:
  std::unique_ptr<DeviceMultiAgentUNet<float>> net_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Parameter<float>>> host_;  // stable addresses for ParameterList
  std::string prefix_;
  bool host_changed_ = false;
  ParameterList<float> host_list() const;
};

}  // namespace coordiff::nn::cuda
