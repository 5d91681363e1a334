#pragma once
// Inter-agent self-attention of MADiff (Zhu et al. 2024, "TemporalSelfAttention"): tokens are agents,
// each head's feature vector is its (channels/heads x horizon) slice of the temporal feature map, and
// queries/keys/values get an additive diffusion-step/condition embedding. The residual gate gamma
// starts at 0, so a freshly initialised network ignores other agents.
#include <cmath>
#include <string>
#include <utility>

#include "coordiff/backend/cpu/gemm.hpp"
#include "coordiff/backend/cpu/softmax.hpp"
#include "coordiff/nn/activations.hpp"
#include "coordiff/nn/conv1d.hpp"
#include "coordiff/nn/linear.hpp"

namespace coordiff::nn {

template <class T>
class AgentSelfAttention {
 public:
  AgentSelfAttention() = default;
  AgentSelfAttention(index_t channels, index_t qk_channels, index_t v_channels, index_t embed_dim, Rng& rng,
                     index_t heads = 4, bool residual = true)
      : c_(checked_channels(channels, qk_channels, v_channels, embed_dim, heads)), qk_(qk_channels), v_(v_channels),
        e_(embed_dim), heads_(heads), residual_(residual),
        query_(channels, qk_channels * heads, 1, rng), key_(channels, qk_channels * heads, 1, rng),
        value_(channels, v_channels * heads, 1, rng), query_time_(embed_dim, qk_channels * heads, rng),
        key_time_(embed_dim, qk_channels * heads, rng), value_time_(embed_dim, v_channels * heads, rng),
        gamma_(Shape{1}) {}

  /// The residual gate (shape [1], initialised to 0); unused, and not a parameter, when residual = false.
  Parameter<T>& gamma() { return gamma_; }
  index_t channels() const { return c_; }
  index_t heads() const { return heads_; }
  bool residual() const { return residual_; }
  /// Softmax weights of the last forward: [B, heads, A (query agent), A (key agent)].
  const Tensor<T>& attention_weights() const { return attn_; }

  void collect_parameters(ParameterList<T>& out, const std::string& prefix) {
    query_.collect_parameters(out, join_name(prefix, "query_layer"));
    key_.collect_parameters(out, join_name(prefix, "key_layer"));
    value_.collect_parameters(out, join_name(prefix, "value_layer"));
    query_time_.collect_parameters(out, join_name(prefix, "query_time_mlp.1"));
    key_time_.collect_parameters(out, join_name(prefix, "key_time_mlp.1"));
    value_time_.collect_parameters(out, join_name(prefix, "value_time_mlp.1"));
    if (residual_) out.push_back({join_name(prefix, "gamma"), &gamma_});
  }

  /// x [B, A, C, L], emb [B, A, E] -> [B, A, C, L]
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& emb) {
    require<ShapeError>(x.rank() == 4 && x.dim(2) == c_, "AgentSelfAttention: expected x [B, A, ", c_, ", L], got ",
                        to_string(x.shape()));
    require<ShapeError>(emb.rank() == 3 && emb.dim(0) == x.dim(0) && emb.dim(1) == x.dim(1),
                        "AgentSelfAttention: expected emb [B, A, E] matching x ", to_string(x.shape()), ", got ",
                        to_string(emb.shape()));
    require<ShapeError>(emb.dim(2) == e_, "AgentSelfAttention: expected embedding width ", e_, ", got ",
                        to_string(emb.shape()));
    require<ShapeError>(x.dim(1) > 0 && x.dim(3) > 0, "AgentSelfAttention: needs at least one agent and one step, got ",
                        to_string(x.shape()));
    cached_ = false;
    b_ = x.dim(0), a_ = x.dim(1), l_ = x.dim(3);
    const index_t BA = b_ * a_;
    const Tensor<T> xf = x.reshape({BA, c_, l_});
    emb_ = emb.reshape({BA, emb.dim(2)});
    Tensor<T> memb(emb_.shape());
    mish_forward(emb_.data(), memb.data(), memb.size());
    q_ = add_time(query_.forward(xf), query_time_.forward(memb));
    k_ = add_time(key_.forward(xf), key_time_.forward(memb));
    v_t_ = add_time(value_.forward(xf), value_time_.forward(memb));
    const index_t dq = qk_ * l_, dv = v_ * l_;
    const T scale = T(1) / std::sqrt(static_cast<T>(dq));
    attn_.resize({b_, heads_, a_, a_}, false);
    out_.resize({BA, c_, l_}, true);
    using backend::cpu::Trans;
    for (index_t b = 0; b < b_; ++b)
      for (index_t h = 0; h < heads_; ++h) {
        T* P = attn_.data() + (b * heads_ + h) * a_ * a_;
        // Rows are agents: agent a of head h starts at ((b*A + a) * ch + h*d) * L, row stride ch * L.
        backend::cpu::gemm(Trans::No, Trans::Yes, a_, a_, dq, scale, q_.data() + (b * a_ * qk_ * heads_ + h * qk_) * l_,
                           qk_ * heads_ * l_, k_.data() + (b * a_ * qk_ * heads_ + h * qk_) * l_, qk_ * heads_ * l_, T(0),
                           P, a_);
        backend::cpu::softmax_rows(P, a_, a_);
        backend::cpu::gemm(Trans::No, Trans::No, a_, dv, a_, T(1), P, a_,
                           v_t_.data() + (b * a_ * c_ + h * v_) * l_, c_ * l_, T(0),
                           out_.data() + (b * a_ * c_ + h * v_) * l_, c_ * l_);
      }
    Tensor<T> y(x.shape());
    const T g = residual_ ? gamma_.value[0] : T(1);
    for (index_t i = 0; i < y.size(); ++i) y[i] = (residual_ ? x[i] : T(0)) + g * out_[i];
    cached_ = grad_enabled();
    if (!cached_) q_ = k_ = v_t_ = out_ = Tensor<T>();
    return y;
  }

  /// dy [B, A, C, L] -> {dx [B, A, C, L], demb [B, A, E]}
  std::pair<Tensor<T>, Tensor<T>> backward(const Tensor<T>& dy) {
    require_cached(cached_, "AgentSelfAttention");
    const index_t BA = b_ * a_;
    require_shape(dy.shape(), {b_, a_, c_, l_}, "AgentSelfAttention::backward dy");
    const T g = residual_ ? gamma_.value[0] : T(1);
    Tensor<T> dout(out_.shape());
    T dgamma = 0;
    for (index_t i = 0; i < dy.size(); ++i) {
      dout[i] = g * dy[i];
      dgamma += dy[i] * out_[i];
    }
    if (residual_) gamma_.grad[0] += dgamma;
    Tensor<T> dq(q_.shape()), dk(k_.shape()), dv(v_t_.shape());
    const index_t dqk = qk_ * l_, dvl = v_ * l_, qs = qk_ * heads_ * l_;
    const T scale = T(1) / std::sqrt(static_cast<T>(dqk));
    Tensor<T> dP({a_, a_});
    using backend::cpu::Trans;
    for (index_t b = 0; b < b_; ++b)
      for (index_t h = 0; h < heads_; ++h) {
        const T* P = attn_.data() + (b * heads_ + h) * a_ * a_;
        const index_t vo = (b * a_ * c_ + h * v_) * l_, qo = (b * a_ * qk_ * heads_ + h * qk_) * l_;
        // out = P V:  dP = dout V^T,  dV = P^T dout
        backend::cpu::gemm(Trans::No, Trans::Yes, a_, a_, dvl, T(1), dout.data() + vo, c_ * l_, v_t_.data() + vo, c_ * l_,
                           T(0), dP.data(), a_);
        backend::cpu::gemm(Trans::Yes, Trans::No, a_, dvl, a_, T(1), P, a_, dout.data() + vo, c_ * l_, T(0),
                           dv.data() + vo, c_ * l_);
        // softmax backward: dS = P * (dP - sum_j dP*P), then dots = scale * Q K^T
        backend::cpu::softmax_rows_backward(P, dP.data(), a_, a_);
        backend::cpu::gemm(Trans::No, Trans::No, a_, dqk, a_, scale, dP.data(), a_, k_.data() + qo, qs, T(0),
                           dq.data() + qo, qs);
        backend::cpu::gemm(Trans::Yes, Trans::No, a_, dqk, a_, scale, dP.data(), a_, q_.data() + qo, qs, T(0),
                           dk.data() + qo, qs);
      }
    Tensor<T> dx = query_.backward(dq);
    accumulate(dx, key_.backward(dk));
    accumulate(dx, value_.backward(dv));
    Tensor<T> dmemb = query_time_.backward(sum_over_time(dq));
    accumulate(dmemb, key_time_.backward(sum_over_time(dk)));
    accumulate(dmemb, value_time_.backward(sum_over_time(dv)));
    Tensor<T> demb(emb_.shape());
    mish_backward(emb_.data(), dmemb.data(), demb.data(), demb.size());
    if (residual_) accumulate(dx, dy.reshape({BA, c_, l_}));
    return {std::move(dx).reshape({b_, a_, c_, l_}), std::move(demb).reshape({b_, a_, emb_.dim(1)})};
  }

 private:
  static index_t checked_channels(index_t c, index_t qk, index_t v, index_t e, index_t heads) {
    require<ConfigError>(c > 0 && qk > 0 && v > 0 && e > 0 && heads > 0, "AgentSelfAttention: sizes must be positive, got "
                         "channels=", c, " qk=", qk, " v=", v, " embed_dim=", e, " heads=", heads);
    require<ConfigError>(v * heads == c, "AgentSelfAttention: v_channels*heads (", v * heads, ") must equal channels (", c,
                         ") to reshape the output back");
    return c;
  }

  /// proj [N, ch, L] += temb [N, ch] broadcast over L
  static Tensor<T> add_time(Tensor<T> proj, const Tensor<T>& temb) {
    const index_t N = proj.dim(0), ch = proj.dim(1), L = proj.dim(2);
    for (index_t n = 0; n < N; ++n)
      for (index_t c = 0; c < ch; ++c)
        for (index_t l = 0; l < L; ++l) proj[(n * ch + c) * L + l] += temb[n * ch + c];
    return proj;
  }
  static Tensor<T> sum_over_time(const Tensor<T>& g) {
    const index_t N = g.dim(0), ch = g.dim(1), L = g.dim(2);
    Tensor<T> s({N, ch});
    for (index_t i = 0; i < N * ch; ++i)
      for (index_t l = 0; l < L; ++l) s[i] += g[i * L + l];
    return s;
  }
  static void accumulate(Tensor<T>& a, const Tensor<T>& b) {
    for (index_t i = 0; i < a.size(); ++i) a[i] += b[i];
  }

  index_t c_ = 0, qk_ = 0, v_ = 0, e_ = 0, heads_ = 4;
  bool residual_ = true;
  Conv1d<T> query_, key_, value_;
  Linear<T> query_time_, key_time_, value_time_;
  Parameter<T> gamma_;
  index_t b_ = 0, a_ = 0, l_ = 0;
  Tensor<T> emb_, q_, k_, v_t_, attn_, out_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
