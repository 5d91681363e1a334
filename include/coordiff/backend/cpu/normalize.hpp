#pragma once
// Row normalisation kernels shared by GroupNorm and LayerNorm: each of `rows` contiguous rows of
// length `len` is standardised, xhat = (x - mean) / sqrt(var + eps) with the biased variance.
#include <cmath>

#include "coordiff/core/tensor.hpp"

namespace coordiff::backend::cpu {

/// Writes xhat and the per-row inverse standard deviation.
template <class T>
void standardize_rows(const T* x, index_t rows, index_t len, double eps, T* xhat, T* inv_std) {
#pragma omp parallel for schedule(static) if (rows * len > 32768)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * len;
    double mean = 0, var = 0;
    for (index_t i = 0; i < len; ++i) mean += xr[i];
    mean /= static_cast<double>(len);
    for (index_t i = 0; i < len; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(len);
    const double is = 1.0 / std::sqrt(var + eps);
    inv_std[r] = static_cast<T>(is);
    for (index_t i = 0; i < len; ++i) xhat[r * len + i] = static_cast<T>((xr[i] - mean) * is);
  }
}

/// Given dxhat = dL/dxhat, writes dL/dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
template <class T>
void standardize_rows_backward(const T* dxhat, const T* xhat, const T* inv_std, index_t rows, index_t len, T* dx) {
#pragma omp parallel for schedule(static) if (rows * len > 32768)
  for (index_t r = 0; r < rows; ++r) {
    const T* g = dxhat + r * len;
    const T* h = xhat + r * len;
    double mg = 0, mgh = 0;
    for (index_t i = 0; i < len; ++i) mg += g[i], mgh += g[i] * h[i];
    mg /= static_cast<double>(len);
    mgh /= static_cast<double>(len);
    for (index_t i = 0; i < len; ++i) dx[r * len + i] = static_cast<T>(inv_std[r] * (g[i] - mg - h[i] * mgh));
  }
}

}  // namespace coordiff::backend::cpu
