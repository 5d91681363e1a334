#pragma once
// MADiff's multi-agent denoiser (SharedConvAttentionDeconv, Zhu et al. 2024): one TemporalUNet shared
// by all agents (agents folded into the batch) plus inter-agent self-attention on the bottleneck and on
// every skip connection the decoder consumes. Each agent has its own return condition and its own
// classifier-free keep flag. Parameter names match the PyTorch state_dict ("net.*", "self_attn.<i>.*").
#include <string>
#include <vector>

#include "coordiff/core/condition.hpp"
#include "coordiff/nn/agent_attention.hpp"
#include "coordiff/nn/temporal_unet.hpp"

namespace coordiff::nn {

template <class T>
class MultiAgentUNet {
 public:
  using value_type = T;
  MultiAgentUNet() = default;
  MultiAgentUNet(const UNetConfig& cfg, index_t n_agents, Rng& rng, index_t attention_heads = 4)
      : agents_(n_agents), net_(cfg, rng, /*with_agent_attention=*/true) {
    require<ConfigError>(n_agents >= 1, "MultiAgentUNet: n_agents must be >= 1, got ", n_agents);
    require<ConfigError>(attention_heads >= 1 && cfg.dim % attention_heads == 0,
                         "MultiAgentUNet: ", attention_heads, " attention heads do not divide ", cfg.dim, " channels");
    // self_attn[0] at the bottleneck, then one per level from the coarsest (MADiff builds one for the
    // finest level too; it is never used but kept so checkpoints load by name).
    const index_t E = cfg.embed_dim();
    std::vector<index_t> chans;
    for (index_t m : cfg.dim_mults) chans.push_back(cfg.dim * m);
    auto build = [&](index_t c) {
      // MADiff: qk = C/16, v = C/4 per head with 4 heads -> total value channels = C.
      return AgentSelfAttention<T>(c, c / 16, c / attention_heads, E, rng, attention_heads);
    };
    attention_.push_back(build(chans.back()));
    for (std::size_t i = chans.size(); i-- > 0;) attention_.push_back(build(chans[i]));
  }

  index_t n_agents() const { return agents_; }
  TemporalUNet<T>& trunk() { return net_; }
  AgentSelfAttention<T>& attention(std::size_t i) { return attention_.at(i); }
  std::size_t attention_count() const { return attention_.size(); }

  void collect_parameters(ParameterList<T>& o, const std::string& prefix) {
    net_.collect_parameters(o, join_name(prefix, "net"));
    for (std::size_t i = 0; i < attention_.size(); ++i)
      attention_[i].collect_parameters(o, join_name(prefix, "self_attn." + std::to_string(i)));
  }

  /// x [B, H, A, F], time [B], returns [B, A] or [B, A, C] (iff returns_condition; C = condition_dim),
  /// cond_keep [B, A] -> [B, H, A, F]
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& time, const Tensor<T>* returns = nullptr,
                    const Tensor<T>* cond_keep = nullptr) {
    const auto& cfg = net_.config();
    // Weights are shared across agents, so any agent count works (e.g. one agent for independent generation).
    require<ShapeError>(x.rank() == 4 && x.dim(1) == cfg.horizon && x.dim(2) >= 1 && x.dim(3) == cfg.transition_dim,
                        "MultiAgentUNet: expected x [B, ", cfg.horizon, ", A, ", cfg.transition_dim,
                        "], got ", to_string(x.shape()));
    seen_agents_ = x.dim(2);
    const index_t B = x.dim(0), BA = B * seen_agents_;
    require_shape(time.shape(), {B}, "MultiAgentUNet: diffusion step tensor");
    Tensor<T> t_rows({BA});
    for (index_t i = 0; i < BA; ++i) t_rows[i] = time[i / seen_agents_];
    Tensor<T> r_rows, k_rows;
    if (returns) {
      const index_t C = cfg.condition_dim;
      if (C == 1 && returns->rank() == 2)
        require_shape(returns->shape(), {B, seen_agents_}, "MultiAgentUNet: returns");
      else
        require_shape(returns->shape(), {B, seen_agents_, C}, "MultiAgentUNet: condition values");
      r_rows = returns->reshape({BA, C});
    }
    if (cond_keep) {
      require_shape(cond_keep->shape(), {B, seen_agents_}, "MultiAgentUNet: cond_keep");
      k_rows = cond_keep->reshape({BA});
    }
    emb_ = net_.embed(t_rows, returns ? &r_rows : nullptr, cond_keep ? &k_rows : nullptr, BA);
    batch_ = B;
    Hook hook{*this};
    // [B, H, A, F] -> [B, A, F, H] -> [(B A), F, H]
    Tensor<T> xr = x.view().permute({0, 2, 3, 1}).contiguous().reshape({BA, cfg.transition_dim, cfg.horizon});
    Tensor<T> y = net_.trunk_forward(std::move(xr), emb_, hook);
    return y.reshape({B, seen_agents_, cfg.transition_dim, cfg.horizon}).view().permute({0, 3, 1, 2}).contiguous();
  }

  /// The Denoiser interface (coordiff::denoiser::Denoiser): x_k [B, H, A, F], k [B], the condition's
  /// value is the per-agent return and its keep flags select the classifier-free null path.
  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& k, const Condition<T>& c) {
    const bool returns = net_.config().returns_condition;
    require<ConfigError>(returns || !c.has_value(), "MultiAgentUNet: a condition value was given but the network was "
                         "built without returns_condition");
    return forward(x, k, returns ? &c.value : nullptr, returns && !c.keep.empty() ? &c.keep : nullptr);
  }

  /// dy [B, H, A, F] -> dx [B, H, A, F]; accumulates every parameter gradient.
  Tensor<T> backward(const Tensor<T>& dy) {
    const auto& cfg = net_.config();
    const index_t BA = batch_ * seen_agents_;
    require_shape(dy.shape(), {batch_, cfg.horizon, seen_agents_, cfg.transition_dim}, "MultiAgentUNet::backward dy");
    demb_attention_ = Tensor<T>::zeros_like(emb_);
    Hook hook{*this};
    Tensor<T> g = dy.view().permute({0, 2, 3, 1}).contiguous().reshape({BA, cfg.transition_dim, cfg.horizon});
    auto [dx, demb] = net_.trunk_backward(g, hook);
    detail::add_into(demb, demb_attention_);
    net_.embed_backward(demb);
    return dx.reshape({batch_, seen_agents_, cfg.transition_dim, cfg.horizon}).view().permute({0, 3, 1, 2}).contiguous();
  }

 private:
  // Inserts agent attention into the shared trunk; tensors there are [(B A), C, L].
  struct Hook {
    MultiAgentUNet& m;
    Tensor<T> attend(AgentSelfAttention<T>& attn, Tensor<T> x) {
      const index_t C = x.dim(1), L = x.dim(2);
      const Tensor<T> e = m.emb_.reshape({m.batch_, m.seen_agents_, m.emb_.dim(1)});
      return attn.forward(std::move(x).reshape({m.batch_, m.seen_agents_, C, L}), e).reshape({m.batch_ * m.seen_agents_, C, L});
    }
    Tensor<T> attend_backward(AgentSelfAttention<T>& attn, Tensor<T> g) {
      const index_t C = g.dim(1), L = g.dim(2);
      auto [dx, de] = attn.backward(std::move(g).reshape({m.batch_, m.seen_agents_, C, L}));
      detail::add_into(m.demb_attention_, de.reshape(m.emb_.shape()));
      return std::move(dx).reshape({m.batch_ * m.seen_agents_, C, L});
    }
    Tensor<T> bottleneck(Tensor<T> x) { return attend(m.attention_[0], std::move(x)); }
    Tensor<T> skip(index_t j, Tensor<T> h) { return attend(m.attention_[static_cast<std::size_t>(j) + 1], std::move(h)); }
    Tensor<T> bottleneck_backward(Tensor<T> g) { return attend_backward(m.attention_[0], std::move(g)); }
    Tensor<T> skip_backward(index_t j, Tensor<T> g) {
      return attend_backward(m.attention_[static_cast<std::size_t>(j) + 1], std::move(g));
    }
  };

  index_t agents_ = 1, seen_agents_ = 1;
  TemporalUNet<T> net_;
  std::vector<AgentSelfAttention<T>> attention_;
  Tensor<T> emb_, demb_attention_;
  index_t batch_ = 0;
};

}  // namespace coordiff::nn
