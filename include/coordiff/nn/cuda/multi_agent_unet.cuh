#pragma once
// MultiAgentUNet (nn/multi_agent_unet.hpp) evaluated and trained on the GPU: the same architecture and
// parameter names, loaded from a ParameterList (a CPU network's, or a checkpoint's), forward and backward
// passes in hand-written kernels (backend/cuda) and cuBLAS. Activations are channels-last [(B A), L, C],
// so every convolution is one GEMM over all samples and positions. All step- and return-embedding
// projections of every block are concatenated into one GEMM per pass.
//
// It is a Denoiser (host tensors in and out), so Generator<..., DeviceMultiAgentUNet<float>> runs the
// CPU sampler with the network on the GPU; forward_device() / backward_device() take device pointers for
// callers that keep the whole loop on the device. Buffers are kept between calls and grow only with the
// batch, so a sampling loop allocates in its first step only and its pointers are stable (for graph
// capture). With set_training(true) the forward pass also keeps what the backward pass needs.
#include <map>
#include <string>
#include <utility>
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

/// Where one named host parameter lives on the device. Convolution weights are stored with their last
/// two axes swapped (host [A, B, K] -> device [A, K, B], the im2col column order); `host_scalar` marks a
/// value kept on the host (the attention gains, read at launch).
template <class T>
struct ParameterSlot {
  std::string name;
  Shape shape;  ///< host shape
  T* value = nullptr;
  T* grad = nullptr;  ///< null until training is enabled
  bool swap_last_two = false;
  T* host_scalar = nullptr;
};

namespace detail {
/// A device copy of `host`, complete on return (so that any stream may read it).
template <class T>
bc::DeviceArray<T> upload(const std::vector<T>& host) {
  bc::DeviceArray<T> d;
  d.upload(host);
  bc::check(cudaStreamSynchronize(nullptr), "cudaStreamSynchronize (parameter upload)");
  return d;
}
template <class T>
bc::DeviceArray<T> upload(const Tensor<T>& host) {
  return upload(std::vector<T>(host.data(), host.data() + host.size()));
}
/// [a, b, c] -> [a, c, b].
template <class T>
std::vector<T> swap_last_two(const T* x, index_t a, index_t b, index_t c) {
  std::vector<T> y(static_cast<std::size_t>(a * b * c));
  for (index_t i = 0; i < a; ++i)
    for (index_t j = 0; j < b; ++j)
      for (index_t k = 0; k < c; ++k) y[static_cast<std::size_t>((i * c + k) * b + j)] = x[(i * b + j) * c + k];
  return y;
}
/// A zeroed gradient array shaped like `value`.
template <class T>
void zeroed_like(bc::DeviceArray<T>& grad, const bc::DeviceArray<T>& value, cudaStream_t s) {
  grad.ensure(value.size());
  if (value.size()) bc::check(cudaMemsetAsync(grad.data(), 0, value.size() * sizeof(T), s), "cudaMemsetAsync");
}
template <class T>
void zero(bc::DeviceArray<T>& a, cudaStream_t s) {
  if (a.size()) bc::check(cudaMemsetAsync(a.data(), 0, a.size() * sizeof(T), s), "cudaMemsetAsync");
}

/// Linear layer: weight [out, in] as stored (y = x W^T + b).
template <class T>
struct DeviceLinear {
  std::string name;
  bc::dindex in = 0, out = 0;
  bc::DeviceArray<T> weight, bias, dweight, dbias;
  DeviceLinear() = default;
  DeviceLinear(const ParameterSource<T>& src, const std::string& name_, bc::dindex in_f, bc::dindex out_f)
      : name(name_), in(in_f), out(out_f), weight(upload(src.get(name + ".weight", {out_f, in_f}))),
        bias(upload(src.get(name + ".bias", {out_f}))) {}
  /// y [rows, out] (rows y_ld apart) = act(x [rows, in] W^T + b). With `pre` (dense [rows, out]) the
  /// pre-activation is kept there for the backward pass.
  void forward(const bc::Blas& blas, const T* x, bc::dindex rows, T* y, bc::dindex y_ld, bc::Act act, T* pre = nullptr) const {
    if (pre && act != bc::Act::None) {
      blas.gemm(bc::Trans::No, bc::Trans::Yes, rows, out, in, T(1), x, in, weight.data(), in, T(0), pre, out);
      bc::bias_act(pre, rows, out, out, bias.data(), bc::Act::None, blas.stream());
      bc::map_act_rows(pre, rows, out, y, y_ld, act, blas.stream());
      return;
    }
    blas.gemm(bc::Trans::No, bc::Trans::Yes, rows, out, in, T(1), x, in, weight.data(), in, T(0), y, y_ld);
    bc::bias_act(y, rows, out, y_ld, bias.data(), act, blas.stream());
  }
  /// Gradients from dy [rows, out] (rows dy_ld apart, after the activation's backward); dx [rows, in]
  /// when not null.
  void backward(const bc::Blas& blas, const T* x, bc::dindex rows, const T* dy, bc::dindex dy_ld, T* dx) {
    blas.gemm(bc::Trans::Yes, bc::Trans::No, out, in, rows, T(1), dy, dy_ld, x, in, T(1), dweight.data(), in);
    bc::column_sums(dy, rows, out, dy_ld, dbias.data(), true, blas.stream());
    if (dx) blas.gemm(bc::Trans::No, bc::Trans::No, rows, in, out, T(1), dy, dy_ld, weight.data(), in, T(0), dx, in);
  }
  void enable_training(cudaStream_t s) { zeroed_like(dweight, weight, s), zeroed_like(dbias, bias, s); }
  void zero_grad(cudaStream_t s) { zero(dweight, s), zero(dbias, s); }
  void slots(std::vector<ParameterSlot<T>>& o) {
    o.push_back({name + ".weight", {out, in}, weight.data(), dweight.data(), false, nullptr});
    o.push_back({name + ".bias", {out}, bias.data(), dbias.data(), false, nullptr});
  }
};

/// Conv1d on channels-last input; the [Cout, Cin, K] weight is stored as [Cout, K, Cin] to match the
/// im2col column order.
template <class T>
struct DeviceConv {
  std::string name;
  bc::dindex cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  bc::DeviceArray<T> weight, bias, dweight, dbias;
  DeviceConv() = default;
  DeviceConv(const ParameterSource<T>& src, const std::string& name_, bc::dindex in_c, bc::dindex out_c, bc::dindex kernel,
             bc::dindex stride_, bc::dindex padding)
      : name(name_), cin(in_c), cout(out_c), k(kernel), stride(stride_), pad(padding) {
    weight = upload(swap_last_two(src.get(name + ".weight", {out_c, in_c, kernel}).data(), out_c, in_c, kernel));
    bias = upload(src.get(name + ".bias", {out_c}));
  }
  bool pointwise() const { return k == 1 && stride == 1 && pad == 0; }
  bc::dindex out_length(bc::dindex L) const { return (L + 2 * pad - (k - 1) - 1) / stride + 1; }
  bc::Conv1dShape shape(bc::dindex L) const { return {cin, L, out_length(L), k, stride, pad, 1}; }
  /// y [N, Lout, cout] from x [N, L, cin]; `col` is scratch.
  void forward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, T* y, bc::DeviceArray<T>& col) const {
    const bc::dindex rows = N * out_length(L);
    const T* a = x;
    if (!pointwise()) {
      col.ensure(static_cast<std::size_t>(rows * k * cin));
      bc::im2col_channels_last(x, N, shape(L), col.data(), blas.stream());
      a = col.data();
    }
    blas.gemm(bc::Trans::No, bc::Trans::Yes, rows, cout, k * cin, T(1), a, k * cin, weight.data(), k * cin, T(0), y, cout);
    bc::bias_act(y, rows, cout, cout, bias.data(), bc::Act::None, blas.stream());
  }
  /// Gradients from dy [N, Lout, cout]; dx [N, L, cin] when not null. `col`, `dcol` are scratch.
  void backward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, const T* dy, T* dx, bc::DeviceArray<T>& col,
                bc::DeviceArray<T>& dcol) {
    const bc::dindex Lout = out_length(L), rows = N * Lout, w = k * cin;
    bc::column_sums(dy, rows, cout, cout, dbias.data(), true, blas.stream());
    const T* a = x;
    if (!pointwise()) {
      col.ensure(static_cast<std::size_t>(rows * w));
      bc::im2col_channels_last(x, N, shape(L), col.data(), blas.stream());
      a = col.data();
    }
    blas.gemm(bc::Trans::Yes, bc::Trans::No, cout, w, rows, T(1), dy, cout, a, w, T(1), dweight.data(), w);
    if (!dx) return;
    if (pointwise()) {
      blas.gemm(bc::Trans::No, bc::Trans::No, rows, cin, cout, T(1), dy, cout, weight.data(), cin, T(0), dx, cin);
      return;
    }
    dcol.ensure(static_cast<std::size_t>(rows * w));
    blas.gemm(bc::Trans::No, bc::Trans::No, rows, w, cout, T(1), dy, cout, weight.data(), w, T(0), dcol.data(), w);
    // col2im is the transposed convolution's gather: input position pos collects output o, tap j with
    // o*stride - pad + j = pos.
    const bc::Conv1dShape g{cin, Lout, L, k, stride, pad, 1};
    bc::transposed_gather(dcol.data(), N, g, static_cast<const T*>(nullptr), dx, blas.stream());
  }
  void enable_training(cudaStream_t s) { zeroed_like(dweight, weight, s), zeroed_like(dbias, bias, s); }
  void zero_grad(cudaStream_t s) { zero(dweight, s), zero(dbias, s); }
  void slots(std::vector<ParameterSlot<T>>& o) {
    o.push_back({name + ".weight", {cout, cin, k}, weight.data(), dweight.data(), true, nullptr});
    o.push_back({name + ".bias", {cout}, bias.data(), dbias.data(), false, nullptr});
  }
};

/// ConvTranspose1d on channels-last input; the [Cin, Cout, K] weight is stored as [Cin, K, Cout].
template <class T>
struct DeviceConvTranspose {
  std::string name;
  bc::dindex cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  bc::DeviceArray<T> weight, bias, dweight, dbias;
  DeviceConvTranspose() = default;
  DeviceConvTranspose(const ParameterSource<T>& src, const std::string& name_, bc::dindex in_c, bc::dindex out_c,
                      bc::dindex kernel, bc::dindex stride_, bc::dindex padding)
      : name(name_), cin(in_c), cout(out_c), k(kernel), stride(stride_), pad(padding) {
    weight = upload(swap_last_two(src.get(name + ".weight", {in_c, out_c, kernel}).data(), in_c, out_c, kernel));
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
  /// Gradients from dy [N, Lout, cout]; dx [N, L, cin].
  void backward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, const T* dy, T* dx, bc::DeviceArray<T>& col) {
    const bc::dindex Lout = out_length(L), w = k * cout;
    bc::column_sums(dy, N * Lout, cout, cout, dbias.data(), true, blas.stream());
    // The gradient of the gather is an im2col of dy: row (n, l), tap j reads dy at l*stride - pad + j.
    col.ensure(static_cast<std::size_t>(N * L * w));
    const bc::Conv1dShape g{cout, Lout, L, k, stride, pad, 1};
    bc::im2col_channels_last(dy, N, g, col.data(), blas.stream());
    blas.gemm(bc::Trans::Yes, bc::Trans::No, cin, w, N * L, T(1), x, cin, col.data(), w, T(1), dweight.data(), w);
    blas.gemm(bc::Trans::No, bc::Trans::Yes, N * L, cin, w, T(1), col.data(), w, weight.data(), w, T(0), dx, cin);
  }
  void enable_training(cudaStream_t s) { zeroed_like(dweight, weight, s), zeroed_like(dbias, bias, s); }
  void zero_grad(cudaStream_t s) { zero(dweight, s), zero(dbias, s); }
  void slots(std::vector<ParameterSlot<T>>& o) {
    o.push_back({name + ".weight", {cin, cout, k}, weight.data(), dweight.data(), true, nullptr});
    o.push_back({name + ".bias", {cout}, bias.data(), dbias.data(), false, nullptr});
  }
};

/// Scratch shared by every layer of one network (one stream, used one layer at a time).
template <class T>
struct Scratch {
  bc::DeviceArray<T> col, dcol, g0, g1, g2, dw_part, db_part;
};

/// Conv1dBlock: conv (padding k/2) -> GroupNorm -> Mish, with the fused epilogue.
template <class T>
struct DeviceConvBlock {
  std::string name;
  DeviceConv<T> conv;
  bc::DeviceArray<T> gn_weight, gn_bias, dgn_weight, dgn_bias;
  bc::dindex groups = 8;
  bc::DeviceArray<T> pre;        // conv output (GroupNorm input)
  bc::DeviceArray<double> stats;  // GroupNorm mean and 1/std per (sample, group), when training
  DeviceConvBlock() = default;
  DeviceConvBlock(const ParameterSource<T>& src, const std::string& name_, bc::dindex in, bc::dindex out, bc::dindex kernel,
                  bc::dindex groups_)
      : name(name_), conv(src, name + ".block.0", in, out, kernel, 1, kernel / 2),
        gn_weight(upload(src.get(name + ".block.2.weight", {out}))),
        gn_bias(upload(src.get(name + ".block.2.bias", {out}))), groups(groups_) {}
  void forward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, T* y, const bc::NormEpilogue<T>& epi,
               Scratch<T>& sc, bool training) {
    pre.ensure(static_cast<std::size_t>(N * L * conv.cout));
    conv.forward(blas, x, N, L, pre.data(), sc.col);
    if (training) stats.ensure(static_cast<std::size_t>(2 * N * groups));
    bc::group_norm_act(pre.data(), N, L, conv.cout, groups, 1e-5, gn_weight.data(), gn_bias.data(), bc::Act::Mish, epi, y,
                       blas.stream(), training ? stats.data() : nullptr);
  }
  /// dy: gradient of the block's output; per_sample_grad (may be null): receives sum over the length of
  /// dy (the gradient of the epilogue's per-sample vector). dx [N, L, in] when not null.
  void backward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, const T* dy, T* dx, T* per_sample_grad,
                bc::dindex per_sample_ld, Scratch<T>& sc) {
    const bc::dindex C = conv.cout;
    sc.g2.ensure(static_cast<std::size_t>(N * L * C));
    sc.dw_part.ensure(static_cast<std::size_t>(N * C));
    sc.db_part.ensure(static_cast<std::size_t>(N * C));
    bc::group_norm_act_backward(pre.data(), stats.data(), N, L, C, groups, gn_weight.data(), gn_bias.data(), bc::Act::Mish,
                                dy, sc.g2.data(), sc.dw_part.data(), sc.db_part.data(), per_sample_grad, per_sample_ld,
                                blas.stream());
    bc::column_sums(sc.dw_part.data(), N, C, C, dgn_weight.data(), true, blas.stream());
    bc::column_sums(sc.db_part.data(), N, C, C, dgn_bias.data(), true, blas.stream());
    conv.backward(blas, x, N, L, sc.g2.data(), dx, sc.col, sc.dcol);
  }
  void enable_training(cudaStream_t s) {
    conv.enable_training(s);
    zeroed_like(dgn_weight, gn_weight, s), zeroed_like(dgn_bias, gn_bias, s);
  }
  void zero_grad(cudaStream_t s) { conv.zero_grad(s), zero(dgn_weight, s), zero(dgn_bias, s); }
  void slots(std::vector<ParameterSlot<T>>& o) {
    conv.slots(o);
    o.push_back({name + ".block.2.weight", {conv.cout}, gn_weight.data(), dgn_weight.data(), false, nullptr});
    o.push_back({name + ".block.2.bias", {conv.cout}, gn_bias.data(), dgn_bias.data(), false, nullptr});
  }
};

/// Where a block's step-embedding projection sits in the shared projection table.
struct TableSlice {
  bc::dindex offset = 0, width = 0;
  std::string name;  ///< the projection's parameter name
};

/// Collects the step-embedding Linear layers of every block into one [total, E] weight.
template <class T>
struct ProjectionTable {
  bc::dindex embed = 0, total = 0;
  std::vector<T> weight, bias;  // host, [total, embed] and [total]
  std::vector<TableSlice> slices;
  TableSlice add(const ParameterSource<T>& src, const std::string& name, bc::dindex out) {
    const Tensor<T>& w = src.get(name + ".weight", {out, embed});
    const Tensor<T>& b = src.get(name + ".bias", {out});
    weight.insert(weight.end(), w.data(), w.data() + w.size());
    bias.insert(bias.end(), b.data(), b.data() + b.size());
    const TableSlice s{total, out, name};
    slices.push_back(s);
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
                   Scratch<T>& sc, bool training) {
    const auto n = static_cast<std::size_t>(N * L * out);
    h.ensure(n), y.ensure(n);
    block0.forward(blas, x, N, L, h.data(), {te + time.offset, te_ld, nullptr}, sc, training);
    const T* res = x;
    if (has_residual_conv) {
      r.ensure(n);
      residual.forward(blas, x, N, L, r.data(), sc.col);
      res = r.data();
    }
    block1.forward(blas, h.data(), N, L, y.data(), {nullptr, 0, res}, sc, training);
    return y.data();
  }
  /// dy [N, L, out] -> dx [N, L, in] (overwritten); writes this block's columns of dte [N, total].
  void backward(const bc::Blas& blas, const T* x, bc::dindex N, bc::dindex L, const T* dy, T* dx, T* dte,
                bc::dindex te_ld, Scratch<T>& sc) {
    const auto n = static_cast<std::size_t>(N * L * out);
    sc.g1.ensure(n);
    block1.backward(blas, h.data(), N, L, dy, sc.g1.data(), nullptr, 0, sc);  // g1 = dh
    block0.backward(blas, x, N, L, sc.g1.data(), dx, dte + time.offset, te_ld, sc);
    if (has_residual_conv) {
      sc.g0.ensure(static_cast<std::size_t>(N * L * in));
      residual.backward(blas, x, N, L, dy, sc.g0.data(), sc.col, sc.dcol);
      bc::add_into(dx, sc.g0.data(), N * L * in, blas.stream());
    } else {
      bc::add_into(dx, dy, N * L * in, blas.stream());
    }
  }
  void enable_training(cudaStream_t s) {
    block0.enable_training(s), block1.enable_training(s);
    if (has_residual_conv) residual.enable_training(s);
  }
  void zero_grad(cudaStream_t s) {
    block0.zero_grad(s), block1.zero_grad(s);
    if (has_residual_conv) residual.zero_grad(s);
  }
  void slots(std::vector<ParameterSlot<T>>& o) {
    block0.slots(o), block1.slots(o);
    if (has_residual_conv) residual.slots(o);
  }
};

template <class T>
struct DeviceAgentAttention {
  std::string name;
  bc::dindex channels = 0, qk = 0, v = 0, heads = 4;
  bc::DeviceArray<T> weight, bias, dweight, dbias;  // [2 heads qk + channels, channels]: query, key, value 1x1 convs
  TableSlice time;                                  // their step projections, in the same order
  T gamma = T(1);
  bc::DeviceArray<T> qkv, y, weights, dqkv, gain_part, dgamma;
  DeviceAgentAttention() = default;
  DeviceAgentAttention(const ParameterSource<T>& src, const std::string& name_, bc::dindex c, bc::dindex heads_,
                       ProjectionTable<T>& table)
      : name(name_), channels(c), qk(c / 16), v(c / heads_), heads(heads_) {
    std::vector<T> w, b;
    bc::dindex offset = -1;
    for (const auto& [layer, rows] : layers()) {
      const Tensor<T>& lw = src.get(name + "." + layer + "_layer.weight", {rows, c, 1});
      const Tensor<T>& lb = src.get(name + "." + layer + "_layer.bias", {rows});
      w.insert(w.end(), lw.data(), lw.data() + lw.size());
      b.insert(b.end(), lb.data(), lb.data() + lb.size());
      const TableSlice s = table.add(src, name + "." + layer + "_time_mlp.1", rows);
      if (offset < 0) offset = s.offset;
    }
    weight = upload(w);
    bias = upload(b);
    time = {offset, width(), name};
    gamma = src.get(name + ".gamma", {1})[0];
  }
  std::vector<std::pair<std::string, bc::dindex>> layers() const {
    return {{"query", qk * heads}, {"key", qk * heads}, {"value", v * heads}};
  }
  bc::dindex width() const { return 2 * qk * heads + v * heads; }
  bc::SetAttentionShape shape(bc::dindex B, bc::dindex A, bc::dindex L) const {
    return {B, A, L, heads, qk, v, width(), 0, qk * heads, 2 * qk * heads};
  }
  /// x [B A, L, C] -> y = x + gamma * attention(x).
  const T* forward(const bc::Blas& blas, const T* x, bc::dindex B, bc::dindex A, bc::dindex L, const T* te,
                   bc::dindex te_ld, bool training) {
    const bc::dindex N = B * A, W = width();
    qkv.ensure(static_cast<std::size_t>(N * L * W));
    y.ensure(static_cast<std::size_t>(N * L * channels));
    blas.gemm(bc::Trans::No, bc::Trans::Yes, N * L, W, channels, T(1), x, channels, weight.data(), channels, T(0),
              qkv.data(), W);
    bc::add_bias_and_table(qkv.data(), N, L, W, bias.data(), te + time.offset, te_ld, blas.stream());
    if (training) weights.ensure(static_cast<std::size_t>(B * heads * A * A));
    bc::set_attention(qkv.data(), shape(B, A, L), x, gamma, y.data(), training ? weights.data() : nullptr, blas.stream());
    return y.data();
  }
  /// dy [B A, L, C] -> dx (overwritten; includes the residual path); writes the projections' columns of dte.
  void backward(const bc::Blas& blas, const T* x, bc::dindex B, bc::dindex A, bc::dindex L, const T* dy, T* dx, T* dte,
                bc::dindex te_ld) {
    const bc::dindex N = B * A, W = width();
    dqkv.ensure(static_cast<std::size_t>(N * L * W));
    gain_part.ensure(static_cast<std::size_t>(B * heads));
    bc::set_attention_backward(qkv.data(), shape(B, A, L), weights.data(), dy, gamma, dqkv.data(), gain_part.data(),
                               blas.stream());
    bc::column_sums(gain_part.data(), B * heads, 1, 1, dgamma.data(), true, blas.stream());
    bc::length_sums(dqkv.data(), N, L, W, dte + time.offset, te_ld, blas.stream());
    bc::column_sums(dqkv.data(), N * L, W, W, dbias.data(), true, blas.stream());
    blas.gemm(bc::Trans::Yes, bc::Trans::No, W, channels, N * L, T(1), dqkv.data(), W, x, channels, T(1), dweight.data(),
              channels);
    if (dx != dy)
      bc::check(cudaMemcpyAsync(dx, dy, static_cast<std::size_t>(N * L * channels) * sizeof(T), cudaMemcpyDeviceToDevice,
                                blas.stream()),
                "cudaMemcpyAsync D2D");
    blas.gemm(bc::Trans::No, bc::Trans::No, N * L, channels, W, T(1), dqkv.data(), W, weight.data(), channels, T(1), dx,
              channels);
  }
  void enable_training(cudaStream_t s) {
    zeroed_like(dweight, weight, s), zeroed_like(dbias, bias, s);
    dgamma.ensure(1);
    zero(dgamma, s);
  }
  void zero_grad(cudaStream_t s) { zero(dweight, s), zero(dbias, s), zero(dgamma, s); }
  void slots(std::vector<ParameterSlot<T>>& o) {
    bc::dindex row = 0;
    for (const auto& [layer, rows] : layers()) {
      o.push_back({name + "." + layer + "_layer.weight", {rows, channels, 1}, weight.data() + row * channels,
                   dweight.data() ? dweight.data() + row * channels : nullptr, false, nullptr});
      o.push_back({name + "." + layer + "_layer.bias", {rows}, bias.data() + row, dbias.data() ? dbias.data() + row : nullptr,
                   false, nullptr});
      row += rows;
    }
    o.push_back({name + ".gamma", {1}, nullptr, dgamma.data(), false, &gamma});
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
      : cfg_(cfg), agents_(n_agents), prefix_(prefix), blas_(stream_.get(), allow_tf32) {
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
      ret1_ = {src, "net.returns_mlp.0", cfg.condition_dim, dim};
      ret2_ = {src, "net.returns_mlp.2", dim, 4 * dim};
      ret3_ = {src, "net.returns_mlp.4", 4 * dim, dim};
    }
    table_ = detail::ProjectionTable<T>{E, 0, {}, {}, {}};
    std::vector<index_t> dims{cfg.transition_dim};
    for (index_t m : cfg.dim_mults) dims.push_back(dim * m);
    const index_t levels = cfg.levels();
    for (index_t i = 0; i < levels; ++i) {
      const std::string p = "net.downs." + std::to_string(i);
      Down d;
      d.res1 = Block(src, p + ".0", dims[i], dims[i + 1], K, G, table_);
      d.res2 = Block(src, p + ".1", dims[i + 1], dims[i + 1], K, G, table_);
      d.has_down = i + 1 < levels;
      if (d.has_down) d.down = {src, p + ".2.conv", dims[i + 1], dims[i + 1], 3, 2, 1};
      downs_.push_back(std::move(d));
    }
    mid1_ = Block(src, "net.mid_block1", dims.back(), dims.back(), K, G, table_);
    mid2_ = Block(src, "net.mid_block2", dims.back(), dims.back(), K, G, table_);
    for (index_t j = levels - 1, u = 0; j >= 1; --j, ++u) {
      const std::string p = "net.ups." + std::to_string(u);
      Up up;
      up.res1 = Block(src, p + ".0", 2 * dims[j + 1], dims[j], K, G, table_);
      up.res2 = Block(src, p + ".1", dims[j], dims[j], K, G, table_);
      up.up = {src, p + ".2.conv", dims[j], dims[j], 4, 2, 1};
      ups_.push_back(std::move(up));
    }
    final_block_ = {src, "net.final_conv.0", dim, dim, K, G};
    final_conv_ = {src, "net.final_conv.1", dim, cfg.transition_dim, 1, 1, 0};
    // self_attn.0 at the bottleneck, then one per decoder level from the coarsest (MADiff builds one for
    // the finest level too; it is never used and not loaded).
    attention_.emplace_back(src, "self_attn.0", dims.back(), attention_heads, table_);
    for (index_t i = levels, a = 1; i >= 2; --i, ++a)
      attention_.emplace_back(src, "self_attn." + std::to_string(a), dims[i], attention_heads, table_);
    table_weight_ = detail::upload(table_.weight);
    table_bias_ = detail::upload(table_.bias);
  }

  const UNetConfig& config() const { return cfg_; }
  index_t n_agents() const { return agents_; }
  cudaStream_t stream() const { return stream_.get(); }
  const bc::Blas& blas() const { return blas_; }

  /// Training mode: the forward pass keeps what backward_device() needs; gradients are allocated (zeroed)
  /// the first time.
  void set_training(bool on) {
    if (on && !grads_ready_) {
      for_each_module([&](auto& m) { m.enable_training(stream()); });
      detail::zeroed_like(dtable_weight_, table_weight_, stream());
      detail::zeroed_like(dtable_bias_, table_bias_, stream());
      grads_ready_ = true;
    }
    training_ = on;
  }
  bool training() const { return training_; }
  void zero_grad() {
    require<ConfigError>(grads_ready_, "DeviceMultiAgentUNet::zero_grad: training was never enabled");
    for_each_module([&](auto& m) { m.zero_grad(stream()); });
    detail::zero(dtable_weight_, stream()), detail::zero(dtable_bias_, stream());
  }

  /// Every parameter's device location, with the host names and shapes.
  std::vector<ParameterSlot<T>> parameter_slots() {
    std::vector<ParameterSlot<T>> o;
    for_each_module([&](auto& m) { m.slots(o); });
    const index_t E = cfg_.embed_dim();
    for (const auto& s : table_.slices) {
      o.push_back({s.name + ".weight", {s.width, E}, table_weight_.data() + s.offset * E,
                   dtable_weight_.data() ? dtable_weight_.data() + s.offset * E : nullptr, false, nullptr});
      o.push_back({s.name + ".bias", {s.width}, table_bias_.data() + s.offset,
                   dtable_bias_.data() ? dtable_bias_.data() + s.offset : nullptr, false, nullptr});
    }
    for (auto& s : o) s.name = join_name(prefix_, s.name);
    return o;
  }

  /// Copies the values of `params` (host, by name; every device parameter must be there) to the device.
  void upload_parameters(const ParameterList<T>& params) {
    const ParameterSource<T> src(params, "");
    for (const auto& s : parameter_slots()) {
      const Tensor<T>& v = src.get(s.name, s.shape);
      if (s.host_scalar) {
        *s.host_scalar = v[0];
        continue;
      }
      const std::vector<T> dev = s.swap_last_two ? detail::swap_last_two(v.data(), s.shape[0], s.shape[1], s.shape[2])
                                                 : std::vector<T>(v.data(), v.data() + v.size());
      bc::check(cudaMemcpyAsync(s.value, dev.data(), dev.size() * sizeof(T), cudaMemcpyHostToDevice, stream()),
                "cudaMemcpyAsync H2D");
    }
    stream_.synchronize();
    ++version_;
  }

  /// Counts upload_parameters() calls: a recorded CUDA graph of this network holds the attention gains as
  /// launch arguments, so it is valid only for the version it was recorded at.
  std::size_t parameters_version() const { return version_; }

  /// Adds the device gradients into the `grad` of the host parameters of the same names.
  void add_gradients_to(const ParameterList<T>& params) {
    require<ConfigError>(grads_ready_, "DeviceMultiAgentUNet: training was never enabled");
    std::map<std::string, Parameter<T>*> by_name;
    for (const auto& p : params) by_name[p.name] = p.param;
    for (const auto& s : parameter_slots()) {
      const auto it = by_name.find(s.name);
      require<ConfigError>(it != by_name.end(), "DeviceMultiAgentUNet: no host parameter '", s.name, "' for its gradient");
      Parameter<T>& p = *it->second;
      require_shape(p.grad.shape(), s.shape, "DeviceMultiAgentUNet: gradient of '" + s.name + "'");
      std::vector<T> dev(static_cast<std::size_t>(p.grad.size()));
      bc::check(cudaMemcpyAsync(dev.data(), s.grad, dev.size() * sizeof(T), cudaMemcpyDeviceToHost, stream()),
                "cudaMemcpyAsync D2H");
      stream_.synchronize();
      // device [a, c, b] back to host [a, b, c]
      const std::vector<T> host = s.swap_last_two ? detail::swap_last_two(dev.data(), s.shape[0], s.shape[2], s.shape[1]) : dev;
      for (index_t i = 0; i < p.grad.size(); ++i) p.grad[i] += host[static_cast<std::size_t>(i)];
    }
  }

  /// Device pointers: x [B, H, A, F], time [B], returns [B, A, C] and keep [B, A] (both null without the
  /// return condition; keep null keeps every return) -> out [B, H, A, F]. Stream-ordered, no host sync.
  void forward_device(const T* x, const T* time, const T* returns, const T* keep, index_t B, index_t A, T* out) {
    require<ConfigError>(!cfg_.returns_condition || returns, "DeviceMultiAgentUNet: returns_condition is on but no "
                         "returns were given");
    const index_t H = cfg_.horizon, F = cfg_.transition_dim, N = B * A, dim = cfg_.dim, E = cfg_.embed_dim();
    const bool tr = training_;
    cudaStream_t s = stream();
    batch_ = B, seen_agents_ = A, keep_ptr_ = keep;
    // Step (+ return) embedding [N, E], then every block's projection of mish(embedding) in one GEMM.
    sin_.ensure(static_cast<std::size_t>(N * dim));
    t1_.ensure(static_cast<std::size_t>(N * 4 * dim));
    if (tr) t1_pre_.ensure(static_cast<std::size_t>(N * 4 * dim));
    emb_.ensure(static_cast<std::size_t>(N * E));
    bc::sinusoidal(time, N, A, dim, sin_.data(), dim, s);
    time1_.forward(blas_, sin_.data(), N, t1_.data(), 4 * dim, bc::Act::Mish, tr ? t1_pre_.data() : nullptr);
    time2_.forward(blas_, t1_.data(), N, emb_.data(), E, bc::Act::None);
    if (cfg_.returns_condition) {
      returns_in_ = returns;
      r1_.ensure(static_cast<std::size_t>(N * dim));
      r2_.ensure(static_cast<std::size_t>(N * 4 * dim));
      r3_.ensure(static_cast<std::size_t>(N * dim));
      if (tr) r1_pre_.ensure(static_cast<std::size_t>(N * dim)), r2_pre_.ensure(static_cast<std::size_t>(N * 4 * dim));
      ret1_.forward(blas_, returns, N, r1_.data(), dim, bc::Act::Mish, tr ? r1_pre_.data() : nullptr);
      ret2_.forward(blas_, r1_.data(), N, r2_.data(), 4 * dim, bc::Act::Mish, tr ? r2_pre_.data() : nullptr);
      ret3_.forward(blas_, r2_.data(), N, r3_.data(), dim, bc::Act::None);
      bc::scale_rows_into(r3_.data(), dim, N, dim, keep, emb_.data() + dim, E, s);
    }
    emb_act_.ensure(static_cast<std::size_t>(N * E));
    bc::map_act(emb_.data(), emb_act_.data(), N * E, bc::Act::Mish, s);
    const index_t TW = table_.total;
    te_.ensure(static_cast<std::size_t>(N * TW));
    blas_.gemm(bc::Trans::No, bc::Trans::Yes, N, TW, E, T(1), emb_act_.data(), E, table_weight_.data(), E, T(0), te_.data(),
               TW);
    bc::bias_act(te_.data(), N, TW, TW, table_bias_.data(), bc::Act::None, s);
    const T* te = te_.data();

    // [B, H, A, F] -> [B, A, H, F] = [N, H, F] channels-last.
    input_.ensure(static_cast<std::size_t>(N * H * F));
    bc::swap_axes12(x, B, H, A, F, input_.data(), s);
    const T* h = input_.data();
    index_t L = H;
    for (auto& d : downs_) {
      d.in = h, d.length = L;
      h = d.res2.forward(blas_, d.res1.forward(blas_, h, N, L, te, TW, sc_, tr), N, L, te, TW, sc_, tr);
      if (d.has_down) {
        const index_t Lout = d.down.out_length(L);
        d.out.ensure(static_cast<std::size_t>(N * Lout * d.down.cout));
        d.down.forward(blas_, h, N, L, d.out.data(), sc_.col);
        h = d.out.data(), L = Lout;
      }
    }
    mid_in_ = h;
    h = mid2_.forward(blas_, mid1_.forward(blas_, h, N, L, te, TW, sc_, tr), N, L, te, TW, sc_, tr);
    h = attention_[0].forward(blas_, h, B, A, L, te, TW, tr);
    for (std::size_t j = 0; j < ups_.size(); ++j) {
      auto& u = ups_[j];
      const Down& skip = downs_[downs_.size() - 1 - j];  // coarsest first; the finest is never consumed
      const T* attended = attention_[j + 1].forward(blas_, skip.res2.y.data(), B, A, L, te, TW, tr);
      const index_t cx = u.res1.in / 2;
      u.length = L;
      u.cat.ensure(static_cast<std::size_t>(N * L * u.res1.in));
      bc::concat_cols(h, cx, attended, u.res1.in - cx, N * L, u.cat.data(), s);
      h = u.res2.forward(blas_, u.res1.forward(blas_, u.cat.data(), N, L, te, TW, sc_, tr), N, L, te, TW, sc_, tr);
      const index_t Lout = u.up.out_length(L);
      u.out.ensure(static_cast<std::size_t>(N * Lout * u.up.cout));
      u.up.forward(blas_, h, N, L, u.out.data(), sc_.col);
      h = u.out.data(), L = Lout;
    }
    final_in_ = h;
    final_h_.ensure(static_cast<std::size_t>(N * L * dim));
    final_block_.forward(blas_, h, N, L, final_h_.data(), {}, sc_, tr);
    output_.ensure(static_cast<std::size_t>(N * L * F));
    final_conv_.forward(blas_, final_h_.data(), N, L, output_.data(), sc_.col);
    bc::swap_axes12(output_.data(), B, A, H, F, out, s);  // [B, A, H, F] -> [B, H, A, F]
    forward_was_training_ = tr;
  }

  /// dout [B, H, A, F] (device): accumulates every parameter's gradient for the last forward_device()
  /// call, which must have run in training mode. The input's gradient is not formed (nothing needs it).
  void backward_device(const T* dout) {
    require<ConfigError>(forward_was_training_, "DeviceMultiAgentUNet::backward_device: the last forward pass did not "
                         "run in training mode (set_training(true))");
    const index_t B = batch_, A = seen_agents_, N = B * A, H = cfg_.horizon, F = cfg_.transition_dim, dim = cfg_.dim;
    const index_t E = cfg_.embed_dim(), TW = table_.total;
    cudaStream_t s = stream();
    dte_.ensure(static_cast<std::size_t>(N * TW));
    detail::zero(dte_, s);
    auto& ga = grad_a_;
    auto& gb = grad_b_;
    const auto room = [&](bc::DeviceArray<T>& a, index_t n) { return a.ensure(static_cast<std::size_t>(n)); };
    // [B, H, A, F] -> [N, H, F]
    room(ga, N * H * F);
    bc::swap_axes12(dout, B, H, A, F, ga.data(), s);
    index_t L = H;
    room(gb, N * L * dim);
    final_conv_.backward(blas_, final_h_.data(), N, L, ga.data(), gb.data(), sc_.col, sc_.dcol);
    room(ga, N * L * dim);
    final_block_.backward(blas_, final_in_, N, L, gb.data(), ga.data(), nullptr, 0, sc_);  // ga: d(last up output)
    std::vector<bc::DeviceArray<T>>& dskip = dskip_;
    dskip.resize(downs_.size());
    std::vector<bool> skip_has_grad(downs_.size(), false);
    for (std::size_t j = ups_.size(); j-- > 0;) {
      auto& u = ups_[j];
      const index_t Lu = u.length, C = u.res2.out, Cin = u.res1.in, cx = Cin / 2;
      room(gb, N * Lu * C);
      u.up.backward(blas_, u.res2.y.data(), N, Lu, ga.data(), gb.data(), sc_.col);
      room(ga, N * Lu * C);
      u.res2.backward(blas_, u.res1.y.data(), N, Lu, gb.data(), ga.data(), dte_.data(), TW, sc_);
      room(gb, N * Lu * Cin);
      u.res1.backward(blas_, u.cat.data(), N, Lu, ga.data(), gb.data(), dte_.data(), TW, sc_);  // gb: d(cat)
      const std::size_t level = downs_.size() - 1 - j;
      room(ga, N * Lu * cx);
      room(dcat_skip_, N * Lu * (Cin - cx));
      bc::split_cols(gb.data(), N * Lu, cx, Cin - cx, ga.data(), dcat_skip_.data(), s);
      room(dskip[level], N * Lu * (Cin - cx));
      attention_[j + 1].backward(blas_, downs_[level].res2.y.data(), B, A, Lu, dcat_skip_.data(), dskip[level].data(),
                                 dte_.data(), TW);
      skip_has_grad[level] = true;
      L = Lu;
    }
    // ga: gradient of the bottleneck attention's output.
    room(gb, N * L * mid2_.out);
    attention_[0].backward(blas_, mid2_.y.data(), B, A, L, ga.data(), gb.data(), dte_.data(), TW);
    room(ga, N * L * mid2_.out);
    mid2_.backward(blas_, mid1_.y.data(), N, L, gb.data(), ga.data(), dte_.data(), TW, sc_);
    room(gb, N * L * mid1_.in);
    mid1_.backward(blas_, mid_in_, N, L, ga.data(), gb.data(), dte_.data(), TW, sc_);
    std::swap(ga, gb);  // ga: gradient of the encoder's output
    for (std::size_t i = downs_.size(); i-- > 0;) {
      auto& d = downs_[i];
      const index_t Ld = d.length, C = d.res2.out;
      if (d.has_down) {
        room(gb, N * Ld * C);
        d.down.backward(blas_, d.res2.y.data(), N, Ld, ga.data(), gb.data(), sc_.col, sc_.dcol);
        std::swap(ga, gb);
      }
      if (skip_has_grad[i]) bc::add_into(ga.data(), dskip[i].data(), N * Ld * C, s);
      room(gb, N * Ld * C);
      d.res2.backward(blas_, d.res1.y.data(), N, Ld, ga.data(), gb.data(), dte_.data(), TW, sc_);
      room(ga, N * Ld * d.res1.in);
      d.res1.backward(blas_, d.in, N, Ld, gb.data(), ga.data(), dte_.data(), TW, sc_);
    }
    // The projection table, then the embedding MLPs.
    bc::column_sums(dte_.data(), N, TW, TW, dtable_bias_.data(), true, s);
    blas_.gemm(bc::Trans::Yes, bc::Trans::No, TW, E, N, T(1), dte_.data(), TW, emb_act_.data(), E, T(1),
               dtable_weight_.data(), E);
    room(demb_act_, N * E);
    blas_.gemm(bc::Trans::No, bc::Trans::No, N, E, TW, T(1), dte_.data(), TW, table_weight_.data(), E, T(0),
               demb_act_.data(), E);
    room(demb_, N * E);
    bc::act_backward(emb_.data(), demb_act_.data(), N, E, E, demb_.data(), bc::Act::Mish, s);
    room(dt1_, N * 4 * dim);
    time2_.backward(blas_, t1_.data(), N, demb_.data(), E, dt1_.data());
    bc::act_backward(t1_pre_.data(), dt1_.data(), N, 4 * dim, 4 * dim, dt1_.data(), bc::Act::Mish, s);
    time1_.backward(blas_, sin_.data(), N, dt1_.data(), 4 * dim, nullptr);
    if (cfg_.returns_condition) {
      room(dr3_, N * dim);
      bc::scale_rows_into(demb_.data() + dim, E, N, dim, keep_ptr_, dr3_.data(), dim, s);
      room(dr2_, N * 4 * dim);
      ret3_.backward(blas_, r2_.data(), N, dr3_.data(), dim, dr2_.data());
      bc::act_backward(r2_pre_.data(), dr2_.data(), N, 4 * dim, 4 * dim, dr2_.data(), bc::Act::Mish, s);
      room(dr1_, N * dim);
      ret2_.backward(blas_, r1_.data(), N, dr2_.data(), 4 * dim, dr1_.data());
      bc::act_backward(r1_pre_.data(), dr1_.data(), N, dim, dim, dr1_.data(), bc::Act::Mish, s);
      ret1_.backward(blas_, returns_in_, N, dr1_.data(), dim, nullptr);
    }
  }

  /// Host forward: x [B, H, A, F], time [B], returns [B, A] or [B, A, C], cond_keep [B, A] -> [B, H, A, F].
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& time, const Tensor<T>* returns = nullptr,
                    const Tensor<T>* cond_keep = nullptr) {
    require<ShapeError>(x.rank() == 4 && x.dim(1) == cfg_.horizon && x.dim(2) >= 1 && x.dim(3) == cfg_.transition_dim,
                        "DeviceMultiAgentUNet: expected x [B, ", cfg_.horizon, ", A, ", cfg_.transition_dim, "], got ",
                        to_string(x.shape()));
    const index_t B = x.dim(0), A = x.dim(2);
    require_shape(time.shape(), {B}, "DeviceMultiAgentUNet: diffusion step tensor");
    require<ShapeError>(A <= backend::cuda::kMaxAttentionSet, "DeviceMultiAgentUNet: at most ",
                        backend::cuda::kMaxAttentionSet, " agents, got ", A);
    if (returns) Condition<T>{*returns, {}, {}}.validate(B, A, "DeviceMultiAgentUNet", cfg_.condition_dim);
    if (cond_keep) require_shape(cond_keep->shape(), {B, A}, "DeviceMultiAgentUNet: cond_keep");
    x_dev_.upload(x.data(), static_cast<std::size_t>(x.size()), stream());
    time_dev_.upload(time.data(), static_cast<std::size_t>(B), stream());
    if (returns) returns_dev_.upload(returns->data(), static_cast<std::size_t>(returns->size()), stream());
    if (cond_keep) keep_dev_.upload(cond_keep->data(), static_cast<std::size_t>(B * A), stream());
    out_dev_.ensure(static_cast<std::size_t>(x.size()));
    forward_device(x_dev_.data(), time_dev_.data(), returns ? returns_dev_.data() : nullptr,
                   cond_keep ? keep_dev_.data() : nullptr, B, A, out_dev_.data());
    Tensor<T> y(x.shape());
    out_dev_.download(y.data(), static_cast<std::size_t>(y.size()), stream());
    return y;
  }

  /// Host backward: dy [B, H, A, F] for the last forward() -> accumulates the device gradients.
  void backward(const Tensor<T>& dy) {
    require_shape(dy.shape(), {batch_, cfg_.horizon, seen_agents_, cfg_.transition_dim}, "DeviceMultiAgentUNet::backward dy");
    dy_dev_.upload(dy.data(), static_cast<std::size_t>(dy.size()), stream());
    backward_device(dy_dev_.data());
    stream_.synchronize();
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
    const T* in = nullptr;  // the level's input (last forward)
    index_t length = 0;
  };
  struct Up {
    detail::DeviceResidualBlock<T> res1, res2;
    detail::DeviceConvTranspose<T> up;
    bc::DeviceArray<T> cat, out;
    index_t length = 0;  // input length (last forward)
  };

  template <class F>
  void for_each_module(F&& f) {
    f(time1_), f(time2_);
    if (cfg_.returns_condition) f(ret1_), f(ret2_), f(ret3_);
    for (auto& d : downs_) {
      f(d.res1), f(d.res2);
      if (d.has_down) f(d.down);
    }
    f(mid1_), f(mid2_);
    for (auto& u : ups_) f(u.res1), f(u.res2), f(u.up);
    f(final_block_), f(final_conv_);
    for (auto& a : attention_) f(a);
  }

  UNetConfig cfg_;
  index_t agents_ = 1;
  std::string prefix_;
  bc::Stream stream_;  // declared before blas_: destroyed after it
  bc::Blas blas_;
  detail::DeviceLinear<T> time1_, time2_, ret1_, ret2_, ret3_;
  std::vector<Down> downs_;
  detail::DeviceResidualBlock<T> mid1_, mid2_;
  std::vector<Up> ups_;
  detail::DeviceConvBlock<T> final_block_;
  detail::DeviceConv<T> final_conv_;
  std::vector<detail::DeviceAgentAttention<T>> attention_;
  detail::ProjectionTable<T> table_;
  bc::DeviceArray<T> table_weight_, table_bias_, dtable_weight_, dtable_bias_;
  bool training_ = false, grads_ready_ = false, forward_was_training_ = false;
  index_t batch_ = 0, seen_agents_ = 0;
  std::size_t version_ = 0;
  const T* keep_ptr_ = nullptr;
  const T* returns_in_ = nullptr;
  const T* mid_in_ = nullptr;
  const T* final_in_ = nullptr;
  detail::Scratch<T> sc_;
  bc::DeviceArray<T> sin_, t1_, t1_pre_, r1_, r1_pre_, r2_, r2_pre_, r3_, emb_, emb_act_, te_, input_, final_h_, output_;
  bc::DeviceArray<T> dte_, grad_a_, grad_b_, dcat_skip_, demb_act_, demb_, dt1_, dr1_, dr2_, dr3_;
  std::vector<bc::DeviceArray<T>> dskip_;
  bc::DeviceArray<T> x_dev_, time_dev_, returns_dev_, keep_dev_, out_dev_, dy_dev_;
};

}  // namespace coordiff::nn::cuda
