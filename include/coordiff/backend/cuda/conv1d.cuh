#pragma once
// 1-D convolution pieces for channels-last signals x [N, L, C] (the GPU layout: a GEMM row is one
// position of one sample, and im2col copies contiguous channel runs). The GEMMs run in cuBLAS; these
// kernels only gather.
#include "coordiff/backend/cuda/elementwise.cuh"

namespace coordiff::backend::cuda {

/// Geometry of a convolution over `length` positions: output position o reads input o*stride - padding +
/// k*dilation for k < kernel.
struct Conv1dShape {
  dindex channels, length, out_length, kernel, stride, padding, dilation;
};

namespace kernels {
template <class T>
__global__ void im2col_channels_last(const T* x, dindex batch, Conv1dShape g, T* col) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  const dindex width = g.kernel * g.channels;
  if (i >= batch * g.out_length * width) return;
  const dindex c = i % g.channels, k = (i / g.channels) % g.kernel, row = i / width;
  const dindex n = row / g.out_length, o = row % g.out_length;
  const dindex pos = o * g.stride - g.padding + k * g.dilation;
  col[i] = pos >= 0 && pos < g.length ? x[(n * g.length + pos) * g.channels + c] : T(0);
}

// Transposed convolution as a gather: output position o takes input l with l*stride - padding +
// k*dilation = o, summed over k in ascending order (the CPU col2im order). No atomics: deterministic.
template <class T>
__global__ void transposed_gather(const T* cols, dindex batch, Conv1dShape g, const T* bias, T* y) {
  const dindex i = blockIdx.x * static_cast<dindex>(blockDim.x) + threadIdx.x;
  if (i >= batch * g.out_length * g.channels) return;
  const dindex c = i % g.channels, o = (i / g.channels) % g.out_length, n = i / (g.channels * g.out_length);
  T acc = T(0);
  for (dindex k = 0; k < g.kernel; ++k) {
    const dindex t = o + g.padding - k * g.dilation;
    if (t < 0 || t % g.stride) continue;
    const dindex l = t / g.stride;
    if (l < g.length) acc += cols[(n * g.length + l) * (g.kernel * g.channels) + k * g.channels + c];
  }
  y[i] = bias ? acc + bias[c] : acc;
}
}  // namespace kernels

/// col [N * out_length, kernel * channels] (row (n, o), column k * channels + c) from x [N, length, channels].
template <class T>
void im2col_channels_last(const T* x, dindex batch, const Conv1dShape& g, T* col, cudaStream_t s) {
  const dindex n = batch * g.out_length * g.kernel * g.channels;
  if (n == 0) return;
  kernels::im2col_channels_last<<<blocks_for(n, kThreads), kThreads, 0, s>>>(x, batch, g, col);
  check(cudaGetLastError(), "im2col_channels_last launch");
}

/// y [N, out_length, channels] from cols [N * length, kernel * channels] (row (n, l), column k * channels + c,
/// the product of the input with the [Cin, K, Cout] weight), plus bias (may be null). `g.channels` is the
/// output channel count; `g.length` the input length.
template <class T>
void transposed_gather(const T* cols, dindex batch, const Conv1dShape& g, const T* bias, T* y, cudaStream_t s) {
  const dindex n = batch * g.out_length * g.channels;
  if (n == 0) return;
  kernels::transposed_gather<<<blocks_for(n, kThreads), kThreads, 0, s>>>(cols, batch, g, bias, y);
  check(cudaGetLastError(), "transposed_gather launch");
}

}  // namespace coordiff::backend::cuda
