#pragma once
// Device-side Philox fills: the same (seed, stream, index) -> value mapping as coordiff::Philox on the CPU.
#include <cstdint>

#include "coordiff/backend/cuda/runtime.cuh"
#include "coordiff/core/philox.hpp"

namespace coordiff::backend::cuda {

namespace kernels {
/// One thread per Philox block: writes out[4b .. 4b+3] = mean + stddev * normal(offset + 4b + lane).
template <class T>
__global__ void fill_normal(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset,
                            T mean, T stddev) {
  const std::int64_t first = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (first >= n) return;
  // Handle offsets not aligned to a block by computing each element's own block/lane.
  for (int lane = 0; lane < 4 && first + lane < n; ++lane) {
    const std::uint64_t index = offset + static_cast<std::uint64_t>(first + lane);
    std::uint32_t bits[4];
    philox_stream_block(seed, stream, index / 4, bits);
    double z[4];
    box_muller(bits[0], bits[1], z[0], z[1]);
    box_muller(bits[2], bits[3], z[2], z[3]);
    out[first + lane] = static_cast<T>(mean + stddev * z[index % 4]);
  }
}
}  // namespace kernels

/// Fills device memory with normals identical (to libm rounding) to Philox(seed, stream).fill_normal on the CPU.
template <class T>
void fill_normal(T* device_out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset = 0,
                 T mean = T(0), T stddev = T(1), cudaStream_t cuda_stream = nullptr) {
  if (n <= 0) return;
  const int threads = 256;
  const std::int64_t blocks = ((n + 3) / 4 + threads - 1) / threads;
  kernels::fill_normal<T><<<static_cast<unsigned>(blocks), threads, 0, cuda_stream>>>(device_out, n, seed, stream,
                                                                                        offset, mean, stddev);
  check(cudaGetLastError(), "fill_normal launch");
}

}  // namespace coordiff::backend::cuda
