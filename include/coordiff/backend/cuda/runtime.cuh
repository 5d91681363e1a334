#pragma once
// CUDA runtime helpers: error checking into coordiff::Error, device presence, RAII device buffers.
// Compiled only by nvcc; keeps Eigen out (principle 3 in DESIGN.md).
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"

namespace coordiff::backend::cuda {

/// Throws coordiff::Error naming the call and CUDA's message when `status` is not cudaSuccess.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw Error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorName(status) + " (" +
                cudaGetErrorString(status) + ")");
}

/// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

/// Owning device allocation of `n` elements of T.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    if (n_) check(cudaMalloc(reinterpret_cast<void**>(&ptr_), n_ * sizeof(T)), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), n_(o.n_) { o.ptr_ = nullptr, o.n_ = 0; }

  T* data() const { return ptr_; }
  std::size_t size() const { return n_; }
  std::vector<T> to_host() const {
    std::vector<T> h(n_);
    if (n_) check(cudaMemcpy(h.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    return h;
  }
  void from_host(const T* src, std::size_t n) {
    require<ShapeError>(n == n_, "DeviceBuffer::from_host: ", n, " elements for a buffer of ", n_);
    if (n_) check(cudaMemcpy(ptr_, src, n_ * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }

 private:
  T* ptr_ = nullptr;
  std::size_t n_ = 0;
};

/// Owning non-blocking CUDA stream; waits for its work before it is destroyed.
class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags"); }
  ~Stream() {
    if (s_) {
      cudaStreamSynchronize(s_);
      cudaStreamDestroy(s_);
    }
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void synchronize() const { check(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

 private:
  cudaStream_t s_ = nullptr;
};

}  // namespace coordiff::backend::cuda
