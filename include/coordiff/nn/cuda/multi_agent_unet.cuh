#pragma once
// MultiAgentUNet (nn/multi_agent_unet.hpp) evaluated on the GPU: the same architecture and parameter
// names, loaded from a ParameterList (a CPU network's, or a checkpoint's), forward pass in hand-written
// kernels (backend/cuda) and cuBLAS. Activations are channels-last [(B A), L, C], so every convolution
// is one GEMM over all samples and positions. All step- and return-embedding projections of every block
// are concatenated into one GEMM per forward pass.
//
// It is a Denoiser (host tensors in and out), so Generator<..., DeviceMultiAgentUNet<float>> runs the
// CPU sampler with the network on the GPU; forward_device() takes device pointers for callers that keep
// the whole loop on the device. Buffers are kept between calls and grow only with the batch, so a
// sampling loop allocates in its first step only and its pointers are stable (for graph capture).
#include <map>
#include <string>
#include <vector>

#include "coordiff/backend/cuda/attention.cuh"
#include "coordiff/backend/cuda/blas.cuh"
#include "coordiff/backend/cuda/conv1d.cuh"
#include "coordiff/backend/cuda/memory.cuh"
#include "coordiff/backend/cuda/normalize.cuh"
#include "coordiff/core/condition.hpp"
#include "coordiff/nn/parameter.hpp"
#include "coordiff/nn/unet_config.hpp"

namespace coordiff::nn::cuda {

namespace bc = coordiff::backend::cuda;

/// Named host parameters, looked up with an error naming the missing or misshapen entry.
template <class T>
class ParameterSource {
 public:
  ParameterSource(const ParameterList<T>& list, std::string prefix) : prefix_(std::move(prefix)) {
    for (const auto& p : list) by_name_[p.name] = &p.param->value;
  }
  const Tensor<T>& get(const std::string& name, const Shape& shape) const {
    const std::string full = join_name(prefix_, name);
    const auto it = by_name_.find(full);
    require<ConfigError>(it != by_name_.end(), "DeviceMultiAgentUNet: parameter '", full, "' is missing");
    require_shape(it->second->shape(), shape, "DeviceMultiAgentUNet: parameter '" + full + "'");
    return *it->second;
  }
  bool has(const std::string& name) const { return by_name_.count(join_name(prefix_, name)) > 0; }

 private:
  std::string prefix_;
  std::map<std::string, const Tensor<T>*> by_name_;
};

namespace detail {
template <class T>
bc::DeviceArray<T> upload(const std::vector<T>& host) {
  bc::DeviceArray<T> d;
  d.upload(host);
  return d;
}
template <class T>
bc::DeviceArray<T> upload(const Tensor<T>& host) {
  return upload(std::vector<T>(host.data(), host.data() + host.size()));
}

/// Linear layer: weight [out, in] as stored (y = x W^T + b).
template <class T>
struct DeviceLinear {
  bc::dindex in = 0, out = 0;
  bc::DeviceArray<T> weight, bias;
  DeviceLinear() = default;
  DeviceLinear(const ParameterSource<T>& src, const std::string& name, bc::dindex in_f, bc::dindex out_f)
      : in(in_f), out(out_f), weight(upload(src.get(name + ".weight", {out_f, in_f}))),
        bias(upload(src.get(name + ".bias", {out_f}))) {}
  /// y [rows, out] (rows y_ld apart) = act(x [rows, in] W^T + b).
  void forward(const bc::Blas& blas, const T* x, bc::dindex rows, T* y, bc::dindex y_ld, bc::Act act) const {
    blas.gemm(bc::Trans::No, bc::Trans::Yes, rows, out, in, T(1), x, in, weight.data(), in, T(0), y, y_ld);
    bc::bias_act(y, rows, out, y_ld, bias.data(), act, blas.stream());
  }
};

/// Conv1d on channels-last input; the [Cout, Cin, K] weight is stored reordered as [Cout, K, Cin] to
/// match the im2col column order.
template <class T>
struct DeviceConv {
  bc::dindex cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  bc::DeviceArray<T> weight, bias;
  DeviceConv() = default;
  DeviceConv(const ParameterSource<T>& src, const std::string& name, bc::dindex in_c, bc::dindex out_c, bc::dindex kernel,
             bc::dindex stride_, bc::dindex padding)
      : cin(in_c), cout(out_c), k(kernel), stride(stride_), pad(padding) {
    const Tensor<T>& w = src.get(name + ".weight", {out_c, in_c, kernel});
    std::vector<T> r(static_cast<std::size_t>(w.size()));
    for (bc::dindex o = 0; o < cout; ++o)
      for (bc::dindex c = 0; c < cin; ++c)
        for (bc::dindex j = 0; j < k; ++j) r[static_cast<std::size_t>((o * k + j) * cin + c)] = w[(o * cin + c) * k + j];
    weight = upload(r);
    bias = upload(src.get(name + ".bias", {out_c}));
  }
  bc::dindex out_length(bc::dindex L) const { return (L + 2 * pad - (k - 1) - 1) / stride + 1; }
  /// y [N, Lout, cout] from x [N, L, cin]; `col` is scratch.
  void forward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, T* y, bc::DeviceArray<T>& col) const {
    const bc::dindex Lout = out_length(L), rows = N * Lout;
    const T* a = x;
    if (k != 1 || stride != 1 || pad != 0) {
      const bc::Conv1dShape g{cin, L, Lout, k, stride, pad, 1};
      col.ensure(static_cast<std::size_t>(rows * k * cin));
      bc::im2col_channels_last(x, N, g, col.data(), blas.stream());
      a = col.data();
    }
    blas.gemm(bc::Trans::No, bc::Trans::Yes, rows, cout, k * cin, T(1), a, k * cin, weight.data(), k * cin, T(0), y, cout);
    bc::bias_act(y, rows, cout, cout, bias.data(), bc::Act::None, blas.stream());
  }
};

/// ConvTranspose1d on channels-last input; the [Cin, Cout, K] weight is stored as [Cin, K, Cout].
template <class T>
struct DeviceConvTranspose {
  bc::dindex cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  bc::DeviceArray<T> weight, bias;
  DeviceConvTranspose() = default;
  DeviceConvTranspose(const ParameterSource<T>& src, const std::string& name, bc::dindex in_c, bc::dindex out_c,
                      bc::dindex kernel, bc::dindex stride_, bc::dindex padding)
      : cin(in_c), cout(out_c), k(kernel), stride(stride_), pad(padding) {
    const Tensor<T>& w = src.get(name + ".weight", {in_c, out_c, kernel});
    std::vector<T> r(static_cast<std::size_t>(w.size()));
    for (bc::dindex c = 0; c < cin; ++c)
      for (bc::dindex o = 0; o < cout; ++o)
        for (bc::dindex j = 0; j < k; ++j) r[static_cast<std::size_t>((c * k + j) * cout + o)] = w[(c * cout + o) * k + j];
    weight = upload(r);
    bias = upload(src.get(name + ".bias", {out_c}));
  }
  bc::dindex out_length(bc::dindex L) const { return (L - 1) * stride - 2 * pad + (k - 1) + 1; }
  void forward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, T* y, bc::DeviceArray<T>& col) const {
    col.ensure(static_cast<std::size_t>(N * L * k * cout));
    blas.gemm(bc::Trans::No, bc::Trans::No, N * L, k * cout, cin, T(1), x, cin, weight.data(), k * cout, T(0), col.data(),
              k * cout);
    const bc::Conv1dShape g{cout, L, out_length(L), k, stride, pad, 1};
    bc::transposed_gather(col.data(), N, g, bias.data(), y, blas.stream());
  }
};

/// Conv1dBlock: conv (padding k/2) -> GroupNorm -> Mish, with the fused epilogue.
template <class T>
struct DeviceConvBlock {
  DeviceConv<T> conv;
  bc::DeviceArray<T> gn_weight, gn_bias;
  bc::dindex groups = 8;
  DeviceConvBlock() = default;
  DeviceConvBlock(const ParameterSource<T>& src, const std::string& name, bc::dindex in, bc::dindex out, bc::dindex kernel,
                  bc::dindex groups_)
      : conv(src, name + ".block.0", in, out, kernel, 1, kernel / 2),
        gn_weight(upload(src.get(name + ".block.2.weight", {out}))),
        gn_bias(upload(src.get(name + ".block.2.bias", {out}))), groups(groups_) {}
  void forward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, T* y, const bc::NormEpilogue<T>& epi,
               bc::DeviceArray<T>& tmp, bc::DeviceArray<T>& col) const {
    tmp.ensure(static_cast<std::size_t>(N * L * conv.cout));
    conv.forward(blas, x, N, L, tmp.data(), col);
    bc::group_norm_act(tmp.data(), N, L, conv.cout, groups, 1e-5, gn_weight.data(), gn_bias.data(), bc::Act::Mish, epi, y,
                       blas.stream());
  }
};

/// Where a block's step-embedding projection sits in the shared projection table.
struct TableSlice {
  bc::dindex offset = 0, width = 0;
};

/// Collects the step-embedding Linear layers of every block into one [total, E] weight.
template <class T>
struct ProjectionTable {
  bc::dindex embed = 0, total = 0;
  std::vector<T> weight, bias;  // host, [total, embed] and [total]
  TableSlice add(const ParameterSource<T>& src, const std::string& name, bc::dindex out) {
    const Tensor<T>& w = src.get(name + ".weight", {out, embed});
    const Tensor<T>& b = src.get(name + ".bias", {out});
    weight.insert(weight.end(), w.data(), w.data() + w.size());
    bias.insert(bias.end(), b.data(), b.data() + b.size());
    const TableSlice s{total, out};
    total += out;
    return s;
  }
};

template <class T>
struct DeviceResidualBlock {
  bc::dindex in = 0, out = 0;
  DeviceConvBlock<T> block0, block1;
  TableSlice time;
  bool has_residual_conv = false;
  DeviceConv<T> residual;
  bc::DeviceArray<T> h, r, y;
  DeviceResidualBlock() = default;
  DeviceResidualBlock(const ParameterSource<T>& src, const std::string& name, bc::dindex in_c, bc::dindex out_c,
                      bc::dindex kernel, bc::dindex groups, ProjectionTable<T>& table)
      : in(in_c), out(out_c), block0(src, name + ".blocks.0", in_c, out_c, kernel, groups),
        block1(src, name + ".blocks.1", out_c, out_c, kernel, groups), time(table.add(src, name + ".time_mlp.1", out_c)),
        has_residual_conv(in_c != out_c) {
    if (has_residual_conv) residual = DeviceConv<T>(src, name + ".residual_conv", in_c, out_c, 1, 1, 0);
  }
  /// x [N, L, in] -> y [N, L, out]; te: the projection table [N, total].
  const T* forward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, const T* te, bc::dindex te_ld,
                   bc::DeviceArray<T>& tmp, bc::DeviceArray<T>& col) {
    const auto n = static_cast<std::size_t>(N * L * out);
    h.ensure(n), y.ensure(n);
    block0.forward(blas, x, N, L, h.data(), {te + time.offset, te_ld, nullptr}, tmp, col);
    const T* res = x;
    if (has_residual_conv) {
      r.ensure(n);
      residual.forward(blas, x, N, L, r.data(), col);
      res = r.data();
    }
    block1.forward(blas, h.data(), N, L, y.data(), {nullptr, 0, res}, tmp, col);
    return y.data();
  }
};

template <class T>
struct DeviceAgentAttention {
  bc::dindex channels = 0, qk = 0, v = 0, heads = 4;
  bc::DeviceArray<T> weight, bias;  // [2 heads qk + channels, channels]: query, key and value 1x1 convs
  TableSlice time;                  // their step projections, in the same order
  T gamma = T(1);
  bc::DeviceArray<T> qkv, y;
  DeviceAgentAttention() = default;
  DeviceAgentAttention(const ParameterSource<T>& src, const std::string& name, bc::dindex c, bc::dindex heads_,
                       ProjectionTable<T>& table)
      : channels(c), qk(c / 16), v(c / heads_), heads(heads_) {
    std::vector<T> w, b;
    const bc::dindex hq = qk * heads;
    bc::dindex offset = -1;
    for (const auto& [layer, rows] : {std::pair{"query", hq}, std::pair{"key", hq}, std::pair{"value", v * heads}}) {
      const Tensor<T>& lw = src.get(name + "." + layer + "_layer.weight", {rows, c, 1});
      const Tensor<T>& lb = src.get(name + "." + layer + "_layer.bias", {rows});
      w.insert(w.end(), lw.data(), lw.data() + lw.size());
      b.insert(b.end(), lb.data(), lb.data() + lb.size());
      const TableSlice s = table.add(src, name + "." + layer + "_time_mlp.1", rows);
      if (offset < 0) offset = s.offset;
    }
    weight = upload(w);
    bias = upload(b);
    time = {offset, 2 * hq + v * heads};
    gamma = src.get(name + ".gamma", {1})[0];
  }
  bc::dindex width() const { return 2 * qk * heads + v * heads; }
  /// x [B A, L, C] -> y = x + gamma * attention(x).
  const T* forward(const bc::Blas& blas, const T* x, bc::dindex B, bc::dindex A, bc::dindex L, const T* te,
                   bc::dindex te_ld) {
    const bc::dindex N = B * A, W = width();
    qkv.ensure(static_cast<std::size_t>(N * L * W));
    y.ensure(static_cast<std::size_t>(N * L * channels));
    blas.gemm(bc::Trans::No, bc::Trans::Yes, N * L, W, channels, T(1), x, channels, weight.data(), channels, T(0),
              qkv.data(), W);
    bc::add_bias_and_table(qkv.data(), N, L, W, bias.data(), te + time.offset, te_ld, blas.stream());
    const bc::SetAttentionShape s{B, A, L, heads, qk, v, W, 0, qk * heads, 2 * qk * heads};
    bc::set_attention(qkv.data(), s, x, gamma, y.data(), static_cast<T*>(nullptr), blas.stream());
    return y.data();
  }
};
}  // namespace detail

template <class T>
class DeviceMultiAgentUNet {
 public:
  using value_type = T;

  /// Loads the network named by `prefix` in `params` (the names of MultiAgentUNet::collect_parameters).
  DeviceMultiAgentUNet(const UNetConfig& cfg, index_t n_agents, const ParameterList<T>& params,
                       const std::string& prefix = "", index_t attention_heads = 4, bool allow_tf32 = false)
      : cfg_(cfg), agents_(n_agents), blas_(stream_.get(), allow_tf32) {
    cfg.validate(true);
    require<ConfigError>(n_agents >= 1, "DeviceMultiAgentUNet: n_agents must be >= 1, got ", n_agents);
    require<ConfigError>(attention_heads >= 1 && cfg.dim % attention_heads == 0, "DeviceMultiAgentUNet: ",
                         attention_heads, " attention heads do not divide ", cfg.dim, " channels");
    const ParameterSource<T> src(params, prefix);
    using Block = detail::DeviceResidualBlock<T>;
    const index_t dim = cfg.dim, E = cfg.embed_dim(), K = cfg.kernel_size, G = cfg.groups;
    time1_ = {src, "net.time_mlp.1", dim, 4 * dim};
    time2_ = {src, "net.time_mlp.3", 4 * dim, dim};
    if (cfg.returns_condition) {
      ret1_ = {src, "net.returns_mlp.0", 1, dim};
      ret2_ = {src, "net.returns_mlp.2", dim, 4 * dim};
      ret3_ = {src, "net.returns_mlp.4", 4 * dim, dim};
    }
    detail::ProjectionTable<T> table{E, 0, {}, {}};
    std::vector<index_t> dims{cfg.transition_dim};
    for (index_t m : cfg.dim_mults) dims.push_back(dim * m);
    const index_t levels = cfg.levels();
    for (index_t i = 0; i < levels; ++i) {
      const std::string p = "net.downs." + std::to_string(i);
      Down d;
      d.res1 = Block(src, p + ".0", dims[i], dims[i + 1], K, G, table);
      d.res2 = Block(src, p + ".1", dims[i + 1], dims[i + 1], K, G, table);
      d.has_down = i + 1 < levels;
      if (d.has_down) d.down = {src, p + ".2.conv", dims[i + 1], dims[i + 1], 3, 2, 1};
      downs_.push_back(std::move(d));
    }
    mid1_ = Block(src, "net.mid_block1", dims.back(), dims.back(), K, G, table);
    mid2_ = Block(src, "net.mid_block2", dims.back(), dims.back(), K, G, table);
    for (index_t j = levels - 1, u = 0; j >= 1; --j, ++u) {
      const std::string p = "net.ups." + std::to_string(u);
      Up up;
      up.res1 = Block(src, p + ".0", 2 * dims[j + 1], dims[j], K, G, table);
      up.res2 = Block(src, p + ".1", dims[j], dims[j], K, G, table);
      up.up = {src, p + ".2.conv", dims[j], dims[j], 4, 2, 1};
      ups_.push_back(std::move(up));
    }
    final_block_ = {src, "net.final_conv.0", dim, dim, K, G};
    final_conv_ = {src, "net.final_conv.1", dim, cfg.transition_dim, 1, 1, 0};
    // self_attn.0 at the bottleneck, then one per level from the coarsest (the finest is never used).
    attention_.emplace_back(src, "self_attn.0", dims.back(), attention_heads, table);
    for (index_t i = levels, a = 1; i >= 2; --i, ++a)
      attention_.emplace_back(src, "self_attn." + std::to_string(a), dims[i], attention_heads, table);
    table_weight_ = detail::upload(table.weight);
    table_bias_ = detail::upload(table.bias);
    table_width_ = table.total;
  }
  DeviceMultiAgentUNet(const DeviceMultiAgentUNet&) = delete;
  DeviceMultiAgentUNet& operator=(const DeviceMultiAgentUNet&) = delete;

  const UNetConfig& config() const { return cfg_; }
  index_t n_agents() const { return agents_; }
  cudaStream_t stream() const { return stream_.get(); }

  /// Device pointers: x [B, H, A, F], time [B], returns [B, A] and keep [B, A] (both null without the
  /// return condition; keep null keeps every return) -> out [B, H, A, F]. Stream-ordered, no host sync.
  void forward_device(const T* x, const T* time, const T* returns, const T* keep, index_t B, index_t A, T* out) {
    require<ConfigError>(!cfg_.returns_condition || returns, "DeviceMultiAgentUNet: returns_condition is on but no "
                         "returns were given");
    const index_t H = cfg_.horizon, F = cfg_.transition_dim, N = B * A, dim = cfg_.dim, E = cfg_.embed_dim();
    cudaStream_t s = stream_.get();
    // Step (+ return) embedding [N, E], then every block's projection of mish(embedding) in one GEMM.
    sin_.ensure(static_cast<std::size_t>(N * dim));
    hidden_.ensure(static_cast<std::size_t>(N * 4 * dim));
    emb_.ensure(static_cast<std::size_t>(N * E));
    bc::sinusoidal(time, N, A, dim, sin_.data(), dim, s);
    time1_.forward(blas_, sin_.data(), N, hidden_.data(), 4 * dim, bc::Act::Mish);
    time2_.forward(blas_, hidden_.data(), N, emb_.data(), E, bc::Act::None);
    if (cfg_.returns_condition) {
      ret_a_.ensure(static_cast<std::size_t>(N * dim));
      ret1_.forward(blas_, returns, N, ret_a_.data(), dim, bc::Act::Mish);
      ret2_.forward(blas_, ret_a_.data(), N, hidden_.data(), 4 * dim, bc::Act::Mish);
      ret3_.forward(blas_, hidden_.data(), N, ret_a_.data(), dim, bc::Act::None);
      bc::scale_rows_into(ret_a_.data(), N, dim, keep, emb_.data() + dim, E, s);
    }
    emb_act_.ensure(static_cast<std::size_t>(N * E));
    bc::map_act(emb_.data(), emb_act_.data(), N * E, bc::Act::Mish, s);
    table_.ensure(static_cast<std::size_t>(N * table_width_));
    blas_.gemm(bc::Trans::No, bc::Trans::Yes, N, table_width_, E, T(1), emb_act_.data(), E, table_weight_.data(), E, T(0),
               table_.data(), table_width_);
    bc::bias_act(table_.data(), N, table_width_, table_width_, table_bias_.data(), bc::Act::None, s);
    const T* te = table_.data();
    const index_t ld = table_width_;

    // [B, H, A, F] -> [B, A, H, F] = [N, H, F] channels-last.
    input_.ensure(static_cast<std::size_t>(N * H * F));
    bc::swap_axes12(x, B, H, A, F, input_.data(), s);
    const T* h = input_.data();
    index_t L = H;
    std::vector<std::pair<const T*, index_t>> skips;
    for (auto& d : downs_) {
      h = d.res2.forward(blas_, d.res1.forward(blas_, h, N, L, te, ld, tmp_, col_), N, L, te, ld, tmp_, col_);
      skips.emplace_back(h, L);
      if (d.has_down) {
        const index_t Lout = d.down.out_length(L);
        d.out.ensure(static_cast<std::size_t>(N * Lout * d.down.cout));
        d.down.forward(blas_, h, N, L, d.out.data(), col_);
        h = d.out.data(), L = Lout;
      }
    }
    h = mid2_.forward(blas_, mid1_.forward(blas_, h, N, L, te, ld, tmp_, col_), N, L, te, ld, tmp_, col_);
    h = attention_[0].forward(blas_, h, B, A, L, te, ld);
    for (std::size_t j = 0; j < ups_.size(); ++j) {
      auto& u = ups_[j];
      const auto [skip, skip_len] = skips[skips.size() - 1 - j];  // coarsest first; the finest is never consumed
      require<ShapeError>(skip_len == L, "DeviceMultiAgentUNet: skip length ", skip_len, " != ", L);
      const T* attended = attention_[j + 1].forward(blas_, skip, B, A, L, te, ld);
      const index_t cx = u.res1.in / 2;
      u.cat.ensure(static_cast<std::size_t>(N * L * u.res1.in));
      bc::concat_cols(h, cx, attended, u.res1.in - cx, N * L, u.cat.data(), s);
      h = u.res2.forward(blas_, u.res1.forward(blas_, u.cat.data(), N, L, te, ld, tmp_, col_), N, L, te, ld, tmp_, col_);
      const index_t Lout = u.up.out_length(L);
      u.out.ensure(static_cast<std::size_t>(N * Lout * u.up.cout));
      u.up.forward(blas_, h, N, L, u.out.data(), col_);
      h = u.out.data(), L = Lout;
    }
    final_h_.ensure(static_cast<std::size_t>(N * L * dim));
    final_block_.forward(blas_, h, N, L, final_h_.data(), {}, tmp_, col_);
    output_.ensure(static_cast<std::size_t>(N * L * F));
    final_conv_.forward(blas_, final_h_.data(), N, L, output_.data(), col_);
    bc::swap_axes12(output_.data(), B, A, H, F, out, s);  // [B, A, H, F] -> [B, H, A, F]
  }

  /// Host forward: x [B, H, A, F], time [B], returns [B, A], cond_keep [B, A] -> [B, H, A, F].
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& time, const Tensor<T>* returns = nullptr,
                    const Tensor<T>* cond_keep = nullptr) {
    require<ShapeError>(x.rank() == 4 && x.dim(1) == cfg_.horizon && x.dim(2) >= 1 && x.dim(3) == cfg_.transition_dim,
                        "DeviceMultiAgentUNet: expected x [B, ", cfg_.horizon, ", A, ", cfg_.transition_dim, "], got ",
                        to_string(x.shape()));
    const index_t B = x.dim(0), A = x.dim(2);
    require_shape(time.shape(), {B}, "DeviceMultiAgentUNet: diffusion step tensor");
    require<ShapeError>(A <= backend::cuda::kMaxAttentionSet, "DeviceMultiAgentUNet: at most ",
                        backend::cuda::kMaxAttentionSet, " agents, got ", A);
    if (returns) require_shape(returns->shape(), {B, A}, "DeviceMultiAgentUNet: returns");
    if (cond_keep) require_shape(cond_keep->shape(), {B, A}, "DeviceMultiAgentUNet: cond_keep");
    x_dev_.upload(x.data(), static_cast<std::size_t>(x.size()), stream_.get());
    time_dev_.upload(time.data(), static_cast<std::size_t>(B), stream_.get());
    if (returns) returns_dev_.upload(returns->data(), static_cast<std::size_t>(B * A), stream_.get());
    if (cond_keep) keep_dev_.upload(cond_keep->data(), static_cast<std::size_t>(B * A), stream_.get());
    out_dev_.ensure(static_cast<std::size_t>(x.size()));
    forward_device(x_dev_.data(), time_dev_.data(), returns ? returns_dev_.data() : nullptr,
                   cond_keep ? keep_dev_.data() : nullptr, B, A, out_dev_.data());
    Tensor<T> y(x.shape());
    out_dev_.download(y.data(), static_cast<std::size_t>(y.size()), stream_.get());
    return y;
  }

  /// The Denoiser interface, with MultiAgentUNet's meaning of the condition.
  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& k, const Condition<T>& c) {
    const bool returns = cfg_.returns_condition;
    require<ConfigError>(returns || !c.has_value(), "DeviceMultiAgentUNet: a condition value was given but the network "
                         "was built without returns_condition");
    return forward(x, k, returns ? &c.value : nullptr, returns && !c.keep.empty() ? &c.keep : nullptr);
  }

 private:
  struct Down {
    detail::DeviceResidualBlock<T> res1, res2;
    detail::DeviceConv<T> down;
    bool has_down = false;
    bc::DeviceArray<T> out;
  };
  struct Up {
    detail::DeviceResidualBlock<T> res1, res2;
    detail::DeviceConvTranspose<T> up;
    bc::DeviceArray<T> cat, out;
  };

  UNetConfig cfg_;
  index_t agents_ = 1;
  bc::Stream stream_;  // declared before blas_: destroyed after it
  bc::Blas blas_;
  detail::DeviceLinear<T> time1_, time2_, ret1_, ret2_, ret3_;
  std::vector<Down> downs_;
  detail::DeviceResidualBlock<T> mid1_, mid2_;
  std::vector<Up> ups_;
  detail::DeviceConvBlock<T> final_block_;
  detail::DeviceConv<T> final_conv_;
  std::vector<detail::DeviceAgentAttention<T>> attention_;
  bc::DeviceArray<T> table_weight_, table_bias_;
  index_t table_width_ = 0;
  bc::DeviceArray<T> sin_, hidden_, emb_, emb_act_, ret_a_, table_, input_, tmp_, col_, final_h_, output_;
  bc::DeviceArray<T> x_dev_, time_dev_, returns_dev_, keep_dev_, out_dev_;
};

}  // namespace coordiff::nn::cuda
