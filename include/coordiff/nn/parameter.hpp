#pragma once
// Parameters, parameter lists and the module conventions every layer follows.
//
// A module (layer or network) owns its Parameters and exposes them through
//   void collect_parameters(ParameterList<T>& out, const std::string& prefix);
// using PyTorch state_dict names ("downs.0.0.blocks.0.block.0.weight"), so weights move between
// coordiff and PyTorch by name. forward() caches what backward() needs unless gradients are
// disabled (NoGradGuard); backward(dy) returns the input gradient(s) and ACCUMULATES (+=) into
// parameter gradients, as PyTorch does, so call zero_grad() between optimisation steps.
// A module instance supports one forward per backward: calling it twice before backward
// overwrites its cache.
#include <string>
#include <vector>

#include "coordiff/core/tensor.hpp"

namespace coordiff::nn {

template <class T>
struct Parameter {
  Tensor<T> value;
  Tensor<T> grad;
  Parameter() = default;
  explicit Parameter(Shape shape) : value(shape), grad(shape) {}
  void zero_grad() { grad.set_zero(); }
  const Shape& shape() const { return value.shape(); }
};

template <class T>
struct NamedParameter {
  std::string name;
  Parameter<T>* param;
};

template <class T>
using ParameterList = std::vector<NamedParameter<T>>;

/// "prefix.name", or "name" when the prefix is empty.
inline std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

/// All parameters of `module` with their state_dict names.
template <class T, class M>
ParameterList<T> parameters_of(M& network, const std::string& prefix = "") {
  ParameterList<T> list;
  network.collect_parameters(list, prefix);
  return list;
}

template <class T>
void zero_grad(const ParameterList<T>& params) {
  for (auto& p : params) p.param->zero_grad();
}

template <class T>
index_t parameter_count(const ParameterList<T>& params) {
  index_t n = 0;
  for (auto& p : params) n += p.param->value.size();
  return n;
}

/// Thread-local switch: when gradients are disabled, forward() stores no activations.
inline bool& grad_enabled_flag() {
  thread_local bool enabled = true;
  return enabled;
}
inline bool grad_enabled() { return grad_enabled_flag(); }

/// RAII: sets activation caching to `enabled` in its scope and restores the previous setting after.
template <bool enabled>
class GradModeGuard {
 public:
  GradModeGuard() : previous_(grad_enabled_flag()) { grad_enabled_flag() = enabled; }
  ~GradModeGuard() { grad_enabled_flag() = previous_; }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};
/// Disables activation caching (inference) in its scope, like torch.no_grad().
using NoGradGuard = GradModeGuard<false>;
/// Enables it (an input gradient needed inside an inference scope), like torch.enable_grad().
using GradGuard = GradModeGuard<true>;

/// Throws ShapeError unless backward() follows a forward() that cached activations.
inline void require_cached(bool cached, const char* layer) {
  require<ShapeError>(cached, layer, "::backward called without a preceding forward with gradients enabled");
}

}  // namespace coordiff::nn
