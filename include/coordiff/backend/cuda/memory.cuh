#pragma once
// Device memory: a caching pool (freed blocks are kept by size and handed out again, so a sampling loop
// that asks for the same buffers every step calls cudaMalloc only in its first step) and an owning
// array that returns its block to the pool.
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

#include "coordiff/backend/cuda/runtime.cuh"

namespace coordiff::backend::cuda {

/// Process-wide cache of device blocks on the current device. Sizes are rounded up (512 B below 1 MiB,
/// then to 1/8 of the next power of two) so that nearby sizes share blocks.
class DevicePool {
 public:
  static DevicePool& instance() {
    static DevicePool pool;
    return pool;
  }
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  static std::size_t rounded(std::size_t bytes) {
    if (bytes <= (std::size_t(1) << 20)) return (bytes + 511) / 512 * 512;
    std::size_t p = std::size_t(1) << 20;
    while (p < bytes) p <<= 1;
    const std::size_t step = p / 8;  // p/2 < bytes <= p: round to the next eighth of p
    return (bytes + step - 1) / step * step;
  }

  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const std::size_t size = rounded(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    ++grants_;
    auto it = free_.find(size);
    if (it != free_.end()) {
      void* p = it->second;
      free_.erase(it);
      cached_ -= size;
      in_use_ += size;
      return p;
    }
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation) {  // give the cache back to the driver and try once more
      cudaGetLastError();
      release_cached_locked();
      status = cudaMalloc(&p, size);
    }
    check(status, "cudaMalloc (DevicePool)");
    ++device_allocations_;
    in_use_ += size;
    return p;
  }

  void release(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    const std::size_t size = rounded(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    free_.emplace(size, p);
    cached_ += size;
    in_use_ -= size;
  }

  /// Frees every cached (unused) block.
  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

  std::size_t bytes_in_use() const { return in_use_; }
  std::size_t bytes_cached() const { return cached_; }
  /// cudaMalloc calls made so far: constant across steps once a loop reaches its steady state.
  std::size_t device_allocations() const { return device_allocations_; }
  /// Blocks handed out so far (cached or new). Unchanged between two moments means no buffer anywhere
  /// moved, so a CUDA graph recorded at the first is still valid at the second.
  std::size_t grants() const { return grants_; }

 private:
  DevicePool() = default;
  ~DevicePool() = default;  // blocks outlive the pool's users; the driver reclaims them at exit
  void release_cached_locked() {
    for (auto& [size, p] : free_) cudaFree(p);
    free_.clear();
    cached_ = 0;
  }
  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;
  std::size_t in_use_ = 0, cached_ = 0, device_allocations_ = 0, grants_ = 0;
};

/// Owning array of `n` T on the device, from the pool. `ensure(n)` keeps the block when it is big
/// enough, so layer buffers keep stable addresses while the batch size does not grow.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t n) { ensure(n); }
  ~DeviceArray() { reset(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : ptr_(o.ptr_), n_(o.n_), capacity_(o.capacity_) {
    o.ptr_ = nullptr, o.n_ = o.capacity_ = 0;
  }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = o.ptr_, n_ = o.n_, capacity_ = o.capacity_;
      o.ptr_ = nullptr, o.n_ = o.capacity_ = 0;
    }
    return *this;
  }

  /// Makes room for n elements; the contents are kept only when no reallocation was needed.
  T* ensure(std::size_t n) {
    if (n > capacity_) {
      reset();
      ptr_ = static_cast<T*>(DevicePool::instance().allocate(n * sizeof(T)));
      capacity_ = n;
    }
    n_ = n;
    return ptr_;
  }
  void reset() noexcept {
    if (ptr_) DevicePool::instance().release(ptr_, capacity_ * sizeof(T));
    ptr_ = nullptr, n_ = capacity_ = 0;
  }

  T* data() const { return ptr_; }
  std::size_t size() const { return n_; }

  void upload(const T* host, std::size_t n, cudaStream_t stream = nullptr) {
    ensure(n);
    if (n) check(cudaMemcpyAsync(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync H2D");
  }
  void upload(const std::vector<T>& host, cudaStream_t stream = nullptr) { upload(host.data(), host.size(), stream); }
  /// Copies the first n elements to the host and waits for them.
  void download(T* host, std::size_t n, cudaStream_t stream = nullptr) const {
    require<ShapeError>(n <= n_, "DeviceArray::download: ", n, " elements requested from an array of ", n_);
    if (n) check(cudaMemcpyAsync(host, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync D2H");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
  std::vector<T> to_host(cudaStream_t stream = nullptr) const {
    std::vector<T> h(n_);
    download(h.data(), n_, stream);
    return h;
  }

 private:
  T* ptr_ = nullptr;
  std::size_t n_ = 0, capacity_ = 0;
};

}  // namespace coordiff::backend::cuda
