#pragma once
// Per-feature normalisers to [-1, 1], fitted on all leading axes pooled (MADiff fits one normaliser on
// all agents because the U-Net shares its weights across agents). The last axis is the feature axis.
//   LimitsNormalizer: y = 2 (x - min)/(max - min) - 1.
//   CdfNormalizer (MADiff's CDFNormalizer, used for MPE): y = 2 F(x) - 1 with F the empirical CDF,
//     F(q_i) = (number of samples <= q_i)/n at the distinct values q_i, linear in between; x is clipped
//     to [q_min, q_max] first; the inverse interpolates back (clipping y to [F(q_min), 1]).
// A constant feature is passed through unchanged by both (MADiff: CDF; limits would divide by zero).
// Both store themselves in an npz under a prefix, so a trained model keeps its normaliser.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/io/npz.hpp"

namespace coordiff::data {

namespace detail {
/// Piecewise-linear interpolation of (xs -> ys) at v, xs strictly increasing, v clamped to the range.
inline double interp(const double* xs, const double* ys, index_t n, double v) {
  if (v <= xs[0]) return ys[0];
  if (v >= xs[n - 1]) return ys[n - 1];
  const index_t i = static_cast<index_t>(std::upper_bound(xs, xs + n, v) - xs) - 1;
  return ys[i] + (v - xs[i]) / (xs[i + 1] - xs[i]) * (ys[i + 1] - ys[i]);
}
template <class T>
index_t feature_count(const Tensor<T>& x, const char* who) {
  require<ShapeError>(x.rank() >= 1 && x.size() > 0, who, ": needs a non-empty [..., F] array, got ", to_string(x.shape()));
  require_finite(x, std::string(who) + " input");
  return x.dim(-1);
}
}  // namespace detail

class LimitsNormalizer {
 public:
  template <class T>
  static LimitsNormalizer fit(const Tensor<T>& x) {
    const index_t F = detail::feature_count(x, "LimitsNormalizer::fit");
    LimitsNormalizer n;
    n.min_.assign(static_cast<std::size_t>(F), INFINITY);
    n.max_.assign(static_cast<std::size_t>(F), -INFINITY);
    for (index_t i = 0; i < x.size(); ++i) {
      const auto f = static_cast<std::size_t>(i % F);
      n.min_[f] = std::min(n.min_[f], static_cast<double>(x[i]));
      n.max_[f] = std::max(n.max_[f], static_cast<double>(x[i]));
    }
    return n;
  }
  index_t features() const { return static_cast<index_t>(min_.size()); }

  template <class T>
  Tensor<T> normalize(const Tensor<T>& x) const {
    return map(x, [](double v, double lo, double hi) { return 2 * (v - lo) / (hi - lo) - 1; });
  }
  template <class T>
  Tensor<T> unnormalize(const Tensor<T>& y) const {
    return map(y, [](double v, double lo, double hi) { return (v + 1) / 2 * (hi - lo) + lo; });
  }

  void save(io::NpzWriter& w, const std::string& prefix) const {
    w.add(prefix + "min", Tensor<double>({features()}, min_)).add(prefix + "max", Tensor<double>({features()}, max_));
  }
  static LimitsNormalizer load(const io::NpzFile& f, const std::string& prefix) {
    LimitsNormalizer n;
    n.min_ = f.tensor<double>(prefix + "min").storage();
    n.max_ = f.tensor<double>(prefix + "max").storage();
    require<FormatError>(n.min_.size() == n.max_.size() && !n.min_.empty(), f.path().string(), ": ", prefix,
                         "min and ", prefix, "max must have the same non-zero length");
    return n;
  }

 private:
  template <class T, class Fn>
  Tensor<T> map(const Tensor<T>& x, Fn fn) const {
    const index_t F = detail::feature_count(x, "LimitsNormalizer");
    require<ShapeError>(F == features(), "LimitsNormalizer: fitted on ", features(), " features, got ", to_string(x.shape()));
    Tensor<T> y(x.shape());
    for (index_t i = 0; i < x.size(); ++i) {
      const auto f = static_cast<std::size_t>(i % F);
      y[i] = max_[f] > min_[f] ? static_cast<T>(fn(static_cast<double>(x[i]), min_[f], max_[f])) : x[i];
    }
    return y;
  }
  std::vector<double> min_, max_;
};

class CdfNormalizer {
 public:
  /// max_points > 0 keeps at most that many (value, CDF) points per feature, evenly spaced in rank and
  /// always including the smallest and largest value: the map stays monotone and exact at the kept
  /// points, and the stored size no longer grows with the dataset (0 keeps every distinct value, as MADiff).
  template <class T>
  static CdfNormalizer fit(const Tensor<T>& x, index_t max_points = 0) {
    const index_t F = detail::feature_count(x, "CdfNormalizer::fit");
    require<ConfigError>(max_points == 0 || max_points >= 2, "CdfNormalizer::fit: max_points must be 0 or >= 2, got ",
                         max_points);
    const index_t n = x.size() / F;
    CdfNormalizer c;
    c.offset_.push_back(0);
    std::vector<double> col(static_cast<std::size_t>(n)), q, p;
    for (index_t f = 0; f < F; ++f) {
      for (index_t i = 0; i < n; ++i) col[static_cast<std::size_t>(i)] = static_cast<double>(x[i * F + f]);
      std::sort(col.begin(), col.end());
      q.clear(), p.clear();
      for (std::size_t i = 0; i < col.size(); ++i) {  // distinct values and the CDF at each
        if (i + 1 < col.size() && col[i + 1] == col[i]) continue;
        q.push_back(col[i]);
        p.push_back(static_cast<double>(i + 1) / static_cast<double>(n));
      }
      const auto m = static_cast<index_t>(q.size());
      const index_t keep = max_points > 0 ? std::min(m, max_points) : m;
      for (index_t k = 0; k < keep; ++k) {
        const index_t i = keep == 1 ? 0 : (k * (m - 1)) / (keep - 1);
        c.quantiles_.push_back(q[static_cast<std::size_t>(i)]);
        c.cumprob_.push_back(p[static_cast<std::size_t>(i)]);
      }
      c.offset_.push_back(static_cast<index_t>(c.quantiles_.size()));
    }
    return c;
  }
  index_t features() const { return static_cast<index_t>(offset_.size()) - 1; }
  /// Distinct values of feature f (1 = constant feature).
  index_t support(index_t f) const { return offset_[static_cast<std::size_t>(f + 1)] - offset_[static_cast<std::size_t>(f)]; }

  template <class T>
  Tensor<T> normalize(const Tensor<T>& x) const {
    return map(x, [](const double* q, const double* p, index_t n, double v) { return 2 * detail::interp(q, p, n, v) - 1; });
  }
  template <class T>
  Tensor<T> unnormalize(const Tensor<T>& y) const {
    return map(y, [](const double* q, const double* p, index_t n, double v) { return detail::interp(p, q, n, (v + 1) / 2); });
  }

  /// Sets every constant feature of x [..., F] to its one fitted value. Generated data needs this: a
  /// constant feature passes through normalize/unnormalize unchanged, so a sample would keep whatever the
  /// model produced there (e.g. MPE's always-silent communication channels).
  template <class T>
  void restore_constant_features(Tensor<T>& x) const {
    const index_t F = detail::feature_count(x, "CdfNormalizer::restore_constant_features");
    require<ShapeError>(F == features(), "CdfNormalizer: fitted on ", features(), " features, got ", to_string(x.shape()));
    for (index_t i = 0; i < x.size(); ++i) {
      const index_t f = i % F;
      if (support(f) == 1) x[i] = static_cast<T>(quantiles_[static_cast<std::size_t>(offset_[static_cast<std::size_t>(f)])]);
    }
  }

  void save(io::NpzWriter& w, const std::string& prefix) const {
    const auto total = static_cast<index_t>(quantiles_.size());
    w.add(prefix + "quantiles", Tensor<double>({total}, quantiles_))
        .add(prefix + "cumprob", Tensor<double>({total}, cumprob_))
        .add(prefix + "offset", Tensor<std::int64_t>({static_cast<index_t>(offset_.size())},
                                                     std::vector<std::int64_t>(offset_.begin(), offset_.end())));
  }
  static CdfNormalizer load(const io::NpzFile& f, const std::string& prefix) {
    CdfNormalizer c;
    c.quantiles_ = f.tensor<double>(prefix + "quantiles").storage();
    c.cumprob_ = f.tensor<double>(prefix + "cumprob").storage();
    const auto off = f.tensor<std::int64_t>(prefix + "offset").storage();
    c.offset_.assign(off.begin(), off.end());
    const std::string where = f.path().string() + ": " + prefix;
    require<FormatError>(c.offset_.size() >= 2 && c.offset_.front() == 0 &&
                             c.offset_.back() == static_cast<index_t>(c.quantiles_.size()) &&
                             c.quantiles_.size() == c.cumprob_.size(),
                         where, "offset/quantiles/cumprob are inconsistent");
    for (std::size_t f2 = 0; f2 + 1 < c.offset_.size(); ++f2) {
      require<FormatError>(c.offset_[f2 + 1] > c.offset_[f2], where, "feature ", f2, " has no values");
      for (index_t i = c.offset_[f2] + 1; i < c.offset_[f2 + 1]; ++i)
        require<FormatError>(c.quantiles_[static_cast<std::size_t>(i)] > c.quantiles_[static_cast<std::size_t>(i - 1)] &&
                                 c.cumprob_[static_cast<std::size_t>(i)] > c.cumprob_[static_cast<std::size_t>(i - 1)],
                             where, "feature ", f2, " is not strictly increasing");
    }
    return c;
  }

 private:
  template <class T, class Fn>
  Tensor<T> map(const Tensor<T>& x, Fn fn) const {
    const index_t F = detail::feature_count(x, "CdfNormalizer");
    require<ShapeError>(F == features(), "CdfNormalizer: fitted on ", features(), " features, got ", to_string(x.shape()));
    Tensor<T> y(x.shape());
    for (index_t i = 0; i < x.size(); ++i) {
      const index_t f = i % F, n = support(f);
      const std::size_t o = static_cast<std::size_t>(offset_[static_cast<std::size_t>(f)]);
      y[i] = n == 1 ? x[i] : static_cast<T>(fn(quantiles_.data() + o, cumprob_.data() + o, n, static_cast<double>(x[i])));
    }
    return y;
  }
  std::vector<double> quantiles_, cumprob_;
  std::vector<index_t> offset_;
};

}  // namespace coordiff::data
