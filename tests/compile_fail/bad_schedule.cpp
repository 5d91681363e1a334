// Must not compile: the schedule has no alpha_bar(k). Passes iff the first error is
// "coordiff NoiseSchedule: missing `double alpha_bar(index_t k) const`".
#include <cmath>

#include "compile_fail.hpp"

using namespace compile_fail;

struct HalfBeta {
  index_t num_steps() const { return 10; }
  double beta(index_t) const { return 0.5; }
#ifdef COORDIFF_COMPILE_FAIL_CONTROL
  double alpha_bar(index_t k) const { return std::pow(0.5, static_cast<double>(k + 1)); }
#endif
};

int main() { return run(HalfBeta{}, ZeroNoise{}, mask::None{}, order::Joint{}, filter::AcceptAll{}, guidance::None{}); }
