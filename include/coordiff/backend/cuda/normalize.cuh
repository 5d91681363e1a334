#pragma once
// Fused group normalisation for channels-last x [N, L, C]: y = act(gamma * xhat + beta) + per-sample
// vector + residual, one block per (sample, group). Statistics accumulate in double, as on the CPU.
#include "coordiff/backend/cuda/elementwise.cuh"
#include "coordiff/backend/cuda/reduce.cuh"

namespace coordiff::backend::cuda {


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
                               const T* bias, Act act, NormEpilogue<T> epi, T* y, double* stats) {
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
  if (stats && threadIdx.x == 0) stats[2 * blockIdx.x] = mean, stats[2 * blockIdx.x + 1] = inv_std;
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

// Backward of group_norm_act, one block per (sample, group); per channel c of the group, over the length:
// dz = dy act'(z), z = xhat w + b; dw_part[n, c] = sum dz xhat, db_part[n, c] = sum dz, per_sample_grad[n, c]
// = sum dy; then dx = inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) with dxhat = dz w.
template <class T>
__global__ void group_norm_act_backward(const T* x, const double* stats, dindex length, dindex channels, dindex groups,
                                        const T* weight, const T* bias, Act act, const T* dy, T* dx, T* dw_part,
                                        T* db_part, T* per_sample_grad, dindex per_sample_ld) {
  __shared__ double shared32[32];
  const dindex n = blockIdx.x / groups, g = blockIdx.x % groups, cg = channels / groups, count = length * cg;
  const double mean = stats[2 * blockIdx.x], inv_std = stats[2 * blockIdx.x + 1];
  const dindex base = n * length * channels + g * cg;
  double s1 = 0, s2 = 0;
  for (dindex k = threadIdx.x; k < cg; k += blockDim.x) {
    const dindex c = g * cg + k;
    double gw = 0, gb = 0, gs = 0;
    for (dindex l = 0; l < length; ++l) {
      const dindex off = base + l * channels + k;
      const T xhat = static_cast<T>((static_cast<double>(x[off]) - mean) * inv_std);
      const T dz = dy[off] * activation_derivative(act, static_cast<T>(xhat * weight[c] + bias[c]));
      gw += static_cast<double>(dz) * xhat, gb += dz, gs += dy[off];
      const double dxhat = static_cast<double>(dz) * weight[c];
      s1 += dxhat, s2 += dxhat * xhat;
    }
    dw_part[n * channels + c] = static_cast<T>(gw);
    db_part[n * channels + c] = static_cast<T>(gb);
    if (per_sample_grad) per_sample_grad[n * per_sample_ld + c] = static_cast<T>(gs);
  }
  const double m1 = detail::block_sum(s1, shared32) / static_cast<double>(count);
  const double m2 = detail::block_sum(s2, shared32) / static_cast<double>(count);
  for (dindex idx = threadIdx.x; idx < count; idx += blockDim.x) {
    const dindex k = idx % cg, off = base + (idx / cg) * channels + k, c = g * cg + k;
    const T xhat = static_cast<T>((static_cast<double>(x[off]) - mean) * inv_std);
    const T dz = dy[off] * activation_derivative(act, static_cast<T>(xhat * weight[c] + bias[c]));
    const double dxhat = static_cast<double>(dz) * weight[c];
    dx[off] = static_cast<T>(inv_std * (dxhat - m1 - xhat * m2));
  }
}
}  // namespace kernels

inline int norm_threads(dindex count) { return count >= 256 ? 256 : count >= 128 ? 128 : count >= 64 ? 64 : 32; }

/// y [N, L, C] = act(GroupNorm(x) * weight + bias) + epilogue; x and y may not alias. `stats` (may be null)
/// receives each (sample, group)'s mean and 1/std, [N * groups * 2], for the backward pass.
template <class T>
void group_norm_act(const T* x, dindex batch, dindex length, dindex channels, dindex groups, double eps,
                    const T* weight, const T* bias, Act act, const NormEpilogue<T>& epi, T* y, cudaStream_t s,
                    double* stats = nullptr) {
  require<ShapeError>(groups > 0 && channels % groups == 0, "group_norm_act: ", channels,
                      " channels cannot be split into ", groups, " groups");
  if (batch * groups == 0) return;
  const int threads = norm_threads(length * (channels / groups));
  kernels::group_norm_act<<<static_cast<unsigned>(batch * groups), threads, 0, s>>>(x, length, channels, groups, eps,
                                                                                    weight, bias, act, epi, y, stats);
  check(cudaGetLastError(), "group_norm_act launch");
}

/// Backward of group_norm_act from its input x, its stats and the output gradient dy [N, L, C]: dx
/// [N, L, C] (the gradient of the epilogue's residual is dy itself, of its per-sample vector the
/// per_sample_grad rows (may be null)), and per-sample partial parameter gradients dw_part, db_part
/// [N, C] (sum them over N with column_sums).
template <class T>
void group_norm_act_backward(const T* x, const double* stats, dindex batch, dindex length, dindex channels,
                             dindex groups, const T* weight, const T* bias, Act act, const T* dy, T* dx, T* dw_part,
                             T* db_part, T* per_sample_grad, dindex per_sample_ld, cudaStream_t s) {
  if (batch * groups == 0) return;
  const dindex cg = channels / groups;
  const int threads = norm_threads(cg >= 32 ? cg : length * cg);
  kernels::group_norm_act_backward<<<static_cast<unsigned>(batch * groups), threads, 0, s>>>(
      x, stats, length, channels, groups, weight, bias, act, dy, dx, dw_part, db_part, per_sample_grad, per_sample_ld);
  check(cudaGetLastError(), "group_norm_act_backward launch");
}

}  // namespace coordiff::backend::cuda
