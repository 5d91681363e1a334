#pragma once
#include <string>
#include <utility>
#include <vector>

#include "coordiff/core/tensor.hpp"

namespace coordiff::bench {
using NpzContents = std::vector<std::pair<std::string, Tensor<float>>>;
/// Every array of an npz file as float tensors, by key.
NpzContents read_npz(const std::string& path);
}  // namespace coordiff::bench
