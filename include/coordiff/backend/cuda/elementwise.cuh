#pragma once
// Pointwise and layout kernels on raw device arrays. They know shapes and strides, nothing of networks
// or diffusion. Every launcher checks its launch and returns without waiting (stream-ordered).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "coordiff/backend/cuda/runtime.cuh"

namespace coordiff::backend::cuda {

using dindex = std::int64_t;

enum class Act { None, Mish };

inline unsigned blocks_for(dindex n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

/// exp for float and double in host and device code (libstdc++'s std::exp is a host-only constexpr).
template <class T>
__host__ __device__ inline T exp_of(T v) {
#ifdef __CUDA_ARCH__
  return exp(v);
#else
  return std::exp(v);
#endif
}

/// Mish with the CPU reference's formula (nn::mish_forward): x n/(n + 2), n = e(e + 2), e = exp(x),
/// exact limits beyond x = 20 and below x = -80.
template <class T>
__host__ __device__ inline T mish(T v) {
  if (v > T(20) || v < T(-80)) return v > T(0) ? v : T(0);
  const T e = exp_of(v), m = e * (e + T(2));
  return v * m / (m + T(2));
}

template <class T>
__device__ inline T activate(Act act, T v) {
  return act == Act::Mish ? mish(v) : v;
}

namespace kernels {
template <class T>
__global__ void bias_act(T* y, dindex rows, dindex cols, dindex ld, const T* bias, Act act) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= rows * cols) return;
  const dindex r = i / cols, c = i % cols;
  T& v = y[r * ld + c];
  v = activate(act, bias ? v + bias[c] : v);
}

template <class T>
__global__ void map_act(const T* x, T* y, dindex n, Act act) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = activate(act, x[i]);
}

template <class T>
__global__ void add_bias_and_table(T* y, dindex samples, dindex length, dindex cols, const T* bias, const T* table,
                                   dindex table_ld) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= samples * length * cols) return;
  const dindex c = i % cols, n = i / (cols * length);
  T add = bias ? bias[c] : T(0);
  if (table) add += table[n * table_ld + c];
  y[i] += add;
}

template <class T>
__global__ void sinusoidal(const T* time, dindex rows, dindex rows_per_time, dindex dim, T* out, dindex ld) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  const dindex half = dim / 2;
  if (i >= rows * half) return;
  const dindex r = i / half, j = i % half;
  // Same arithmetic as nn::SinusoidalPosEmb: double frequencies and angles, rounded once.
  const double f = exp(-static_cast<double>(j) * log(10000.0) / static_cast<double>(half - 1));
  const double a = static_cast<double>(time[r / rows_per_time]) * f;
  out[r * ld + j] = static_cast<T>(sin(a));
  out[r * ld + half + j] = static_cast<T>(cos(a));
}

template <class T>
__global__ void scale_rows_into(const T* src, dindex rows, dindex cols, const T* row_scale, T* dst, dindex dst_ld) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= rows * cols) return;
  const dindex r = i / cols, c = i % cols;
  dst[r * dst_ld + c] = row_scale ? row_scale[r] * src[i] : src[i];
}

template <class T>
__global__ void swap_axes12(const T* x, dindex d0, dindex d1, dindex d2, dindex d3, T* y) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= d0 * d1 * d2 * d3) return;
  const dindex e = i % d3, b = (i / d3) % d2, a = (i / (d3 * d2)) % d1, z = i / (d3 * d2 * d1);
  y[((z * d2 + b) * d1 + a) * d3 + e] = x[i];
}

template <class T>
__global__ void concat_cols(const T* a, dindex ca, const T* b, dindex cb, dindex rows, T* y) {
  const dindex w = ca + cb, i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= rows * w) return;
  const dindex r = i / w, c = i % w;
  y[i] = c < ca ? a[r * ca + c] : b[r * cb + c - ca];
}

template <class T>
__global__ void affine3(T* out, dindex n, T a, const T* x, T b, const T* y, T c, const T* z) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T v = a * x[i];
  if (y) v += b * y[i];
  if (z) v += c * z[i];
  out[i] = v;
}
}  // namespace kernels

constexpr int kThreads = 256;

/// y[r, c] = act(y[r, c] + bias[c]) for r < rows, c < cols, rows ld apart; bias may be null.
template <class T>
void bias_act(T* y, dindex rows, dindex cols, dindex ld, const T* bias, Act act, cudaStream_t s) {
  if (rows * cols == 0) return;
  kernels::bias_act<<<blocks_for(rows * cols, kThreads), kThreads, 0, s>>>(y, rows, cols, ld, bias, act);
  check(cudaGetLastError(), "bias_act launch");
}

/// y = act(x), elementwise.
template <class T>
void map_act(const T* x, T* y, dindex n, Act act, cudaStream_t s) {
  if (n == 0) return;
  kernels::map_act<<<blocks_for(n, kThreads), kThreads, 0, s>>>(x, y, n, act);
  check(cudaGetLastError(), "map_act launch");
}

/// y [samples, length, cols] += bias[c] + table[n, c] (table rows table_ld apart): a per-sample vector
/// broadcast over the length axis. Either term may be null.
template <class T>
void add_bias_and_table(T* y, dindex samples, dindex length, dindex cols, const T* bias, const T* table,
                        dindex table_ld, cudaStream_t s) {
  const dindex n = samples * length * cols;
  if (n == 0) return;
  kernels::add_bias_and_table<<<blocks_for(n, kThreads), kThreads, 0, s>>>(y, samples, length, cols, bias, table,
                                                                           table_ld);
  check(cudaGetLastError(), "add_bias_and_table launch");
}

/// out[r, :dim] = [sin(t f_j), cos(t f_j)] with t = time[r / rows_per_time], f_j = 10000^(-j/(dim/2 - 1)).
template <class T>
void sinusoidal(const T* time, dindex rows, dindex rows_per_time, dindex dim, T* out, dindex ld, cudaStream_t s) {
  const dindex n = rows * (dim / 2);
  if (n == 0) return;
  kernels::sinusoidal<<<blocks_for(n, kThreads), kThreads, 0, s>>>(time, rows, rows_per_time, dim, out, ld);
  check(cudaGetLastError(), "sinusoidal launch");
}

/// dst[r, c] = row_scale[r] * src[r, c] (src dense [rows, cols], dst rows dst_ld apart); row_scale may be null.
template <class T>
void scale_rows_into(const T* src, dindex rows, dindex cols, const T* row_scale, T* dst, dindex dst_ld,
                     cudaStream_t s) {
  if (rows * cols == 0) return;
  kernels::scale_rows_into<<<blocks_for(rows * cols, kThreads), kThreads, 0, s>>>(src, rows, cols, row_scale, dst,
                                                                                   dst_ld);
  check(cudaGetLastError(), "scale_rows_into launch");
}

/// [d0, d1, d2, d3] -> [d0, d2, d1, d3].
template <class T>
void swap_axes12(const T* x, dindex d0, dindex d1, dindex d2, dindex d3, T* y, cudaStream_t s) {
  const dindex n = d0 * d1 * d2 * d3;
  if (n == 0) return;
  kernels::swap_axes12<<<blocks_for(n, kThreads), kThreads, 0, s>>>(x, d0, d1, d2, d3, y);
  check(cudaGetLastError(), "swap_axes12 launch");
}

/// y [rows, ca + cb] = [a [rows, ca], b [rows, cb]].
template <class T>
void concat_cols(const T* a, dindex ca, const T* b, dindex cb, dindex rows, T* y, cudaStream_t s) {
  const dindex n = rows * (ca + cb);
  if (n == 0) return;
  kernels::concat_cols<<<blocks_for(n, kThreads), kThreads, 0, s>>>(a, ca, b, cb, rows, y);
  check(cudaGetLastError(), "concat_cols launch");
}

/// out = a x + b y + c z elementwise (y, z may be null): the shape of every DDPM/DDIM/inpainting update.
template <class T>
void affine3(T* out, dindex n, T a, const T* x, T b, const T* y, T c, const T* z, cudaStream_t s) {
  if (n == 0) return;
  kernels::affine3<<<blocks_for(n, kThreads), kThreads, 0, s>>>(out, n, a, x, b, y, c, z);
  check(cudaGetLastError(), "affine3 launch");
}

}  // namespace coordiff::backend::cuda
