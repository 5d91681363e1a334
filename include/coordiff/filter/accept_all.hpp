#pragma once
// Keeps every sample (no validity check).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "coordiff/filter/filter.hpp"

namespace coordiff::filter {

struct AcceptAll {
  template <class T>
  Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>&) const {
    const auto B = static_cast<std::size_t>(samples.dim(0));
    return Verdict{std::vector<std::uint8_t>(B, 1), std::vector<std::string>(B)};
  }
};

}  // namespace coordiff::filter
