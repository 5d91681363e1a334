#pragma once
// Definitions of GpuUNet (gpu_unet.hpp); include in exactly one CUDA source of a program.
#include "coordiff/backend/cuda/runtime.cuh"
#include "coordiff/nn/cuda/gpu_unet.hpp"
#include "coordiff/nn/cuda/multi_agent_unet.cuh"

namespace coordiff::nn::cuda {

int GpuUNet::device_count() { return backend::cuda::device_count(); }

GpuUNet::GpuUNet(const UNetConfig& cfg, index_t n_agents, const ParameterList<float>& params, const std::string& prefix,
                 index_t attention_heads, bool allow_tf32) {
  require<ConfigError>(device_count() > 0, "GpuUNet: no CUDA device is available");
  net_ = std::make_unique<DeviceMultiAgentUNet<float>>(cfg, n_agents, params, prefix, attention_heads, allow_tf32);
}
GpuUNet::~GpuUNet() = default;
GpuUNet::GpuUNet(GpuUNet&&) noexcept = default;
GpuUNet& GpuUNet::operator=(GpuUNet&&) noexcept = default;

Tensor<float> GpuUNet::operator()(const Tensor<float>& x, const Tensor<float>& k, const Condition<float>& c) {
  return (*net_)(x, k, c);
}

DeviceMultiAgentUNet<float>& GpuUNet::device_network() { return *net_; }

}  // namespace coordiff::nn::cuda
