// CUDA parity tests: every device routine is compared with the CPU reference. Without a GPU the whole
// executable reports SKIPPED (exit code 77, which ctest shows as "Skipped"), never failed.
#include <cmath>
#include <cstdio>
#include <vector>

#include "coordiff/backend/cuda/random.cuh"
#include "coordiff/backend/cuda/runtime.cuh"
#include "coordiff/schedule/cosine.hpp"
#include "coordiff/schedule/linear.hpp"

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
__global__ void schedule_betas_kernel(double* cosine, double* linear, std::int64_t steps) {
  const std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (k >= steps) return;
  cosine[k] = coordiff::schedule::cosine_beta(k, steps, 0.008, 0.999);
  linear[k] = coordiff::schedule::linear_beta(k, steps, 1e-4, 2e-2);
}

// The schedule formulas are COORDIFF_HOST_DEVICE: a kernel evaluates the same betas as the host tables.
void test_schedule_math_on_device() {
  const std::int64_t steps = 200;
  coordiff::backend::cuda::DeviceBuffer<double> cos_buf(steps), lin_buf(steps);
  schedule_betas_kernel<<<(steps + 127) / 128, 128>>>(cos_buf.data(), lin_buf.data(), steps);
  const auto cos_gpu = cos_buf.to_host(), lin_gpu = lin_buf.to_host();
  const coordiff::schedule::Cosine cosine(steps);
  const coordiff::schedule::Linear linear(steps);
  double worst = 0;
  for (std::int64_t k = 0; k < steps; ++k)
    worst = std::fmax(worst, std::fmax(std::fabs(cos_gpu[k] - cosine.beta(k)) / cosine.beta(k),
                                       std::fabs(lin_gpu[k] - linear.beta(k)) / linear.beta(k)));
  expect(worst < 1e-12, "cosine and linear betas on the device match the host schedule");
}
}  // namespace

int main() {
  if (coordiff::backend::cuda::device_count() == 0) {
    std::printf("no CUDA device: CUDA parity tests skipped\n");
    return 77;
  }
  test_philox_normal_parity();
  test_schedule_math_on_device();
  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
