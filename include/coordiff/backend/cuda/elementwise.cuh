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

/// d mish / dx with the CPU reference's formula (nn::mish_backward): n/(n + 2) + x 4e(1 + e)/(n + 2)^2.
template <class T>
__host__ __device__ inline T mish_derivative(T v) {
  if (v > T(20) || v < T(-80)) return v > T(0) ? T(1) : T(0);
  const T e = exp_of(v), m = e * (e + T(2)), d = m + T(2);
  return m / d + v * T(4) * e * (T(1) + e) / (d * d);
}

template <class T>
__device__ inline T activation_derivative(Act act, T v) {
  return act == Act::Mish ? mish_derivative(v) : T(1);
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
__global__ void scale_rows_into(const T* src, dindex src_ld, dindex rows, dindex cols, const T* row_scale, T* dst,
                                dindex dst_ld) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= rows * cols) return;
  const dindex r = i / cols, c = i % cols;
  const T v = src[r * src_ld + c];
  dst[r * dst_ld + c] = row_scale ? row_scale[r] * v : v;
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
__global__ void map_act_rows(const T* x, dindex rows, dindex cols, T* y, dindex ld, Act act) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i < rows * cols) y[(i / cols) * ld + i % cols] = activate(act, x[i]);
}

template <class T>
__global__ void act_backward(const T* pre, const T* dy, dindex rows, dindex cols, dindex dy_ld, T* dx, Act act) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= rows * cols) return;
  const dindex r = i / cols, c = i % cols;
  dx[i] = dy[r * dy_ld + c] * activation_derivative(act, pre[i]);
}

// Column sums, 32 columns per block: thread (x, y) sums rows y, y + 8, ... of column x (coalesced along
// x), then the 8 partial sums are added in a fixed order: deterministic.
template <class T>
__global__ void column_sums(const T* x, dindex rows, dindex cols, dindex ld, T* out, bool accumulate) {
  __shared__ double part[8][33];
  const dindex c = blockIdx.x * 32 + threadIdx.x;
  double acc = 0;
  if (c < cols)
    for (dindex r = threadIdx.y; r < rows; r += 8) acc += static_cast<double>(x[r * ld + c]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double total = 0;
    for (int k = 0; k < 8; ++k) total += part[k][threadIdx.x];
    out[c] = static_cast<T>(accumulate ? out[c] + total : total);
  }
}

template <class T>
__global__ void length_sums(const T* x, dindex samples, dindex length, dindex cols, T* out, dindex out_ld) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= samples * cols) return;
  const dindex n = i / cols, c = i % cols;
  double acc = 0;
  for (dindex l = 0; l < length; ++l) acc += static_cast<double>(x[(n * length + l) * cols + c]);
  out[n * out_ld + c] = static_cast<T>(acc);
}

template <class T>
__global__ void split_cols(const T* y, dindex rows, dindex ca, dindex cb, T* a, T* b) {
  const dindex w = ca + cb, i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= rows * w) return;
  const dindex r = i / w, c = i % w;
  if (c < ca) {
    if (a) a[r * ca + c] = y[i];
  } else if (b) {
    b[r * cb + c - ca] = y[i];
  }
}

template <class T>
__global__ void add_into(T* y, const T* x, dindex n) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += x[i];
}

template <class T>
__global__ void adam(T* param, const T* grad, T* m, T* v, dindex n, double lr, double beta1, double beta2, double eps,
                     double weight_decay, bool decoupled, double step_size, double sqrt_bc2) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T w = param[i];
  double g = grad[i];
  if (weight_decay != 0) {
    if (decoupled) w = static_cast<T>(w * (1 - lr * weight_decay));
    else g += weight_decay * w;
  }
  m[i] = static_cast<T>(beta1 * m[i] + (1 - beta1) * g);
  v[i] = static_cast<T>(beta2 * v[i] + (1 - beta2) * g * g);
  const double denom = sqrt(static_cast<double>(v[i])) / sqrt_bc2 + eps;
  param[i] = static_cast<T>(w - step_size * m[i] / denom);
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

/// dst[r, c] = row_scale[r] * src[r, c] for r < rows, c < cols (rows src_ld and dst_ld apart); row_scale
/// may be null.
template <class T>
void scale_rows_into(const T* src, dindex src_ld, dindex rows, dindex cols, const T* row_scale, T* dst, dindex dst_ld,
                     cudaStream_t s) {
  if (rows * cols == 0) return;
  kernels::scale_rows_into<<<blocks_for(rows * cols, kThreads), kThreads, 0, s>>>(src, src_ld, rows, cols, row_scale, dst,
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

/// y[r, c] (rows ld apart) = act(x[r, c]) for dense x [rows, cols].
template <class T>
void map_act_rows(const T* x, dindex rows, dindex cols, T* y, dindex ld, Act act, cudaStream_t s) {
  if (rows * cols == 0) return;
  kernels::map_act_rows<<<blocks_for(rows * cols, kThreads), kThreads, 0, s>>>(x, rows, cols, y, ld, act);
  check(cudaGetLastError(), "map_act_rows launch");
}

/// dx [rows, cols] = dy (rows dy_ld apart) * act'(pre), pre dense [rows, cols].
template <class T>
void act_backward(const T* pre, const T* dy, dindex rows, dindex cols, dindex dy_ld, T* dx, Act act, cudaStream_t s) {
  if (rows * cols == 0) return;
  kernels::act_backward<<<blocks_for(rows * cols, kThreads), kThreads, 0, s>>>(pre, dy, rows, cols, dy_ld, dx, act);
  check(cudaGetLastError(), "act_backward launch");
}

/// out[c] (+)= sum over r < rows of x[r * ld + c]; sums in double, in a fixed order.
template <class T>
void column_sums(const T* x, dindex rows, dindex cols, dindex ld, T* out, bool accumulate, cudaStream_t s) {
  if (cols == 0) return;
  kernels::column_sums<<<static_cast<unsigned>((cols + 31) / 32), dim3(32, 8), 0, s>>>(x, rows, cols, ld, out, accumulate);
  check(cudaGetLastError(), "column_sums launch");
}

/// out[n * out_ld + c] = sum over l of x [samples, length, cols]: per-sample sums over the length axis.
template <class T>
void length_sums(const T* x, dindex samples, dindex length, dindex cols, T* out, dindex out_ld, cudaStream_t s) {
  if (samples * cols == 0) return;
  kernels::length_sums<<<blocks_for(samples * cols, kThreads), kThreads, 0, s>>>(x, samples, length, cols, out, out_ld);
  check(cudaGetLastError(), "length_sums launch");
}

/// Inverse of concat_cols: a [rows, ca], b [rows, cb] from y [rows, ca + cb]; either output may be null.
template <class T>
void split_cols(const T* y, dindex rows, dindex ca, dindex cb, T* a, T* b, cudaStream_t s) {
  const dindex n = rows * (ca + cb);
  if (n == 0) return;
  kernels::split_cols<<<blocks_for(n, kThreads), kThreads, 0, s>>>(y, rows, ca, cb, a, b);
  check(cudaGetLastError(), "split_cols launch");
}

/// y += x elementwise.
template <class T>
void add_into(T* y, const T* x, dindex n, cudaStream_t s) {
  if (n == 0) return;
  kernels::add_into<<<blocks_for(n, kThreads), kThreads, 0, s>>>(y, x, n);
  check(cudaGetLastError(), "add_into launch");
}

/// One Adam step (Kingma & Ba 2015, Algorithm 1) on n parameters with nn::optim::Adam's arithmetic
/// (weight decay added to the gradient, or decoupled as AdamW); `step` counts from 1.
template <class T>
void adam(T* param, const T* grad, T* m, T* v, dindex n, double lr, double beta1, double beta2, double eps,
          double weight_decay, bool decoupled, long long step, cudaStream_t s) {
  if (n == 0) return;
  const double bc1 = 1 - std::pow(beta1, static_cast<double>(step)), bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  kernels::adam<<<blocks_for(n, kThreads), kThreads, 0, s>>>(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay,
                                                             decoupled, lr / bc1, std::sqrt(bc2));
  check(cudaGetLastError(), "adam launch");
}

/// out = a x + b y + c z elementwise (y, z may be null): the shape of every DDPM/DDIM/inpainting update.
template <class T>
void affine3(T* out, dindex n, T a, const T* x, T b, const T* y, T c, const T* z, cudaStream_t s) {
  if (n == 0) return;
  kernels::affine3<<<blocks_for(n, kThreads), kThreads, 0, s>>>(out, n, a, x, b, y, c, z);
  check(cudaGetLastError(), "affine3 launch");
}

}  // namespace coordiff::backend::cuda
