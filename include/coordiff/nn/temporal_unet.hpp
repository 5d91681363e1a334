#pragma once
// Temporal U-Net of Diffuser / Decision Diffuser / MADiff: 1-D convolutions over the horizon with
// residual blocks conditioned on a diffusion-step embedding and, optionally, a return embedding used
// for classifier-free guidance (null condition = zero return embedding, as MADiff).
//
// Layout (dims = [F, dim*m0, dim*m1, ...]): per level two residual blocks then a stride-2 down-sampling
// (none on the last level); two mid blocks; per decoder level (one fewer than the encoder) concatenate
// the matching skip, two residual blocks, up-sample; final Conv1dBlock + 1x1 conv. As in the reference
// implementation the finest skip is computed but never consumed.
#include <string>
#include <utility>
#include <vector>

#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/sinusoidal_embedding.hpp"
#include "coordiff/nn/temporal_block.hpp"
#include "coordiff/nn/unet_config.hpp"

namespace coordiff::nn {

namespace detail {
/// [N, C1, L] ++ [N, C2, L] -> [N, C1 + C2, L]
template <class T>
Tensor<T> concat_channels(const Tensor<T>& a, const Tensor<T>& b) {
  require<ShapeError>(a.dim(0) == b.dim(0) && a.dim(2) == b.dim(2), "concat_channels: ", to_string(a.shape()), " vs ",
                      to_string(b.shape()));
  const index_t N = a.dim(0), C1 = a.dim(1), C2 = b.dim(1), L = a.dim(2);
  Tensor<T> r({N, C1 + C2, L});
  for (index_t n = 0; n < N; ++n) {
    std::copy(a.data() + n * C1 * L, a.data() + (n + 1) * C1 * L, r.data() + n * (C1 + C2) * L);
    std::copy(b.data() + n * C2 * L, b.data() + (n + 1) * C2 * L, r.data() + (n * (C1 + C2) + C1) * L);
  }
  return r;
}
/// Inverse of concat_channels for gradients.
template <class T>
std::pair<Tensor<T>, Tensor<T>> split_channels(const Tensor<T>& g, index_t c1) {
  const index_t N = g.dim(0), C = g.dim(1), L = g.dim(2), c2 = C - c1;
  Tensor<T> a({N, c1, L}), b({N, c2, L});
  for (index_t n = 0; n < N; ++n) {
    std::copy(g.data() + n * C * L, g.data() + (n * C + c1) * L, a.data() + n * c1 * L);
    std::copy(g.data() + (n * C + c1) * L, g.data() + (n + 1) * C * L, b.data() + n * c2 * L);
  }
  return {std::move(a), std::move(b)};
}
template <class T>
void add_into(Tensor<T>& a, const Tensor<T>& b) {
  for (index_t i = 0; i < a.size(); ++i) a[i] += b[i];
}
/// Trunk hook that changes nothing (single-agent U-Net).
template <class T>
struct IdentityHook {
  Tensor<T> bottleneck(Tensor<T> x) { return x; }
  Tensor<T> skip(index_t, Tensor<T> h) { return h; }
  Tensor<T> bottleneck_backward(Tensor<T> g) { return g; }
  Tensor<T> skip_backward(index_t, Tensor<T> g) { return g; }
};
}  // namespace detail

template <class T>
class TemporalUNet {
 public:
  TemporalUNet() = default;
  TemporalUNet(const UNetConfig& cfg, Rng& rng, bool with_agent_attention = false) : cfg_(cfg) {
    cfg.validate(with_agent_attention);
    const index_t dim = cfg.dim, E = cfg.embed_dim(), K = cfg.kernel_size, G = cfg.groups;
    time_emb_ = SinusoidalPosEmb<T>(dim);
    time_mlp_ = MLP<T>({dim, 4 * dim, dim}, Activation::Mish, rng, false, /*first_index=*/1);
    if (cfg.returns_condition) returns_mlp_ = MLP<T>({cfg.condition_dim, dim, 4 * dim, dim}, Activation::Mish, rng);
    std::vector<index_t> dims{cfg.transition_dim};
    for (index_t m : cfg.dim_mults) dims.push_back(dim * m);
    const index_t levels = cfg.levels();
    for (index_t i = 0; i < levels; ++i) {
      Level lv;
      lv.res1 = ResidualTemporalBlock<T>(dims[i], dims[i + 1], E, K, rng, G);
      lv.res2 = ResidualTemporalBlock<T>(dims[i + 1], dims[i + 1], E, K, rng, G);
      lv.has_resample = i + 1 < levels;
      if (lv.has_resample) lv.down = Downsample1d<T>(dims[i + 1], rng);
      downs_.push_back(std::move(lv));
    }
    mid1_ = ResidualTemporalBlock<T>(dims.back(), dims.back(), E, K, rng, G);
    mid2_ = ResidualTemporalBlock<T>(dims.back(), dims.back(), E, K, rng, G);
    for (index_t j = levels - 1; j >= 1; --j) {  // reversed(in_out[1:]): (dims[j], dims[j+1])
      UpLevel u;
      u.res1 = ResidualTemporalBlock<T>(2 * dims[j + 1], dims[j], E, K, rng, G);
      u.res2 = ResidualTemporalBlock<T>(dims[j], dims[j], E, K, rng, G);
      u.up = Upsample1d<T>(dims[j], rng);
      u.skip_channels = dims[j + 1];
      ups_.push_back(std::move(u));
    }
    final_block_ = Conv1dBlock<T>(dim, dim, K, rng, G);
    final_conv_ = Conv1d<T>(dim, cfg.transition_dim, 1, rng);
  }

  const UNetConfig& config() const { return cfg_; }

  void collect_parameters(ParameterList<T>& o, const std::string& prefix) {
    time_mlp_.collect_parameters(o, join_name(prefix, "time_mlp"));
    if (cfg_.returns_condition) returns_mlp_.collect_parameters(o, join_name(prefix, "returns_mlp"));
    for (std::size_t i = 0; i < downs_.size(); ++i) {
      const std::string p = join_name(prefix, "downs." + std::to_string(i));
      downs_[i].res1.collect_parameters(o, p + ".0");
      downs_[i].res2.collect_parameters(o, p + ".1");
      if (downs_[i].has_resample) downs_[i].down.collect_parameters(o, p + ".2");
    }
    mid1_.collect_parameters(o, join_name(prefix, "mid_block1"));
    mid2_.collect_parameters(o, join_name(prefix, "mid_block2"));
    for (std::size_t j = 0; j < ups_.size(); ++j) {
      const std::string p = join_name(prefix, "ups." + std::to_string(j));
      ups_[j].res1.collect_parameters(o, p + ".0");
      ups_[j].res2.collect_parameters(o, p + ".1");
      ups_[j].up.collect_parameters(o, p + ".2");
    }
    final_block_.collect_parameters(o, join_name(prefix, "final_conv.0"));
    final_conv_.collect_parameters(o, join_name(prefix, "final_conv.1"));
  }

  /// x [B, H, F], time [B] (diffusion step), returns [B, C] (required iff returns_condition; C = condition_dim),
  /// cond_keep [B]: 1 keeps the return embedding, 0 drops it (classifier-free null condition). -> [B, H, F]
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& time, const Tensor<T>* returns = nullptr,
                    const Tensor<T>* cond_keep = nullptr) {
    require<ShapeError>(x.rank() == 3 && x.dim(1) == cfg_.horizon && x.dim(2) == cfg_.transition_dim,
                        "TemporalUNet: expected x [B, ", cfg_.horizon, ", ", cfg_.transition_dim, "], got ",
                        to_string(x.shape()));
    const Tensor<T> emb = embed(time, returns, cond_keep, x.dim(0));
    detail::IdentityHook<T> hook;
    const Tensor<T> y = trunk_forward(x.view().permute({0, 2, 1}).contiguous(), emb, hook);
    return y.view().permute({0, 2, 1}).contiguous();
  }

  /// dy [B, H, F] -> dx [B, H, F]; accumulates every parameter gradient.
  Tensor<T> backward(const Tensor<T>& dy) {
    detail::IdentityHook<T> hook;
    auto [dx, demb] = trunk_backward(dy.view().permute({0, 2, 1}).contiguous(), hook);
    embed_backward(demb);
    return dx.view().permute({0, 2, 1}).contiguous();
  }

  // ---- pieces shared with MultiAgentUNet -----------------------------------------------------------

  /// Step (+ return) embedding [N, E] for N rows.
  Tensor<T> embed(const Tensor<T>& time, const Tensor<T>* returns, const Tensor<T>* cond_keep, index_t N) {
    require_shape(time.shape(), {N}, "TemporalUNet: diffusion step tensor");
    Tensor<T> t = time_mlp_.forward(time_emb_.forward(time));  // [N, dim]
    if (!cfg_.returns_condition) return t;
    require<ConfigError>(returns != nullptr, "TemporalUNet: returns_condition is on but no returns were given");
    require_shape(returns->shape(), {N, cfg_.condition_dim}, "TemporalUNet: returns");
    Tensor<T> r = returns_mlp_.forward(*returns);  // [N, dim]
    keep_ = Tensor<T>({N}, T(1));
    if (cond_keep) {
      require_shape(cond_keep->shape(), {N}, "TemporalUNet: cond_keep");
      keep_ = *cond_keep;
    }
    const index_t d = cfg_.dim;
    Tensor<T> e({N, 2 * d});
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < d; ++j) {
        e[n * 2 * d + j] = t[n * d + j];
        e[n * 2 * d + d + j] = keep_[n] * r[n * d + j];
      }
    return e;
  }

  void embed_backward(const Tensor<T>& demb) {
    const index_t N = demb.dim(0), d = cfg_.dim;
    if (!cfg_.returns_condition) {
      time_mlp_.backward(demb);
      return;
    }
    Tensor<T> dt({N, d}), dr({N, d});
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < d; ++j) {
        dt[n * d + j] = demb[n * 2 * d + j];
        dr[n * d + j] = keep_[n] * demb[n * 2 * d + d + j];
      }
    time_mlp_.backward(dt);
    returns_mlp_.backward(dr);
  }

  /// x [N, F, H] -> [N, F, H]. The hook may transform the bottleneck and each consumed skip.
  template <class Hook>
  Tensor<T> trunk_forward(Tensor<T> x, const Tensor<T>& emb, Hook& hook) {
    skips_.clear();
    for (auto& lv : downs_) {
      x = lv.res2.forward(lv.res1.forward(x, emb), emb);
      skips_.push_back(x);
      if (lv.has_resample) x = lv.down.forward(x);
    }
    x = hook.bottleneck(mid2_.forward(mid1_.forward(x, emb), emb));
    for (std::size_t j = 0; j < ups_.size(); ++j) {
      auto& u = ups_[j];
      Tensor<T> h = hook.skip(static_cast<index_t>(j), skips_[skips_.size() - 1 - j]);
      u.x_channels = x.dim(1);
      x = u.up.forward(u.res2.forward(u.res1.forward(detail::concat_channels(x, h), emb), emb));
    }
    if (!grad_enabled()) skips_.clear();
    return final_conv_.forward(final_block_.forward(x));
  }

  /// -> {dx [N, F, H], demb [N, E]}
  template <class Hook>
  std::pair<Tensor<T>, Tensor<T>> trunk_backward(const Tensor<T>& dy, Hook& hook) {
    require_cached(!skips_.empty(), "TemporalUNet");
    Tensor<T> g = final_block_.backward(final_conv_.backward(dy));
    Tensor<T> demb;
    auto add_emb = [&](Tensor<T>&& de) {
      if (demb.empty()) demb = std::move(de);
      else detail::add_into(demb, de);
    };
    std::vector<Tensor<T>> dskip(downs_.size());
    for (std::size_t j = ups_.size(); j-- > 0;) {
      auto& u = ups_[j];
      auto [g2, de2] = u.res2.backward(u.up.backward(g));
      add_emb(std::move(de2));
      auto [g1, de1] = u.res1.backward(g2);
      add_emb(std::move(de1));
      auto [gx, gh] = detail::split_channels(g1, u.x_channels);
      dskip[downs_.size() - 1 - j] = hook.skip_backward(static_cast<index_t>(j), std::move(gh));
      g = std::move(gx);
    }
    g = hook.bottleneck_backward(std::move(g));
    {
      auto [gm2, de2] = mid2_.backward(g);
      add_emb(std::move(de2));
      auto [gm1, de1] = mid1_.backward(gm2);
      add_emb(std::move(de1));
      g = std::move(gm1);
    }
    for (std::size_t i = downs_.size(); i-- > 0;) {
      auto& lv = downs_[i];
      if (lv.has_resample) g = lv.down.backward(g);
      if (!dskip[i].empty()) detail::add_into(g, dskip[i]);
      auto [g2, de2] = lv.res2.backward(g);
      add_emb(std::move(de2));
      auto [g1, de1] = lv.res1.backward(g2);
      add_emb(std::move(de1));
      g = std::move(g1);
    }
    return {std::move(g), std::move(demb)};
  }

 private:
  struct Level {
    ResidualTemporalBlock<T> res1, res2;
    Downsample1d<T> down;
    bool has_resample = false;
  };
  struct UpLevel {
    ResidualTemporalBlock<T> res1, res2;
    Upsample1d<T> up;
    index_t skip_channels = 0, x_channels = 0;
  };
  UNetConfig cfg_;
  SinusoidalPosEmb<T> time_emb_;
  MLP<T> time_mlp_, returns_mlp_;
  std::vector<Level> downs_;
  ResidualTemporalBlock<T> mid1_, mid2_;
  std::vector<UpLevel> ups_;
  Conv1dBlock<T> final_block_;
  Conv1d<T> final_conv_;
  std::vector<Tensor<T>> skips_;
  Tensor<T> keep_;
};

}  // namespace coordiff::nn
