#pragma once
// Definitions of GpuUNet (gpu_unet.hpp); include in exactly one CUDA source of a program.
#include "coordiff/backend/cuda/runtime.cuh"
#include "coordiff/nn/cuda/gpu_unet.hpp"
#include "coordiff/nn/cuda/multi_agent_unet.cuh"

namespace coordiff::nn::cuda {

int GpuUNet::device_count() { return backend::cuda::device_count(); }

GpuUNet::GpuUNet(const UNetConfig& cfg, index_t n_agents, const ParameterList<float>& params, const std::string& prefix,
                 index_t attention_heads, bool allow_tf32)
    : prefix_(prefix) {
  require<ConfigError>(device_count() > 0, "GpuUNet: no CUDA device is available");
  net_ = std::make_unique<DeviceMultiAgentUNet<float>>(cfg, n_agents, params, prefix, attention_heads, allow_tf32);
  const ParameterSource<float> src(params, "");
  for (const auto& slot : net_->parameter_slots()) {
    auto p = std::make_unique<Parameter<float>>(slot.shape);
    p->value = src.get(slot.name, slot.shape);
    names_.push_back(prefix.empty() ? slot.name : slot.name.substr(prefix.size() + 1));
    host_.push_back(std::move(p));
  }
}

ParameterList<float> GpuUNet::host_list() const {
  ParameterList<float> list;
  for (std::size_t i = 0; i < host_.size(); ++i) list.push_back({join_name(prefix_, names_[i]), host_[i].get()});
  return list;
}

void GpuUNet::collect_parameters(ParameterList<float>& out, const std::string& prefix) {
  for (std::size_t i = 0; i < host_.size(); ++i) out.push_back({join_name(prefix, names_[i]), host_[i].get()});
}

Tensor<float> GpuUNet::forward(const Tensor<float>& x, const Tensor<float>& time, const Tensor<float>* returns,
                               const Tensor<float>* cond_keep) {
  const bool training = grad_enabled();
  if (training || host_changed_) {  // the optimiser may have changed the host copies since
    net_->upload_parameters(host_list());
    host_changed_ = false;
  }
  net_->set_training(training);
  return net_->forward(x, time, returns, cond_keep);
}

void GpuUNet::backward(const Tensor<float>& dy) {
  net_->zero_grad();
  net_->backward(dy);
  net_->add_gradients_to(host_list());
  host_changed_ = true;  // an optimiser step follows
}
GpuUNet::~GpuUNet() = default;
GpuUNet::GpuUNet(GpuUNet&&) noexcept = default;
GpuUNet& GpuUNet::operator=(GpuUNet&&) noexcept = default;

Tensor<float> GpuUNet::operator()(const Tensor<float>& x, const Tensor<float>& k, const Condition<float>& c) {
  if (host_changed_) {
    net_->upload_parameters(host_list());
    host_changed_ = false;
  }
  net_->set_training(false);
  return (*net_)(x, k, c);
}

DeviceMultiAgentUNet<float>& GpuUNet::device_network() { return *net_; }

}  // namespace coordiff::nn::cuda
