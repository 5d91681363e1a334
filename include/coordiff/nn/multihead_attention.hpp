#pragma once
// Multi-head scaled dot-product self-attention (Vaswani et al. 2017, eq. 1) along a chosen axis, with
// torch.nn.MultiheadAttention's parameters (in_proj_weight/bias, out_proj). The feature axis is last;
// every axis other than the sequence axis is a batch axis, so the same module attends over time
// (x [B, T, A, E], axis 1) or over agents (axis 2). An optional key-padding mask hides keys (e.g.
// absent agents) exactly as torch's key_padding_mask does: their logits become -inf before softmax.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "coordiff/backend/cpu/gemm.hpp"
#include "coordiff/backend/cpu/softmax.hpp"
#include "coordiff/nn/init.hpp"
#include "coordiff/nn/linear.hpp"

namespace coordiff::nn {

template <class T>
class MultiheadSelfAttention {
 public:
  MultiheadSelfAttention() = default;
  /// bias = false drops in_proj_bias and out_proj.bias, as torch's bias=False does.
  MultiheadSelfAttention(index_t embed_dim, index_t num_heads, Rng& rng, bool bias = true)
      : e_(checked_embed_dim(embed_dim, num_heads)), h_(num_heads), has_bias_(bias),
        in_w_(Shape{3 * embed_dim, embed_dim}), out_(embed_dim, embed_dim, rng, bias) {
    const T bound = std::sqrt(T(6) / static_cast<T>(4 * embed_dim));  // xavier_uniform on [3E, E]
    in_w_.value = rng.uniform<T>(in_w_.shape(), -bound, bound);
    if (has_bias_) {
      in_b_ = Parameter<T>(Shape{3 * embed_dim});  // torch zero-initialises both biases
      out_.bias().value.set_zero();
    }
  }

  index_t embed_dim() const { return e_; }
  index_t num_heads() const { return h_; }

  void collect_parameters(ParameterList<T>& o, const std::string& prefix) {
    o.push_back({join_name(prefix, "in_proj_weight"), &in_w_});
    if (has_bias_) o.push_back({join_name(prefix, "in_proj_bias"), &in_b_});
    out_.collect_parameters(o, join_name(prefix, "out_proj"));
  }
  /// Attention weights of the last forward: [batch, heads, S, S], batch = the non-sequence axes in order.
  const Tensor<T>& attention_weights() const { return attn_; }

  /// x [..., E]; attention runs along `seq_axis` (not the last axis). key_padding_mask, if given, has
  /// x's shape without the feature axis; a nonzero entry hides that position as a key (it still gets an
  /// output as a query). Every sequence needs at least one visible key (torch would return NaN).
  Tensor<T> forward(const Tensor<T>& x, index_t seq_axis, const Tensor<std::uint8_t>* key_padding_mask = nullptr) {
    require<ShapeError>(x.rank() >= 2 && x.dim(-1) == e_, "MultiheadSelfAttention: expected [..., ", e_, "], got ",
                        to_string(x.shape()));
    cached_ = false;  // a forward that throws below must not leave an older cache usable
    const std::size_t r = x.rank(), ax = normalize_axis(seq_axis, r, "MultiheadSelfAttention seq_axis");
    require<ShapeError>(ax + 1 < r, "MultiheadSelfAttention: the sequence axis cannot be the feature axis");
    perm_.clear();
    for (std::size_t i = 0; i + 1 < r; ++i)
      if (i != ax) perm_.push_back(i);
    perm_.push_back(ax);
    perm_.push_back(r - 1);
    in_shape_ = x.shape();
    Tensor<T> xs = x.view().permute(perm_).contiguous();
    s_ = x.dim(static_cast<index_t>(ax));
    require<ShapeError>(s_ > 0, "MultiheadSelfAttention: empty sequence axis in ", to_string(x.shape()));
    n_ = x.size() / (s_ * e_);
    xs.reshape_inplace({n_ * s_, e_});
    const Tensor<std::uint8_t> mask = permuted_mask(key_padding_mask);
    qkv_ = Tensor<T>({n_ * s_, 3 * e_});
    if (has_bias_)
      for (index_t i = 0; i < n_ * s_; ++i) std::copy(in_b_.value.begin(), in_b_.value.end(), qkv_.data() + i * 3 * e_);
    using backend::cpu::Trans;
    backend::cpu::gemm(Trans::No, Trans::Yes, n_ * s_, 3 * e_, e_, T(1), xs.data(), e_, in_w_.value.data(), e_,
                       has_bias_ ? T(1) : T(0), qkv_.data(), 3 * e_);
    const index_t d = e_ / h_;
    const T scale = T(1) / std::sqrt(static_cast<T>(d));
    attn_ = Tensor<T>({n_, h_, s_, s_});
    Tensor<T> o({n_ * s_, e_});
    for (index_t n = 0; n < n_; ++n)
      for (index_t h = 0; h < h_; ++h) {
        const T* base = qkv_.data() + n * s_ * 3 * e_;
        T* P = attn_.data() + (n * h_ + h) * s_ * s_;
        backend::cpu::gemm(Trans::No, Trans::Yes, s_, s_, d, scale, base + h * d, 3 * e_, base + e_ + h * d, 3 * e_, T(0), P, s_);
        // A hidden key gets probability exactly 0, so softmax backward also gives it zero gradient.
        if (mask.size())
          for (index_t j = 0; j < s_; ++j)
            if (mask[n * s_ + j])
              for (index_t i = 0; i < s_; ++i) P[i * s_ + j] = -std::numeric_limits<T>::infinity();
        backend::cpu::softmax_rows(P, s_, s_);
        backend::cpu::gemm(Trans::No, Trans::No, s_, d, s_, T(1), P, s_, base + 2 * e_ + h * d, 3 * e_, T(0),
                           o.data() + n * s_ * e_ + h * d, e_);
      }
    // Always refresh the flag: qkv_/attn_ now belong to this forward, so an older cache is stale.
    cached_ = grad_enabled();
    xs_ = cached_ ? std::move(xs) : Tensor<T>();
    Tensor<T> y = out_.forward(o);
    return unpermute(std::move(y));
  }

  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "MultiheadSelfAttention");
    require_shape(dy.shape(), in_shape_, "MultiheadSelfAttention::backward dy");
    Tensor<T> dys = dy.view().permute(perm_).contiguous();
    dys.reshape_inplace({n_ * s_, e_});
    Tensor<T> dout = out_.backward(dys);  // gradient w.r.t. the concatenated heads
    const index_t d = e_ / h_;
    const T scale = T(1) / std::sqrt(static_cast<T>(d));
    Tensor<T> dqkv({n_ * s_, 3 * e_}), dP({s_, s_});
    using backend::cpu::Trans;
    for (index_t n = 0; n < n_; ++n)
      for (index_t h = 0; h < h_; ++h) {
        const T* base = qkv_.data() + n * s_ * 3 * e_;
        T* dbase = dqkv.data() + n * s_ * 3 * e_;
        const T* P = attn_.data() + (n * h_ + h) * s_ * s_;
        const T* dO = dout.data() + n * s_ * e_ + h * d;
        backend::cpu::gemm(Trans::No, Trans::Yes, s_, s_, d, T(1), dO, e_, base + 2 * e_ + h * d, 3 * e_, T(0), dP.data(), s_);
        backend::cpu::gemm(Trans::Yes, Trans::No, s_, d, s_, T(1), P, s_, dO, e_, T(0), dbase + 2 * e_ + h * d, 3 * e_);
        backend::cpu::softmax_rows_backward(P, dP.data(), s_, s_);
        backend::cpu::gemm(Trans::No, Trans::No, s_, d, s_, scale, dP.data(), s_, base + e_ + h * d, 3 * e_, T(0), dbase + h * d, 3 * e_);
        backend::cpu::gemm(Trans::Yes, Trans::No, s_, d, s_, scale, dP.data(), s_, base + h * d, 3 * e_, T(0),
                           dbase + e_ + h * d, 3 * e_);
      }
    Tensor<T> dx({n_ * s_, e_});
    backend::cpu::gemm(Trans::No, Trans::No, n_ * s_, e_, 3 * e_, T(1), dqkv.data(), 3 * e_, in_w_.value.data(), e_, T(0),
                       dx.data(), e_);
    backend::cpu::gemm(Trans::Yes, Trans::No, 3 * e_, e_, n_ * s_, T(1), dqkv.data(), 3 * e_, xs_.data(), e_, T(1),
                       in_w_.grad.data(), e_);
    if (has_bias_)
      for (index_t i = 0; i < n_ * s_; ++i)
        for (index_t j = 0; j < 3 * e_; ++j) in_b_.grad[j] += dqkv[i * 3 * e_ + j];
    return unpermute(std::move(dx));
  }

 private:
  static index_t checked_embed_dim(index_t e, index_t h) {
    require<ConfigError>(e > 0 && h > 0 && e % h == 0, "MultiheadSelfAttention: ", h, " heads do not divide embed_dim ",
                         e);
    return e;
  }

  /// The caller's mask [..., S] (x's shape minus features) reordered to [batch, S] like the input rows;
  /// empty when there is no mask. Rejects sequences whose keys are all hidden.
  Tensor<std::uint8_t> permuted_mask(const Tensor<std::uint8_t>* m) const {
    if (!m) return {};
    const Shape want(in_shape_.begin(), in_shape_.end() - 1);
    require_shape(m->shape(), want, "MultiheadSelfAttention key_padding_mask");
    const std::vector<std::size_t> p(perm_.begin(), perm_.end() - 1);  // perm_ without the feature axis
    Tensor<std::uint8_t> out = m->view().permute(p).contiguous();
    for (index_t n = 0; n < n_; ++n) {
      bool any_visible = false;
      for (index_t j = 0; j < s_; ++j) any_visible = any_visible || out[n * s_ + j] == 0;
      require<NumericError>(any_visible, "MultiheadSelfAttention: key_padding_mask hides every key of sequence ", n,
                            " (softmax would be undefined)");
    }
    return out;
  }

  /// [(batch) * S, E] in permuted order -> the caller's layout.
  Tensor<T> unpermute(Tensor<T> y) const {
    Shape ps;
    for (std::size_t p : perm_) ps.push_back(in_shape_[p]);
    y.reshape_inplace(ps);
    std::vector<std::size_t> inv(perm_.size());
    for (std::size_t i = 0; i < perm_.size(); ++i) inv[perm_[i]] = i;
    return y.view().permute(inv).contiguous();
  }

  index_t e_ = 0, h_ = 1;
  bool has_bias_ = true;
  Parameter<T> in_w_, in_b_;
  Linear<T> out_;
  std::vector<std::size_t> perm_;
  Shape in_shape_;
  index_t n_ = 0, s_ = 0;
  Tensor<T> xs_, qkv_, attn_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
