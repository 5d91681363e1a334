#pragma once
// Block-level reductions shared by the kernels.
#include <cuda_runtime.h>

namespace coordiff::backend::cuda::detail {

/// Sum of `v` over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
/// The warps' partial sums are added in a fixed order: deterministic.
__device__ inline double block_sum(double v, double* shared32) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  __syncthreads();  // shared32 may still be read from a previous call
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < warps; ++w) total += shared32[w];
  return total;
}

}  // namespace coordiff::backend::cuda::detail
