// CUDA parity tests: every device routine is compared with the CPU reference. Without a GPU the whole
// executable reports SKIPPED (exit code 77, which ctest shows as "Skipped"), never failed.
#include <cmath>
#include <cstdio>
#include <vector>

#include "coordiff/backend/cuda/random.cuh"
#include "coordiff/backend/cuda/runtime.cuh"

namespace {
int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
  if (!ok) ++failures;
}

void test_philox_normal_parity() {
  const std::int64_t n = 10003;  // not a multiple of 4
  for (std::uint64_t offset : {0ull, 6ull}) {
    coordiff::backend::cuda::DeviceBuffer<double> buf(n);
    coordiff::backend::cuda::fill_normal<double>(buf.data(), n, 1234, 5, offset);
    const auto gpu = buf.to_host();
    coordiff::Tensor<double> cpu(coordiff::Shape{n});
    coordiff::Philox(1234, 5).fill_normal(cpu, offset);
    double worst = 0;
    for (std::int64_t i = 0; i < n; ++i) worst = std::fmax(worst, std::fabs(gpu[i] - cpu[i]));
    // Same bits; Box-Muller's log/cos differ between libm and CUDA's math library by a few ulp at most.
    expect(worst < 1e-12, offset ? "philox normal parity (offset 6)" : "philox normal parity");
  }
}
}  // namespace

int main() {
  if (coordiff::backend::cuda::device_count() == 0) {
    std::printf("no CUDA device: CUDA parity tests skipped\n");
    return 77;
  }
  test_philox_normal_parity();
  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
