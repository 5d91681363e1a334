// Must not compile: the denoiser names its prediction `predict` instead of operator(). Passes iff the
// first error is "coordiff Denoiser: missing `Tensor<T> operator()(...)`".
#include "compile_fail.hpp"

using namespace compile_fail;

struct Predictor {
  using value_type = double;
#ifdef COORDIFF_COMPILE_FAIL_CONTROL
  Tensor<double> operator()(const Tensor<double>& x, const Tensor<double>&, const Condition<double>&) {
#else
  Tensor<double> predict(const Tensor<double>& x, const Tensor<double>&, const Condition<double>&) {
#endif
    return Tensor<double>(x.shape());
  }
};

int main() {
  return run(schedule::Linear(10), Predictor{}, mask::None{}, order::Joint{}, filter::AcceptAll{}, guidance::None{});
}
