#pragma once
// A critic MLP (Linear -> ReLU -> Linear -> ReLU -> Linear) evaluated on B data rows and on G * S
// counterfactual copies of them in which one agent's action columns hold a candidate action (the
// conservative penalty's samples). The copies differ from their data row in U columns only, so their
// first-layer pre-activations are the data row's plus W1[:, action columns] (candidate - data action):
// the first layer, about half the work of a centralised critic, is computed for the B data rows alone,
// forward and backward (its weight gradient is sum_r dpre_r x_r, and x_r = x_b + a U-column change).
// Results equal a plain forward/backward over the explicit rows up to rounding.
#include <algorithm>
#include <vector>

#include "coordiff/backend/cpu/gemm.hpp"
#include "coordiff/nn/batch_norm.hpp"
#include "coordiff/nn/mlp.hpp"

namespace coordiff::offline {

/// Column moments of the G S B counterfactual rows a CounterfactualPass evaluates (data row b of x [B, W]
/// with agent g's U action columns, from columns[g] on, holding candidates (g, k, b) [G, S, B, U]),
/// from the data rows and the candidates, without building the rows: what a batch-normalised critic
/// standardises those rows with.
template <class T>
nn::ColumnMoments counterfactual_moments(const Tensor<T>& x, const std::vector<index_t>& columns, const Tensor<T>& candidates) {
  require<ShapeError>(x.rank() == 2 && candidates.rank() == 4 && candidates.dim(0) == static_cast<index_t>(columns.size()) &&
                          candidates.dim(2) == x.dim(0) && !columns.empty(),
                      "counterfactual_moments: expected x [B, W] and candidates [G, S, B, U] with G = columns, got ",
                      to_string(x.shape()), " and ", to_string(candidates.shape()));
  const index_t B = x.dim(0), W = x.dim(1), G = candidates.dim(0), S = candidates.dim(1), U = candidates.dim(3);
  std::vector<double> sum(static_cast<std::size_t>(W), 0.0), sq(static_cast<std::size_t>(W), 0.0);
  for (index_t b = 0; b < B; ++b)
    for (index_t c = 0; c < W; ++c) {
      const double v = static_cast<double>(x(b, c));
      sum[static_cast<std::size_t>(c)] += v, sq[static_cast<std::size_t>(c)] += v * v;
    }
  const auto copies = static_cast<double>(G * S);
  std::vector<double> total(static_cast<std::size_t>(W)), total_sq(static_cast<std::size_t>(W));
  for (std::size_t c = 0; c < total.size(); ++c) total[c] = copies * sum[c], total_sq[c] = copies * sq[c];
  for (index_t g = 0; g < G; ++g)
    for (index_t u = 0; u < U; ++u) {
      const auto c = static_cast<std::size_t>(columns[static_cast<std::size_t>(g)] + u);
      require<ShapeError>(c < total.size(), "counterfactual_moments: action column ", c, " outside ", W, " columns");
      total[c] -= static_cast<double>(S) * sum[c], total_sq[c] -= static_cast<double>(S) * sq[c];  // block g replaces them
      for (index_t k = 0; k < S; ++k)
        for (index_t b = 0; b < B; ++b) {
          const double v = static_cast<double>(candidates(g, k, b, u));
          total[c] += v, total_sq[c] += v * v;
        }
    }
  const index_t rows = G * S * B;
  nn::ColumnMoments m{std::vector<double>(total.size()), std::vector<double>(total.size()), rows};
  for (std::size_t c = 0; c < total.size(); ++c) {
    m.mean[c] = total[c] / static_cast<double>(rows);
    m.variance[c] = std::max(0.0, total_sq[c] / static_cast<double>(rows) - m.mean[c] * m.mean[c]);
  }
  return m;
}

template <class T>
class CounterfactualPass {
 public:
  /// head: the critic; x: data rows [B, W]; columns[g]: first action column of agent g's block;
  /// candidates [G, S, B, U] (G may be 0). Returns Q for rows ordered (data b), then (g, k, b): [(1 + G S) B].
  Tensor<T> forward(nn::MLP<T>& head, const Tensor<T>& x, const std::vector<index_t>& columns, const Tensor<T>& candidates) {
    auto& L = head.layers();
    require<ConfigError>(L.size() == 3, "CounterfactualPass: expects a three-layer critic, got ", L.size(), " layers");
    head_ = &head, x_ = x, columns_ = columns;
    B_ = x.dim(0), W_ = x.dim(1), H_ = L[0].out_features();
    G_ = static_cast<index_t>(columns.size());
    S_ = G_ > 0 ? candidates.dim(1) : 0;
    U_ = G_ > 0 ? candidates.dim(3) : 0;
    if (G_ > 0) require_shape(candidates.shape(), {G_, S_, B_, U_}, "CounterfactualPass candidates");
    const index_t R = B_ * (1 + G_ * S_);
    const T* w1 = L[0].weight().value.data();  // [H, W]
    pre1_ = Tensor<T>({R, H_});
    for (index_t b = 0; b < B_; ++b) std::copy(L[0].bias().value.begin(), L[0].bias().value.end(), pre1_.data() + b * H_);
    backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::Yes, B_, H_, W_, T(1), x.data(), W_, w1, W_, T(1), pre1_.data(), H_);
    // delta [G, S, B, U]: candidate minus data action; block g of the copies gets delta_g W1[:, cols_g]^T.
    delta_ = Tensor<T>({std::max<index_t>(G_, 1), std::max<index_t>(S_, 1), B_, std::max<index_t>(U_, 1)}, T(0));
    for (index_t g = 0; g < G_; ++g) {
      const index_t col = columns[static_cast<std::size_t>(g)];
      for (index_t k = 0; k < S_; ++k) {
        T* block = pre1_.data() + (1 + g * S_ + k) * B_ * H_;
        std::copy(pre1_.data(), pre1_.data() + B_ * H_, block);
        for (index_t b = 0; b < B_; ++b)
          for (index_t u = 0; u < U_; ++u) delta_(g, k, b, u) = candidates(g, k, b, u) - x(b, col + u);
      }
      backend::cpu::gemm(backend::cpu::Trans::No, backend::cpu::Trans::Yes, S_ * B_, H_, U_, T(1), &delta_(g, 0, 0, 0), U_,
                         w1 + col, W_, T(1), pre1_.data() + (1 + g * S_) * B_ * H_, H_);
    }
    Tensor<T> h1(pre1_.shape());
    nn::activation_forward(nn::Activation::ReLU, pre1_.data(), h1.data(), h1.size());
    pre2_ = L[1].forward(h1);
    Tensor<T> h2(pre2_.shape());
    nn::activation_forward(nn::Activation::ReLU, pre2_.data(), h2.data(), h2.size());
    return L[2].forward(h2).reshape({R});
  }

  /// Accumulates the parameter gradients of the last forward's head for dq [(1 + G S) B].
  void backward(const Tensor<T>& dq) {
    auto& L = head_->layers();
    const index_t R = B_ * (1 + G_ * S_);
    require_shape(dq.shape(), {R}, "CounterfactualPass::backward dq");
    Tensor<T> g2 = L[2].backward(dq.reshape({R, 1}));
    Tensor<T> d2(g2.shape());
    nn::activation_backward(nn::Activation::ReLU, pre2_.data(), g2.data(), d2.data(), d2.size());
    Tensor<T> g1 = L[1].backward(d2);
    Tensor<T> d1(g1.shape());
    nn::activation_backward(nn::Activation::ReLU, pre1_.data(), g1.data(), d1.data(), d1.size());
    // Every copy of data row b contributes d1_r x_b, plus d1_r delta_r on its U changed columns.
    Tensor<T> summed({B_, H_});
    std::copy(d1.data(), d1.data() + B_ * H_, summed.data());
    for (index_t j = 1; j < R / B_; ++j) {
      const T* block = d1.data() + j * B_ * H_;
      for (index_t i = 0; i < B_ * H_; ++i) summed[i] += block[i];
    }
    T* gw = L[0].weight().grad.data();
    backend::cpu::gemm(backend::cpu::Trans::Yes, backend::cpu::Trans::No, H_, W_, B_, T(1), summed.data(), H_, x_.data(), W_, T(1), gw, W_);
    for (index_t g = 0; g < G_; ++g)  // gw[:, cols_g] += d1_g^T delta_g
      backend::cpu::gemm(backend::cpu::Trans::Yes, backend::cpu::Trans::No, H_, U_, S_ * B_, T(1), d1.data() + (1 + g * S_) * B_ * H_, H_,
                         &delta_(g, 0, 0, 0), U_, T(1), gw + columns_[static_cast<std::size_t>(g)], W_);
    T* gb = L[0].bias().grad.data();
    for (index_t b = 0; b < B_; ++b)
      for (index_t h = 0; h < H_; ++h) gb[h] += summed[b * H_ + h];
  }

 private:
  nn::MLP<T>* head_ = nullptr;
  Tensor<T> x_, pre1_, pre2_, delta_;
  std::vector<index_t> columns_;
  index_t B_ = 0, W_ = 0, H_ = 0, G_ = 0, S_ = 0, U_ = 0;
};

}  // namespace coordiff::offline
