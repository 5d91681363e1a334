// Must not compile: known() is not const (the Generator asks a const mask). Passes iff the first error
// is "coordiff MaskStrategy: missing `Tensor<std::uint8_t> known(...) const`".
#include "compile_fail.hpp"

using namespace compile_fail;

struct GenerateAll {
  template <class T>
#ifdef COORDIFF_COMPILE_FAIL_CONTROL
  Tensor<std::uint8_t> known(const diffusion::Batch<T>& batch, const diffusion::Round& round) const {
#else
  Tensor<std::uint8_t> known(const diffusion::Batch<T>& batch, const diffusion::Round& round) {
#endif
    return mask::known_except(batch, round, [](index_t, index_t, index_t) { return true; });
  }
};

int main() {
  return run(schedule::Linear(10), ZeroNoise{}, GenerateAll{}, order::Joint{}, filter::AcceptAll{}, guidance::None{});
}
