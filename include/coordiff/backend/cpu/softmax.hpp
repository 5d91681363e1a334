#pragma once
// Row-wise softmax and its backward, in place.
#include <algorithm>
#include <cmath>

#include "coordiff/core/tensor.hpp"

namespace coordiff::backend::cpu {

/// p[r, :] = softmax(p[r, :]) for `rows` contiguous rows of length n (max-subtracted for stability).
template <class T>
void softmax_rows(T* p, index_t rows, index_t n) {
  for (index_t r = 0; r < rows; ++r) {
    T* x = p + r * n;
    const T m = *std::max_element(x, x + n);
    T s = 0;
    for (index_t j = 0; j < n; ++j) s += (x[j] = std::exp(x[j] - m));
    for (index_t j = 0; j < n; ++j) x[j] /= s;
  }
}

/// Given probabilities p and upstream g = dL/dp, overwrites g with dL/dlogits = p * (g - sum_j g_j p_j).
template <class T>
void softmax_rows_backward(const T* p, T* g, index_t rows, index_t n) {
  for (index_t r = 0; r < rows; ++r) {
    const T* pr = p + r * n;
    T* gr = g + r * n;
    T dot = 0;
    for (index_t j = 0; j < n; ++j) dot += gr[j] * pr[j];
    for (index_t j = 0; j < n; ++j) gr[j] = pr[j] * (gr[j] - dot);
  }
}

}  // namespace coordiff::backend::cpu
