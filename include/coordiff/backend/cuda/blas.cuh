#pragma once
// cuBLAS behind a row-major interface with the same argument order as backend::cpu::gemm, so a layer
// written against one reads the same against the other.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "coordiff/backend/cuda/runtime.cuh"

namespace coordiff::backend::cuda {

inline void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS: ") + what + " failed: " + cublasGetStatusName(status) + " (" +
                cublasGetStatusString(status) + ")");
}

enum class Trans { No, Yes };

/// Owns a cuBLAS handle bound to one stream. TF32 tensor-core math for float is opt-in (`allow_tf32`):
/// it trades about three decimal digits for speed, beyond the parity tolerance.
class Blas {
 public:
  explicit Blas(cudaStream_t stream = nullptr, bool allow_tf32 = false) : stream_(stream) {
    check_cublas(cublasCreate(&handle_), "cublasCreate");
    check_cublas(cublasSetStream(handle_, stream_), "cublasSetStream");
    check_cublas(cublasSetMathMode(handle_, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                 "cublasSetMathMode");
    // Graph capture forbids the allocation cuBLAS would otherwise make on first use: give it a workspace.
    workspace_bytes_ = 32u << 20;
    check(cudaMalloc(&workspace_, workspace_bytes_), "cudaMalloc (cuBLAS workspace)");
    check_cublas(cublasSetWorkspace(handle_, workspace_, workspace_bytes_), "cublasSetWorkspace");
  }
  ~Blas() {
    if (handle_) cublasDestroy(handle_);
    if (workspace_) cudaFree(workspace_);
  }
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  cublasHandle_t handle() const { return handle_; }
  cudaStream_t stream() const { return stream_; }

  /// Row-major C[M, N] = alpha * op(A) * op(B) + beta * C; lda/ldb/ldc are row strides (elements).
  /// Row-major C is column-major C^T = op(B)^T op(A)^T, so the operands swap places.
  template <class T>
  void gemm(Trans ta, Trans tb, long long M, long long N, long long K, T alpha, const T* A, long long lda, const T* B,
            long long ldb, T beta, T* C, long long ldc) const {
    if (M == 0 || N == 0) return;
    const cublasOperation_t opa = ta == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t opb = tb == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
    if constexpr (std::is_same_v<T, float>)
      check_cublas(cublasSgemm(handle_, opb, opa, m, n, k, &alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda),
                               &beta, C, static_cast<int>(ldc)),
                   "cublasSgemm");
    else
      check_cublas(cublasDgemm(handle_, opb, opa, m, n, k, &alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda),
                               &beta, C, static_cast<int>(ldc)),
                   "cublasDgemm");
  }

 private:
  cublasHandle_t handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
};

}  // namespace coordiff::backend::cuda
