#pragma once
// Row-major GEMM on raw pointers, C = alpha * op(A) * op(B) + beta * C, computed by Eigen.
// This is the CPU backend's only matrix-product entry point; layers never name Eigen directly.
#include <Eigen/Core>

#include "coordiff/core/tensor.hpp"

namespace coordiff::backend::cpu {

enum class Trans { No, Yes };

template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatMap = Eigen::Map<RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMatMap = Eigen::Map<const RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides of the stored matrices.
template <class T>
void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
          index_t ldb, T beta, T* C, index_t ldc) {
  if (M == 0 || N == 0) return;
  MatMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K == 0) {
    if (beta == T(0)) c.setZero(); else c *= beta;
    return;
  }
  const index_t ar = ta == Trans::No ? M : K, ac = ta == Trans::No ? K : M;
  const index_t br = tb == Trans::No ? K : N, bc = tb == Trans::No ? N : K;
  ConstMatMap<T> a(A, ar, ac, Eigen::OuterStride<>(lda));
  ConstMatMap<T> b(B, br, bc, Eigen::OuterStride<>(ldb));
  if (beta == T(0)) {
    c.setZero();
  } else if (beta != T(1)) {
    c *= beta;
  }
  if (ta == Trans::No && tb == Trans::No) c.noalias() += alpha * a * b;
  else if (ta == Trans::No) c.noalias() += alpha * a * b.transpose();
  else if (tb == Trans::No) c.noalias() += alpha * a.transpose() * b;
  else c.noalias() += alpha * a.transpose() * b.transpose();
}

/// Batched GEMM over `batch` independent products with fixed element strides between batches.
template <class T>
void gemm_batched(Trans ta, Trans tb, index_t batch, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                  index_t strideA, const T* B, index_t ldb, index_t strideB, T beta, T* C, index_t ldc,
                  index_t strideC) {
  for (index_t i = 0; i < batch; ++i)
    gemm(ta, tb, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta, C + i * strideC, ldc);
}

}  // namespace coordiff::backend::cpu
