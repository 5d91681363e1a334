#pragma once
// The network of every auxiliary model: a two-layer MLP (in -> 256 -> ReLU -> 256 -> ReLU -> out, the
// MASTARS appendix D default) trained by Adam on a mean-squared error, with a held-out split so that
// each model reports how well it generalises.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <numeric>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/optim/adam.hpp"

namespace coordiff::auxiliary {

struct FitOptions {
  index_t steps = 5000;
  index_t batch_size = 256;
  double lr = 1e-3;
  double heldout_fraction = 0.1;  ///< rows kept out of training to measure the error
  std::uint64_t seed = 0;         ///< split, minibatches (and, for the value model, nothing else)
  index_t log_every = 0;          ///< progress line period in steps; 0 = none

  void validate(const char* who) const {
    require<ConfigError>(steps >= 1 && batch_size >= 1 && lr > 0, who, ": steps and batch_size must be >= 1 and lr > 0");
    require<ConfigError>(heldout_fraction >= 0 && heldout_fraction < 1, who, ": heldout_fraction must be in [0, 1), got ",
                         heldout_fraction);
  }
};

/// Errors after fitting. heldout_variance is the mean per-output variance of the held-out targets, so
/// relative_error() < 1 means better than predicting their mean.
struct FitReport {
  double train_mse = 0, heldout_mse = 0, heldout_variance = 0, seconds = 0;
  index_t train_rows = 0, heldout_rows = 0, steps = 0;
  double relative_error() const { return heldout_variance > 0 ? heldout_mse / heldout_variance : 0.0; }
};

namespace detail {
/// A Philox-seeded permutation of 0..n-1 (Fisher-Yates), split into (train, held-out).
inline std::pair<std::vector<index_t>, std::vector<index_t>> split_rows(index_t n, double heldout_fraction,
                                                                        std::uint64_t seed) {
  std::vector<index_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), index_t{0});
  const Philox gen(seed ^ 0x73706c6974ull, 0);
  for (index_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<index_t>(gen.bits(static_cast<std::uint64_t>(i)) % static_cast<std::uint64_t>(i + 1));
    std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
  }
  const auto held = static_cast<index_t>(static_cast<double>(n) * heldout_fraction);
  require<ConfigError>(n - held >= 1, "auxiliary: no training rows left after holding out ", held, " of ", n);
  return {std::vector<index_t>(perm.begin(), perm.end() - held), std::vector<index_t>(perm.end() - held, perm.end())};
}

template <class T>
double mse(const Tensor<T>& a, const Tensor<T>& b) {
  double s = 0;
  for (index_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return a.size() > 0 ? s / static_cast<double>(a.size()) : 0.0;
}

/// Mean over columns of each column's variance.
template <class T>
double mean_column_variance(const Tensor<T>& y) {
  const index_t n = y.dim(0), w = y.dim(1);
  if (n == 0) return 0;
  double total = 0;
  for (index_t j = 0; j < w; ++j) {
    double m = 0, v = 0;
    for (index_t i = 0; i < n; ++i) m += y(i, j) / static_cast<double>(n);
    for (index_t i = 0; i < n; ++i) v += (y(i, j) - m) * (y(i, j) - m) / static_cast<double>(n);
    total += v / static_cast<double>(w);
  }
  return total;
}
}  // namespace detail

template <class T = float>
class Regressor {
 public:
  Regressor() = default;
  Regressor(index_t in, index_t out, index_t hidden = 256, std::uint64_t seed = 0) : in_(in), out_(out) {
    require<ConfigError>(in >= 1 && out >= 1 && hidden >= 1, "Regressor: sizes must be >= 1, got ", in, " -> ", hidden,
                         " -> ", out);
    Rng rng(seed, 0);
    net_ = nn::MLP<T>({in, hidden, hidden, out}, nn::Activation::ReLU, rng);
  }
  // Copies and moves carry the weights, not the optimiser state (Adam points at the parameters it
  // updates, so it is rebuilt on the next train_step).
  Regressor(const Regressor& o) : in_(o.in_), out_(o.out_), net_(o.net_) {}
  Regressor(Regressor&& o) noexcept : in_(o.in_), out_(o.out_), net_(std::move(o.net_)) { o.opt_.reset(); }
  Regressor& operator=(const Regressor& o) {
    if (this != &o) in_ = o.in_, out_ = o.out_, net_ = o.net_, opt_.reset();
    return *this;
  }
  Regressor& operator=(Regressor&& o) noexcept {
    in_ = o.in_, out_ = o.out_, net_ = std::move(o.net_), opt_.reset(), o.opt_.reset();
    return *this;
  }

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }

  /// Predictions [N, out] for inputs [N, in].
  Tensor<T> operator()(const Tensor<T>& x) {
    require_shape(x.shape(), {x.dim(0), in_}, "Regressor input");
    nn::NoGradGuard no_grad;
    return net_.forward(x);
  }

  /// One Adam step on the mean-squared error against `target` [N, out]; returns the loss before it.
  double train_step(const Tensor<T>& x, const Tensor<T>& target, double lr) {
    require_shape(target.shape(), {x.dim(0), out_}, "Regressor target");
    if (!opt_) opt_ = std::make_unique<nn::optim::Adam<T>>(parameters(), nn::optim::AdamOptions{.lr = lr});
    opt_->set_lr(lr);
    const Tensor<T> y = net_.forward(x);
    Tensor<T> dy(y.shape());
    double loss = 0;
    const double scale = 2.0 / static_cast<double>(y.size());
    for (index_t i = 0; i < y.size(); ++i) {
      const double d = static_cast<double>(y[i]) - target[i];
      loss += d * d / static_cast<double>(y.size());
      dy[i] = static_cast<T>(scale * d);
    }
    net_.backward(dy);
    opt_->step();
    opt_->zero_grad();
    return loss;
  }

  /// Supervised fit of x [N, in] -> y [N, out] with a held-out split.
  FitReport fit(const Tensor<T>& x, const Tensor<T>& y, const FitOptions& opt, std::ostream* log = nullptr,
                const std::string& name = "regressor") {
    opt.validate("Regressor::fit");
    require_shape(x.shape(), {x.dim(0), in_}, name + " inputs");
    require_shape(y.shape(), {x.dim(0), out_}, name + " targets");
    require_finite(x, name + " inputs");
    require_finite(y, name + " targets");
    const auto start = std::chrono::steady_clock::now();
    const auto [train, held] = detail::split_rows(x.dim(0), opt.heldout_fraction, opt.seed);
    const Philox gen(opt.seed ^ 0x6d696e69ull, 0);
    std::vector<index_t> pick(static_cast<std::size_t>(opt.batch_size));
    const auto ntrain = static_cast<std::uint64_t>(train.size());
    for (index_t s = 0; s < opt.steps; ++s) {
      for (index_t k = 0; k < opt.batch_size; ++k)
        pick[static_cast<std::size_t>(k)] =
            train[gen.bits(static_cast<std::uint64_t>(s * opt.batch_size + k)) % ntrain];
      const double loss = train_step(take_rows(x, pick), take_rows(y, pick), opt.lr);
      if (log && opt.log_every > 0 && (s + 1) % opt.log_every == 0)
        *log << name << " step " << s + 1 << "/" << opt.steps << "  loss " << loss << std::endl;
    }
    FitReport r;
    r.steps = opt.steps;
    r.train_rows = static_cast<index_t>(train.size()), r.heldout_rows = static_cast<index_t>(held.size());
    const std::vector<index_t> train_probe(train.begin(), train.begin() + std::min<std::size_t>(train.size(), 20000));
    r.train_mse = detail::mse((*this)(take_rows(x, train_probe)), take_rows(y, train_probe));
    if (!held.empty()) {
      const Tensor<T> yh = take_rows(y, held);
      r.heldout_mse = detail::mse((*this)(take_rows(x, held)), yh);
      r.heldout_variance = detail::mean_column_variance(yh);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
  }

  nn::ParameterList<T> parameters() {
    nn::ParameterList<T> p;
    net_.collect_parameters(p, "");
    return p;
  }

 private:
  index_t in_ = 0, out_ = 0;
  nn::MLP<T> net_;
  std::unique_ptr<nn::optim::Adam<T>> opt_;
};

}  // namespace coordiff::auxiliary
