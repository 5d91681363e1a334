#pragma once
// A ring buffer of multi-agent transitions (o, a, r, o', done) for off-policy learners, sampled with
// Philox keyed by (seed, draw number) so a training run is reproducible.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::rl {

template <class T>
struct TransitionBatch {
  Tensor<T> obs;       ///< [B, A, O]
  Tensor<T> actions;   ///< [B, A, U]
  Tensor<T> rewards;   ///< [B, A]
  Tensor<T> next_obs;  ///< [B, A, O]
  Tensor<T> done;      ///< [B], 1 if o' is terminal (no bootstrap)
};

template <class T>
class ReplayBuffer {
 public:
  ReplayBuffer(index_t capacity, index_t agents, index_t obs_dim, index_t act_dim)
      : cap_(capacity), A_(agents), O_(obs_dim), U_(act_dim) {
    require<ConfigError>(capacity >= 1 && agents >= 1 && obs_dim >= 1 && act_dim >= 1,
                         "ReplayBuffer: capacity, agents, obs_dim and act_dim must be >= 1");
    data_ = {Tensor<T>({cap_, A_, O_}), Tensor<T>({cap_, A_, U_}), Tensor<T>({cap_, A_}), Tensor<T>({cap_, A_, O_}),
             Tensor<T>({cap_})};
  }
  index_t size() const { return size_; }
  index_t capacity() const { return cap_; }

  /// Appends a batch of transitions (shapes as TransitionBatch); overwrites the oldest when full.
  void add(const TransitionBatch<T>& t) {
    const index_t B = t.obs.dim(0);
    require_shape(t.obs.shape(), {B, A_, O_}, "ReplayBuffer::add obs");
    require_shape(t.actions.shape(), {B, A_, U_}, "ReplayBuffer::add actions");
    require_shape(t.rewards.shape(), {B, A_}, "ReplayBuffer::add rewards");
    require_shape(t.next_obs.shape(), {B, A_, O_}, "ReplayBuffer::add next_obs");
    require_shape(t.done.shape(), {B}, "ReplayBuffer::add done");
    for (const Tensor<T>* x : {&t.obs, &t.actions, &t.rewards, &t.next_obs, &t.done}) require_finite(*x, "ReplayBuffer::add");
    for (index_t b = 0; b < B; ++b) {
      copy_row(t.obs, data_.obs, b, next_);
      copy_row(t.actions, data_.actions, b, next_);
      copy_row(t.rewards, data_.rewards, b, next_);
      copy_row(t.next_obs, data_.next_obs, b, next_);
      data_.done[next_] = t.done[b];
      next_ = (next_ + 1) % cap_;
      size_ = std::min(size_ + 1, cap_);
    }
  }

  /// n transitions drawn uniformly with replacement; draw k uses Philox(seed, k).
  TransitionBatch<T> sample(index_t n, std::uint64_t seed, std::uint64_t draw) const {
    require<ConfigError>(size_ > 0 && n >= 1, "ReplayBuffer::sample: ", n, " samples from a buffer of ", size_);
    const Philox gen(seed, draw);
    std::vector<index_t> rows(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i)
      rows[static_cast<std::size_t>(i)] =
          static_cast<index_t>(gen.bits(static_cast<std::uint64_t>(i)) % static_cast<std::uint64_t>(size_));
    return {take_rows(data_.obs, rows), take_rows(data_.actions, rows), take_rows(data_.rewards, rows),
            take_rows(data_.next_obs, rows), take_rows(data_.done, rows)};
  }

 private:
  static void copy_row(const Tensor<T>& from, Tensor<T>& to, index_t i, index_t j) {
    const index_t w = from.size() / from.dim(0);
    std::copy(from.data() + i * w, from.data() + (i + 1) * w, to.data() + j * w);
  }
  index_t cap_, A_, O_, U_, size_ = 0, next_ = 0;
  TransitionBatch<T> data_;
};

}  // namespace coordiff::rl
