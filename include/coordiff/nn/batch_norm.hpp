#pragma once
// Batch normalisation over the rows of a [B, C] input (Ioffe & Szegedy 2015; torch.nn.BatchNorm1d with
// affine=False): in training mode every column is standardised with the mean and biased variance of the
// call's own rows, and the running statistics (momentum, unbiased variance) are updated; in evaluation
// mode the running statistics are used. The offline critics of OMAR's and CFCQL's reference code put one
// on their inputs (weight 1, bias 0 at initialisation); what matters for their actor updates is that the
// statistics, hence the gradient, depend on the whole batch (training-mode backward below).
//
// Column moments can also be given directly (moments_of / normalise_with), for a call whose rows are
// implicit, e.g. counterfactual copies whose moments follow from the data rows and the candidates.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

/// Per-column mean and 1 / sqrt(biased variance + eps) of a set of rows.
struct ColumnMoments {
  std::vector<double> mean, variance;  ///< variance: biased (divided by the row count)
  index_t rows = 0;
};

/// Moments of the rows of x [B, C].
template <class T>
ColumnMoments moments_of(const Tensor<T>& x) {
  require<ShapeError>(x.rank() == 2 && x.dim(0) >= 1, "moments_of: expected [B, C] with B >= 1, got ", to_string(x.shape()));
  const index_t B = x.dim(0), C = x.dim(1);
  ColumnMoments m{std::vector<double>(static_cast<std::size_t>(C), 0.0), std::vector<double>(static_cast<std::size_t>(C), 0.0), B};
  for (index_t b = 0; b < B; ++b)
    for (index_t c = 0; c < C; ++c) m.mean[static_cast<std::size_t>(c)] += static_cast<double>(x(b, c));
  for (auto& v : m.mean) v /= static_cast<double>(B);
  for (index_t b = 0; b < B; ++b)
    for (index_t c = 0; c < C; ++c) {
      const double d = static_cast<double>(x(b, c)) - m.mean[static_cast<std::size_t>(c)];
      m.variance[static_cast<std::size_t>(c)] += d * d;
    }
  for (auto& v : m.variance) v /= static_cast<double>(B);
  return m;
}

/// 1 / sqrt(variance_c + eps) for every column of m.
inline std::vector<double> inverse_std(const ColumnMoments& m, double eps) {
  std::vector<double> inv(m.variance.size());
  for (std::size_t c = 0; c < inv.size(); ++c) inv[c] = 1.0 / std::sqrt(m.variance[c] + eps);
  return inv;
}

/// (x - mean_c) / sqrt(variance_c + eps), column by column, in place; x is [B, C] or, with first_column,
/// the columns first_column .. first_column + x.dim(-1) of the moments.
template <class T>
void normalise_with(Tensor<T>& x, const ColumnMoments& m, double eps, index_t first_column = 0) {
  const index_t C = x.dim(x.rank() - 1), rows = x.size() / std::max<index_t>(C, 1);
  require<ShapeError>(first_column >= 0 && first_column + C <= static_cast<index_t>(m.mean.size()),
                      "normalise_with: columns ", first_column, "..", first_column + C, " of ", m.mean.size());
  std::vector<double> inv(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) inv[static_cast<std::size_t>(c)] = 1.0 / std::sqrt(m.variance[static_cast<std::size_t>(first_column + c)] + eps);
  T* p = x.data();
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < C; ++c, ++p)
      *p = static_cast<T>((static_cast<double>(*p) - m.mean[static_cast<std::size_t>(first_column + c)]) * inv[static_cast<std::size_t>(c)]);
}

template <class T>
class BatchNorm1d {
 public:
  BatchNorm1d() = default;
  explicit BatchNorm1d(index_t features, double momentum = 0.1, double eps = 1e-5)
      : C_(features), momentum_(momentum), eps_(eps),
        running_mean_(static_cast<std::size_t>(features), 0.0), running_var_(static_cast<std::size_t>(features), 1.0) {
    require<ConfigError>(features >= 1 && momentum >= 0 && momentum <= 1 && eps > 0,
                         "BatchNorm1d: need features >= 1, momentum in [0, 1] and eps > 0");
  }
  index_t features() const { return C_; }
  double eps() const { return eps_; }
  void train(bool on = true) { training_ = on; }
  bool training() const { return training_; }
  const std::vector<double>& running_mean() const { return running_mean_; }
  const std::vector<double>& running_var() const { return running_var_; }
  /// The running statistics as moments (evaluation mode's normalisation).
  ColumnMoments running_moments() const { return {running_mean_, running_var_, 0}; }
  void collect_parameters(ParameterList<T>&, const std::string&) {}  // affine=False: no parameters

  /// Folds the moments of one training call into the running statistics (torch: unbiased variance).
  void track(const ColumnMoments& m) {
    const double unbiased = m.rows > 1 ? static_cast<double>(m.rows) / static_cast<double>(m.rows - 1) : 1.0;
    for (index_t c = 0; c < C_; ++c) {
      const auto k = static_cast<std::size_t>(c);
      running_mean_[k] = (1 - momentum_) * running_mean_[k] + momentum_ * m.mean[k];
      running_var_[k] = (1 - momentum_) * running_var_[k] + momentum_ * m.variance[k] * unbiased;
    }
  }

  Tensor<T> forward(const Tensor<T>& x) {
    require<ShapeError>(x.rank() == 2 && x.dim(1) == C_ && x.dim(0) >= 1, "BatchNorm1d: expected [B, ", C_, "], got ",
                        to_string(x.shape()));
    Tensor<T> y = x;
    if (!training_) {
      normalise_with(y, running_moments(), eps_);
      cached_ = false;
      return y;
    }
    const ColumnMoments m = moments_of(x);
    track(m);
    normalise_with(y, m, eps_);
    cached_ = grad_enabled();
    if (cached_) xhat_ = y, inv_std_ = inverse_std(m, eps_);
    return y;
  }

  /// Training-mode input gradient: the batch statistics depend on every row, so
  ///   dx_bc = inv_std_c (dy_bc - mean_b dy_bc - xhat_bc mean_b(dy_bc xhat_bc)).
  Tensor<T> backward(const Tensor<T>& dy) {
    require_cached(cached_, "BatchNorm1d");
    require_shape(dy.shape(), xhat_.shape(), "BatchNorm1d::backward dy");
    return batch_standardise_backward(dy, xhat_, inv_std_);
  }

  /// The same gradient for any standardised rows xhat [B, C] and their 1 / std per column.
  static Tensor<T> batch_standardise_backward(const Tensor<T>& dy, const Tensor<T>& xhat, const std::vector<double>& inv_std) {
    const index_t B = dy.dim(0), C = dy.dim(1);
    std::vector<double> mean_dy(static_cast<std::size_t>(C), 0.0), mean_dy_xhat(static_cast<std::size_t>(C), 0.0);
    for (index_t b = 0; b < B; ++b)
      for (index_t c = 0; c < C; ++c) {
        mean_dy[static_cast<std::size_t>(c)] += static_cast<double>(dy(b, c)) / static_cast<double>(B);
        mean_dy_xhat[static_cast<std::size_t>(c)] += static_cast<double>(dy(b, c)) * static_cast<double>(xhat(b, c)) / static_cast<double>(B);
      }
    Tensor<T> dx(dy.shape());
    for (index_t b = 0; b < B; ++b)
      for (index_t c = 0; c < C; ++c) {
        const auto k = static_cast<std::size_t>(c);
        dx(b, c) = static_cast<T>(inv_std[k] * (static_cast<double>(dy(b, c)) - mean_dy[k] - static_cast<double>(xhat(b, c)) * mean_dy_xhat[k]));
      }
    return dx;
  }

 private:
  index_t C_ = 0;
  double momentum_ = 0.1, eps_ = 1e-5;
  bool training_ = true;
  std::vector<double> running_mean_, running_var_;
  Tensor<T> xhat_;
  std::vector<double> inv_std_;
  bool cached_ = false;
};

}  // namespace coordiff::nn
