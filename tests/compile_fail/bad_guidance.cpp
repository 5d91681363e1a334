// Must not compile: model_output() takes the concrete denoiser type, but the Generator passes its own
// (call-counting) wrapper, so it must be a template over the denoiser. Passes iff the first error is
// "coordiff Guidance: missing `template <class D> Tensor<T> model_output(D& denoiser, ...) const`".
#include "compile_fail.hpp"

using namespace compile_fail;

struct Plain {
#ifdef COORDIFF_COMPILE_FAIL_CONTROL
  template <class D>
  Tensor<double> model_output(D& d, const Tensor<double>& x, const Tensor<double>& k, const Condition<double>& c,
                              const guidance::StepInfo&) const {
#else
  Tensor<double> model_output(ZeroNoise& d, const Tensor<double>& x, const Tensor<double>& k,
                              const Condition<double>& c, const guidance::StepInfo&) const {
#endif
    return d(x, k, c);
  }
};

int main() {
  return run(schedule::Linear(10), ZeroNoise{}, mask::None{}, order::Joint{}, filter::AcceptAll{}, Plain{});
}
