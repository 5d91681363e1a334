// Must not compile: check() returns bare keep flags instead of a filter::Verdict. Passes iff the first
// error is "coordiff ValidityFilter: missing `filter::Verdict check(...) const`".
#include <cstddef>
#include <cstdint>
#include <vector>

#include "compile_fail.hpp"

using namespace compile_fail;

struct KeepAll {
  template <class T>
#ifdef COORDIFF_COMPILE_FAIL_CONTROL
  filter::Verdict check(const Tensor<T>& samples, const diffusion::Batch<T>&) const {
    return {std::vector<std::uint8_t>(static_cast<std::size_t>(samples.dim(0)), 1), {}};
  }
#else
  std::vector<std::uint8_t> check(const Tensor<T>& samples, const diffusion::Batch<T>&) const {
    return std::vector<std::uint8_t>(static_cast<std::size_t>(samples.dim(0)), 1);
  }
#endif
};

int main() {
  return run(schedule::Linear(10), ZeroNoise{}, mask::None{}, order::Joint{}, KeepAll{}, guidance::None{});
}
