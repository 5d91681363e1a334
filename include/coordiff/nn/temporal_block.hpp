#pragma once
// Building blocks of the Diffuser/MADiff temporal U-Net (Janner et al. 2022): Conv1d -> GroupNorm -> Mish
// blocks, residual blocks conditioned on an embedding, and stride-2 down/up-sampling.
#include <string>
#include <utility>

#include "coordiff/nn/activations.hpp"
#include "coordiff/nn/conv1d.hpp"
#include "coordiff/nn/conv_transpose1d.hpp"
#include "coordiff/nn/group_norm.hpp"
#include "coordiff/nn/linear.hpp"

namespace coordiff::nn {

/// Conv1d(k, padding k/2) -> GroupNorm(groups) -> Mish; PyTorch names block.0 (conv) and block.2 (norm).
template <class T>
class Conv1dBlock {
 public:
  Conv1dBlock() = default;
  Conv1dBlock(index_t in, index_t out, index_t kernel, Rng& rng, index_t groups = 8)
      : conv_(in, out, kernel, rng, 1, kernel / 2), norm_(groups, out) {}
  void collect_parameters(ParameterList<T>& o, const std::string& prefix) {
    conv_.collect_parameters(o, join_name(prefix, "block.0"));
    norm_.collect_parameters(o, join_name(prefix, "block.2"));
  }
  Tensor<T> forward(const Tensor<T>& x) { return act_.forward(norm_.forward(conv_.forward(x))); }
  Tensor<T> backward(const Tensor<T>& dy) { return conv_.backward(norm_.backward(act_.backward(dy))); }

 private:
  Conv1d<T> conv_;
  GroupNorm<T> norm_;
  Mish<T> act_;
};

/// out = Conv1dBlock(Conv1dBlock(x) + Linear(Mish(emb))) + residual(x), residual = 1x1 conv when channels change.
template <class T>
class ResidualTemporalBlock {
 public:
  ResidualTemporalBlock() = default;
  ResidualTemporalBlock(index_t in, index_t out, index_t embed_dim, index_t kernel, Rng& rng, index_t groups = 8)
      : in_(in), out_(out), block0_(in, out, kernel, rng, groups), block1_(out, out, kernel, rng, groups),
        time_(embed_dim, out, rng) {
    if (in != out) residual_ = Conv1d<T>(in, out, 1, rng);
  }
  void collect_parameters(ParameterList<T>& o, const std::string& prefix) {
    block0_.collect_parameters(o, join_name(prefix, "blocks.0"));
    block1_.collect_parameters(o, join_name(prefix, "blocks.1"));
    time_.collect_parameters(o, join_name(prefix, "time_mlp.1"));
    if (in_ != out_) residual_.collect_parameters(o, join_name(prefix, "residual_conv"));
  }

  /// x [N, in, L], emb [N, E] -> [N, out, L]
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& emb) {
    require<ShapeError>(emb.rank() == 2 && emb.dim(0) == x.dim(0), "ResidualTemporalBlock: embedding ",
                        to_string(emb.shape()), " does not match input ", to_string(x.shape()));
    Tensor<T> h = block0_.forward(x);
    Tensor<T> m(emb.shape());
    mish_forward(emb.data(), m.data(), m.size());
    const Tensor<T> te = time_.forward(m);  // [N, out]
    const index_t N = h.dim(0), L = h.dim(2);
    for (index_t n = 0; n < N; ++n)
      for (index_t c = 0; c < out_; ++c)
        for (index_t l = 0; l < L; ++l) h[(n * out_ + c) * L + l] += te[n * out_ + c];
    Tensor<T> y = block1_.forward(h);
    const Tensor<T> r = in_ != out_ ? residual_.forward(x) : x;
    for (index_t i = 0; i < y.size(); ++i) y[i] += r[i];
    if (grad_enabled()) emb_ = emb;
    return y;
  }

  /// -> {dx, demb}
  std::pair<Tensor<T>, Tensor<T>> backward(const Tensor<T>& dy) {
    Tensor<T> dh = block1_.backward(dy);
    const index_t N = dh.dim(0), L = dh.dim(2);
    Tensor<T> dte({N, out_});
    for (index_t i = 0; i < N * out_; ++i)
      for (index_t l = 0; l < L; ++l) dte[i] += dh[i * L + l];
    Tensor<T> dm = time_.backward(dte);
    Tensor<T> demb(emb_.shape());
    mish_backward(emb_.data(), dm.data(), demb.data(), demb.size());
    Tensor<T> dx = block0_.backward(dh);
    if (in_ != out_) {
      const Tensor<T> dr = residual_.backward(dy);
      for (index_t i = 0; i < dx.size(); ++i) dx[i] += dr[i];
    } else {
      for (index_t i = 0; i < dx.size(); ++i) dx[i] += dy[i];
    }
    return {std::move(dx), std::move(demb)};
  }

 private:
  index_t in_ = 0, out_ = 0;
  Conv1dBlock<T> block0_, block1_;
  Linear<T> time_;
  Conv1d<T> residual_;
  Tensor<T> emb_;
};

/// Conv1d(C, C, 3, stride 2, padding 1): halves the horizon. PyTorch name: conv.
template <class T>
class Downsample1d {
 public:
  Downsample1d() = default;
  Downsample1d(index_t channels, Rng& rng) : conv_(channels, channels, 3, rng, 2, 1) {}
  void collect_parameters(ParameterList<T>& o, const std::string& prefix) { conv_.collect_parameters(o, join_name(prefix, "conv")); }
  Tensor<T> forward(const Tensor<T>& x) { return conv_.forward(x); }
  Tensor<T> backward(const Tensor<T>& dy) { return conv_.backward(dy); }

 private:
  Conv1d<T> conv_;
};

/// ConvTranspose1d(C, C, 4, stride 2, padding 1): doubles the horizon. PyTorch name: conv.
template <class T>
class Upsample1d {
 public:
  Upsample1d() = default;
  Upsample1d(index_t channels, Rng& rng) : conv_(channels, channels, 4, rng, 2, 1) {}
  void collect_parameters(ParameterList<T>& o, const std::string& prefix) { conv_.collect_parameters(o, join_name(prefix, "conv")); }
  Tensor<T> forward(const Tensor<T>& x) { return conv_.forward(x); }
  Tensor<T> backward(const Tensor<T>& dy) { return conv_.backward(dy); }

 private:
  ConvTranspose1d<T> conv_;
};

}  // namespace coordiff::nn
