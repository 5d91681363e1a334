#pragma once
// Fused group normalisation for channels-last x [N, L, C]: y = act(gamma * xhat + beta) + per-sample
// vector + residual, one block per (sample, group). Statistics accumulate in double, as on the CPU.
#include "coordiff/backend/cuda/elementwise.cuh"

namespace coordiff::backend::cuda {

namespace detail {
/// Sum of `v` over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ inline double block_sum(double v, double* shared32) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  __syncthreads();  // shared32 may still be read from a previous call
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < warps; ++w) total += shared32[w];  // fixed order: deterministic
  return total;
}
}  // namespace detail

/// Optional additions after the activation.
template <class T>
struct NormEpilogue {
  const T* per_sample = nullptr;  ///< [N, *] rows per_sample_ld apart: added to channel c of sample n
  dindex per_sample_ld = 0;
  const T* residual = nullptr;  ///< [N, L, C]: added elementwise
};

namespace kernels {
template <class T>
__global__ void group_norm_act(const T* x, dindex length, dindex channels, dindex groups, double eps, const T* weight,
                               const T* bias, Act act, NormEpilogue<T> epi, T* y) {
  __shared__ double shared32[32];
  const dindex n = blockIdx.x / groups, g = blockIdx.x % groups, cg = channels / groups, count = length * cg;
  const T* xs = x + n * length * channels + g * cg;
  auto at = [&](dindex idx) { return (idx / cg) * channels + idx % cg; };
  double sum = 0;
  for (dindex idx = threadIdx.x; idx < count; idx += blockDim.x) sum += static_cast<double>(xs[at(idx)]);
  const double mean = detail::block_sum(sum, shared32) / static_cast<double>(count);
  double sq = 0;
  for (dindex idx = threadIdx.x; idx < count; idx += blockDim.x) {
    const double d = static_cast<double>(xs[at(idx)]) - mean;
    sq += d * d;
  }
  const double inv_std = 1.0 / sqrt(detail::block_sum(sq, shared32) / static_cast<double>(count) + eps);
  for (dindex idx = threadIdx.x; idx < count; idx += blockDim.x) {
    const dindex off = at(idx), c = g * cg + idx % cg;
    const T xhat = static_cast<T>((static_cast<double>(xs[off]) - mean) * inv_std);
    T v = activate(act, xhat * weight[c] + bias[c]);
    if (epi.per_sample) v += epi.per_sample[n * epi.per_sample_ld + c];
    const dindex out = n * length * channels + g * cg + off;
    if (epi.residual) v += epi.residual[out];
    y[out] = v;
  }
}
}  // namespace kernels

/// y [N, L, C] = act(GroupNorm(x) * weight + bias) + epilogue; x and y may not alias.
template <class T>
void group_norm_act(const T* x, dindex batch, dindex length, dindex channels, dindex groups, double eps,
                    const T* weight, const T* bias, Act act, const NormEpilogue<T>& epi, T* y, cudaStream_t s) {
  require<ShapeError>(groups > 0 && channels % groups == 0, "group_norm_act: ", channels,
                      " channels cannot be split into ", groups, " groups");
  if (batch * groups == 0) return;
  const dindex count = length * (channels / groups);
  const int threads = count >= 256 ? 256 : count >= 128 ? 128 : count >= 64 ? 64 : 32;
  kernels::group_norm_act<<<static_cast<unsigned>(batch * groups), threads, 0, s>>>(x, length, channels, groups, eps,
                                                                                    weight, bias, act, epi, y);
  check(cudaGetLastError(), "group_norm_act launch");
}

}  // namespace coordiff::backend::cuda
