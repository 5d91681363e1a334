#pragma once
// The exact denoiser for data drawn from a Gaussian mixture sum_c pi_c N(mu_c, Sigma_c) over the
// flattened event [H, A, F]: under x_k = sqrt(abar) x0 + sqrt(1 - abar) eps every component stays
// Gaussian, x_k | c ~ N(sqrt(abar) mu_c, abar Sigma_c + (1 - abar) I) =: N(m_c, C_c), and
//   E[eps | x_k, c] = sqrt(1 - abar) C_c^{-1} (x_k - m_c),
//   E[eps | x_k]    = sum_c p(c | x_k) E[eps | x_k, c].
// Because it is the true posterior mean, a sampler driven by it must reproduce the data distribution;
// this is how the samplers are tested. The condition's value selects a class (classifier-free
// guidance: keep = 0 gives the unconditional mixture); Condition::agents marginalises onto a subset
// of agents (independent generation). Dense algebra (Eigen), meant for small events.
#include <Eigen/Dense>
#include <cmath>
#include <algorithm>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "coordiff/core/condition.hpp"
#include "coordiff/core/error.hpp"
#include "coordiff/denoiser/denoiser.hpp"

namespace coordiff::denoiser {

template <class T>
class GaussianMixture {
 public:
  using value_type = T;
  struct Component {
    double weight = 1.0;
    Eigen::VectorXd mean;  ///< [H*A*F], row-major over (h, a, f)
    Eigen::MatrixXd cov;   ///< [H*A*F, H*A*F], symmetric positive semi-definite
  };

  /// alpha_bars: abar_k of the schedule the sampler uses (index k); event = {H, A, F}.
  GaussianMixture(std::vector<double> alpha_bars, Shape event, std::vector<Component> components,
                  Prediction prediction = Prediction::Epsilon)
      : ab_(std::move(alpha_bars)), event_(std::move(event)), comps_(std::move(components)), pred_(prediction) {
    require<ConfigError>(event_.size() == 3, "GaussianMixture: event must be {H, A, F}, got ", to_string(event_));
    require<ConfigError>(!comps_.empty(), "GaussianMixture: needs at least one component");
    const index_t D = numel(event_);
    for (std::size_t c = 0; c < comps_.size(); ++c) {
      require<ConfigError>(comps_[c].mean.size() == D && comps_[c].cov.rows() == D && comps_[c].cov.cols() == D,
                           "GaussianMixture: component ", c, " must have a mean of ", D, " and a ", D, "x", D, " covariance");
      require<ConfigError>(comps_[c].weight > 0, "GaussianMixture: component ", c, " weight must be > 0");
    }
  }

  /// One Gaussian N(mean, cov).
  static GaussianMixture gaussian(std::vector<double> alpha_bars, Shape event, Eigen::VectorXd mean, Eigen::MatrixXd cov,
                                  Prediction prediction = Prediction::Epsilon) {
    return GaussianMixture(std::move(alpha_bars), std::move(event), {{1.0, std::move(mean), std::move(cov)}}, prediction);
  }

  Prediction prediction() const { return pred_; }
  const std::vector<Component>& components() const { return comps_; }

  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& k, const Condition<T>& cond) {
    const index_t H = event_[0], A = event_[1], F = event_[2];
    require<ShapeError>(x.rank() == 4 && x.dim(1) == H && x.dim(3) == F && x.dim(2) >= 1 && x.dim(2) <= A,
                        "GaussianMixture: expected x [B, ", H, ", <=", A, ", ", F, "], got ", to_string(x.shape()));
    const index_t B = x.dim(0), Av = x.dim(2);
    require_shape(k.shape(), {B}, "GaussianMixture: step tensor");
    std::vector<index_t> agents = cond.agents;
    if (agents.empty())
      for (index_t a = 0; a < Av; ++a) agents.push_back(a);
    require<ShapeError>(static_cast<index_t>(agents.size()) == Av, "GaussianMixture: ", agents.size(),
                        " agent indices for ", Av, " agents in x");
    std::vector<index_t> sel;  // flat event coordinates of the visible entries, in x's order
    for (index_t h = 0; h < H; ++h)
      for (index_t a : agents)
        for (index_t f = 0; f < F; ++f) sel.push_back((h * A + a) * F + f);
    const index_t D = static_cast<index_t>(sel.size());
    Tensor<T> out(x.shape());
    index_t cached_step = -1;
    std::vector<const Cached*> per_component(comps_.size(), nullptr);
    for (index_t b = 0; b < B; ++b) {
      const index_t step = static_cast<index_t>(std::llround(static_cast<double>(k[b])));
      require<ConfigError>(step >= 0 && step < static_cast<index_t>(ab_.size()), "GaussianMixture: step ", step,
                           " outside the ", ab_.size(), "-step schedule");
      const double ab = ab_[static_cast<std::size_t>(step)];
      if (step != cached_step) {  // samples of a batch usually share the step: one lookup per batch
        for (std::size_t c = 0; c < comps_.size(); ++c) per_component[c] = &cached(step, c, agents, sel);
        cached_step = step;
      }
      Eigen::VectorXd xv(D);
      for (index_t i = 0; i < D; ++i) xv[i] = x[b * D + i];
      int only = -1;  // conditional branch: the class named by the condition
      if (cond.has_value() && (cond.keep.empty() || cond.keep(b, 0) != T(0))) {
        only = static_cast<int>(std::lround(static_cast<double>(cond.value(b, 0))));
        require<ConfigError>(only >= 0 && only < static_cast<int>(comps_.size()), "GaussianMixture: condition selects class ",
                             only, " of ", comps_.size());
      }
      // log p(c | x_k) up to a constant and E[eps | x_k, c] per component.
      std::vector<double> logw;
      std::vector<Eigen::VectorXd> eps;
      for (std::size_t c = 0; c < comps_.size(); ++c) {
        if (only >= 0 && static_cast<int>(c) != only) continue;
        const Cached& m = *per_component[c];
        const Eigen::VectorXd r = xv - std::sqrt(ab) * m.mean;
        const Eigen::VectorXd sol = m.ldlt.solve(r);
        logw.push_back(std::log(comps_[c].weight) - 0.5 * r.dot(sol) - 0.5 * m.logdet);
        eps.push_back(std::sqrt(1.0 - ab) * sol);
      }
      const double mx = *std::max_element(logw.begin(), logw.end());
      double z = 0;
      for (double& w : logw) z += (w = std::exp(w - mx));
      Eigen::VectorXd e = Eigen::VectorXd::Zero(D);
      for (std::size_t c = 0; c < eps.size(); ++c) e += (logw[c] / z) * eps[c];
      for (index_t i = 0; i < D; ++i) {
        const double v = pred_ == Prediction::Epsilon ? e[i] : (xv[i] - std::sqrt(1.0 - ab) * e[i]) / std::sqrt(ab);
        out[b * D + i] = static_cast<T>(v);
      }
    }
    return out;
  }

 private:
  struct Cached {
    Eigen::VectorXd mean;
    Eigen::LDLT<Eigen::MatrixXd> ldlt;
    double logdet = 0;
  };
  const Cached& cached(index_t step, std::size_t c, const std::vector<index_t>& agents, const std::vector<index_t>& sel) {
    auto key = std::make_tuple(step, c, agents);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const double ab = ab_[static_cast<std::size_t>(step)];
    const index_t D = static_cast<index_t>(sel.size());
    Cached m;
    m.mean.resize(D);
    Eigen::MatrixXd C(D, D);
    for (index_t i = 0; i < D; ++i) {
      m.mean[i] = comps_[c].mean[sel[static_cast<std::size_t>(i)]];
      for (index_t j = 0; j < D; ++j)
        C(i, j) = ab * comps_[c].cov(sel[static_cast<std::size_t>(i)], sel[static_cast<std::size_t>(j)]) + (i == j ? 1.0 - ab : 0.0);
    }
    m.ldlt.compute(C);
    m.logdet = m.ldlt.vectorD().array().log().sum();
    return cache_.emplace(std::move(key), std::move(m)).first->second;
  }

  std::vector<double> ab_;
  Shape event_;
  std::vector<Component> comps_;
  Prediction pred_;
  std::map<std::tuple<index_t, std::size_t, std::vector<index_t>>, Cached> cache_;
};

}  // namespace coordiff::denoiser
