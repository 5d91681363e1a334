#pragma once
// Column packing for 1-D convolutions. Kernel-level code: knows signals, kernels and strides only.
//
// For a signal s [N, C, Ls] and `cols_per_sample` output positions o, the column matrix is
//   col[(c*K + k), n*cols_per_sample + o] = s[n, c, o*stride - padding + k*dilation]   (0 outside [0, Ls))
// Conv1d forward packs its input this way; ConvTranspose1d's forward is the adjoint (col2im).
#include "coordiff/core/tensor.hpp"

namespace coordiff::backend::cpu {

struct Conv1dGeometry {
  index_t channels, signal_length, cols_per_sample, kernel, stride, padding, dilation;
};

template <class T>
void im2col_1d(const T* signal, index_t batch, const Conv1dGeometry& g, T* col) {
  const index_t ncol = batch * g.cols_per_sample;
#pragma omp parallel for schedule(static) if (g.channels * ncol * g.kernel > 65536)
  for (index_t c = 0; c < g.channels; ++c)
    for (index_t k = 0; k < g.kernel; ++k) {
      T* row = col + (c * g.kernel + k) * ncol;
      for (index_t n = 0; n < batch; ++n) {
        const T* s = signal + (n * g.channels + c) * g.signal_length;
        T* r = row + n * g.cols_per_sample;
        for (index_t o = 0; o < g.cols_per_sample; ++o) {
          const index_t pos = o * g.stride - g.padding + k * g.dilation;
          r[o] = (pos >= 0 && pos < g.signal_length) ? s[pos] : T(0);
        }
      }
    }
}

/// Adjoint of im2col_1d: signal[n, c, pos] = sum of the column entries that read it (signal is overwritten).
template <class T>
void col2im_1d(const T* col, index_t batch, const Conv1dGeometry& g, T* signal) {
  const index_t ncol = batch * g.cols_per_sample;
#pragma omp parallel for collapse(2) schedule(static) if (g.channels * ncol * g.kernel > 65536)
  for (index_t n = 0; n < batch; ++n)
    for (index_t c = 0; c < g.channels; ++c) {  // each (n, c) writes its own signal row: no races
      T* s = signal + (n * g.channels + c) * g.signal_length;
      for (index_t i = 0; i < g.signal_length; ++i) s[i] = T(0);
      for (index_t k = 0; k < g.kernel; ++k) {
        const T* r = col + (c * g.kernel + k) * ncol + n * g.cols_per_sample;
        for (index_t o = 0; o < g.cols_per_sample; ++o) {
          const index_t pos = o * g.stride - g.padding + k * g.dilation;
          if (pos >= 0 && pos < g.signal_length) s[pos] += r[o];
        }
      }
    }
}

/// [N, C, L] -> [C, N*L] (channel-major) and back.
template <class T>
void batch_to_channel_major(const T* x, index_t n, index_t c, index_t l, T* out) {
#pragma omp parallel for schedule(static) if (n * c * l > 65536)
  for (index_t ci = 0; ci < c; ++ci)
    for (index_t ni = 0; ni < n; ++ni) {
      const T* src = x + (ni * c + ci) * l;
      T* dst = out + ci * n * l + ni * l;
      for (index_t i = 0; i < l; ++i) dst[i] = src[i];
    }
}
template <class T>
void channel_major_to_batch(const T* x, index_t n, index_t c, index_t l, T* out) {
#pragma omp parallel for schedule(static) if (n * c * l > 65536)
  for (index_t ni = 0; ni < n; ++ni)
    for (index_t ci = 0; ci < c; ++ci) {
      const T* src = x + ci * n * l + ni * l;
      T* dst = out + (ni * c + ci) * l;
      for (index_t i = 0; i < l; ++i) dst[i] = src[i];
    }
}

}  // namespace coordiff::backend::cpu
