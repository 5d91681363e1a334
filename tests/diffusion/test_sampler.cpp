// Samplers driven by the exact denoiser of Gaussian (mixture) data: whatever the data distribution,
// the true posterior-mean predictor makes DDPM/DDIM reproduce it, RePaint reproduce the conditional
// of the unknown entries given the known ones, and classifier-free guidance interpolate between the
// unconditional and the class-conditional distribution. Tolerances combine the sampling error of
// the sample moments (N samples) with the measured discretisation bias, noted at each check.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <vector>

#include "coordiff/denoiser/gaussian_mixture.hpp"
#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/guidance/cost_gradient.hpp"
#include "coordiff/guidance/none.hpp"
#include "coordiff/schedule/cosine.hpp"
#include "coordiff/schedule/linear.hpp"

using namespace coordiff;
using diffusion::Sampler;
using diffusion::SamplerOptions;
using diffusion::SampleNoise;
using diffusion::TimestepPlan;
using Gm = denoiser::GaussianMixture<double>;

namespace {

// Event [H=2, A=2, F=1]: two agents over two steps, correlated within and across agents.
const Shape kEvent{2, 2, 1};

Eigen::VectorXd test_mean() { return Eigen::Vector4d(0.3, -0.2, 0.1, 0.4); }
Eigen::MatrixXd test_cov() {
  Eigen::MatrixXd L(4, 4);
  L << 0.50, 0, 0, 0,  //
      0.20, 0.40, 0, 0,  //
      0.25, 0.10, 0.35, 0,  //
      0.10, 0.25, 0.15, 0.30;
  return L * L.transpose();
}

template <class S>
std::vector<double> alpha_bars(const S& s) {
  std::vector<double> a;
  for (index_t k = 0; k < s.num_steps(); ++k) a.push_back(s.alpha_bar(k));
  return a;
}

struct Moments {
  Eigen::VectorXd mean;
  Eigen::MatrixXd cov;
};
/// Mean and covariance over the leading axis of x [N, ...] (the entries listed in `idx`, or all).
Moments moments(const Tensor<double>& x, std::vector<index_t> idx = {}) {
  const index_t N = x.dim(0), D = x.size() / N;
  if (idx.empty())
    for (index_t i = 0; i < D; ++i) idx.push_back(i);
  const index_t d = static_cast<index_t>(idx.size());
  Eigen::MatrixXd X(N, d);
  for (index_t n = 0; n < N; ++n)
    for (index_t j = 0; j < d; ++j) X(n, j) = x[n * D + idx[static_cast<std::size_t>(j)]];
  Moments m;
  m.mean = X.colwise().mean();
  const Eigen::MatrixXd C = X.rowwise() - m.mean.transpose();
  m.cov = C.transpose() * C / static_cast<double>(N - 1);
  return m;
}

/// Largest error of the mean in units of the per-coordinate standard deviation, and of the covariance
/// relative to the largest variance.
double mean_error(const Moments& m, const Eigen::VectorXd& mu, const Eigen::MatrixXd& cov) {
  return ((m.mean - mu).array().abs() / cov.diagonal().array().sqrt()).maxCoeff();
}
double cov_error(const Moments& m, const Eigen::MatrixXd& cov) {
  return (m.cov - cov).cwiseAbs().maxCoeff() / cov.diagonal().maxCoeff();
}

/// The exact law of a sampler run on N(mu, Sigma) data with the exact predictor. Every update is affine
/// in x plus fresh Gaussian noise, so mean and covariance propagate in closed form; this is an
/// independent (matrix) derivation of the same update rules the sampler applies element-wise.
struct Law {
  Eigen::VectorXd m;
  Eigen::MatrixXd S;
};
Law exact_law(const std::vector<double>& ab, const TimestepPlan& plan, const SamplerOptions& o, const Eigen::VectorXd& mu,
              const Eigen::MatrixXd& Sigma, const std::vector<index_t>& known = {}, const Eigen::VectorXd& value = {}) {
  const index_t D = mu.size();
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(D, D);
  auto abar = [&](index_t k) { return k < 0 ? 1.0 : ab[static_cast<std::size_t>(k)]; };
  Law L{Eigen::VectorXd::Zero(D), I * o.initial_noise_scale * o.initial_noise_scale};
  auto paste = [&](double a) {  // known entries <- sqrt(a) value + sqrt(1 - a) fresh noise
    for (std::size_t j = 0; j < known.size(); ++j) {
      const index_t i = known[j];
      L.m[i] = std::sqrt(a) * value[static_cast<index_t>(j)];
      L.S.row(i).setZero();
      L.S.col(i).setZero();
      L.S(i, i) = 1.0 - a;
    }
  };
  if (!known.empty()) paste(abar(plan.first_level()));
  for (const auto& ev : plan.events()) {
    const double a = abar(ev.from), ap = abar(ev.to);
    if (!ev.denoise()) {
      const double r = ap / a;
      L.m *= std::sqrt(r);
      L.S = r * L.S + (1 - r) * I;
      continue;
    }
    const Eigen::MatrixXd M = std::sqrt(1 - a) * (a * Sigma + (1 - a) * I).inverse();  // eps = M (x - sqrt(a) mu)
    const Eigen::MatrixXd X0 = (I - std::sqrt(1 - a) * M) / std::sqrt(a);           // x0 = X0 x + x0c
    const Eigen::VectorXd x0c = std::sqrt(1 - a) * M * mu;
    const double at = a / ap, bt = 1 - at;
    Eigen::MatrixXd A;
    Eigen::VectorXd b;
    double var = 0;
    if (o.solver == diffusion::Solver::Ddpm) {
      const double c0 = std::sqrt(ap) * bt / (1 - a), ct = std::sqrt(at) * (1 - ap) / (1 - a);
      A = c0 * X0 + ct * I;
      b = c0 * x0c;
      var = ev.to < 0 ? 0 : (o.variance == diffusion::Variance::FixedSmall ? bt * (1 - ap) / (1 - a) : bt);
    } else {
      var = ev.to < 0 ? 0 : o.eta * o.eta * (1 - ap) / (1 - a) * bt;
      const double dir = std::sqrt(1 - ap - var);
      A = std::sqrt(ap) * X0 + dir * M;
      b = std::sqrt(ap) * x0c - dir * std::sqrt(a) * M * mu;
    }
    L.m = A * L.m + b;
    L.S = A * L.S * A.transpose() + var * I;
    if (!known.empty()) paste(ev.to < 0 ? 1.0 : (o.paste == diffusion::PasteRule::RePaint ? ap : a));
  }
  return L;
}

/// Conditional of the entries `unknown` given `known` = value under N(mu, Sigma).
Law conditional(const Eigen::VectorXd& mu, const Eigen::MatrixXd& S, const std::vector<index_t>& unknown,
                const std::vector<index_t>& known, const Eigen::VectorXd& value) {
  const auto u = static_cast<index_t>(unknown.size()), k = static_cast<index_t>(known.size());
  Eigen::MatrixXd Suu(u, u), Suk(u, k), Skk(k, k);
  Eigen::VectorXd mu_u(u), mu_k(k);
  for (index_t i = 0; i < u; ++i) {
    mu_u[i] = mu[unknown[static_cast<std::size_t>(i)]];
    for (index_t j = 0; j < u; ++j) Suu(i, j) = S(unknown[static_cast<std::size_t>(i)], unknown[static_cast<std::size_t>(j)]);
    for (index_t j = 0; j < k; ++j) Suk(i, j) = S(unknown[static_cast<std::size_t>(i)], known[static_cast<std::size_t>(j)]);
  }
  for (index_t i = 0; i < k; ++i) {
    mu_k[i] = mu[known[static_cast<std::size_t>(i)]];
    for (index_t j = 0; j < k; ++j) Skk(i, j) = S(known[static_cast<std::size_t>(i)], known[static_cast<std::size_t>(j)]);
  }
  const Eigen::MatrixXd G = Suk * Skk.inverse();
  return {mu_u + G * (value - mu_k), Suu - G * Suk.transpose()};
}

Law restrict(const Law& L, const std::vector<index_t>& idx) {
  const auto n = static_cast<index_t>(idx.size());
  Law r{Eigen::VectorXd(n), Eigen::MatrixXd(n, n)};
  for (index_t i = 0; i < n; ++i) {
    r.m[i] = L.m[idx[static_cast<std::size_t>(i)]];
    for (index_t j = 0; j < n; ++j) r.S(i, j) = L.S(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
  }
  return r;
}
double law_mean_error(const Law& got, const Law& want) { return mean_error({got.m, got.S}, want.m, want.S); }
double law_cov_error(const Law& got, const Law& want) { return cov_error({got.m, got.S}, want.S); }

SamplerOptions no_clip(diffusion::Solver solver = diffusion::Solver::Ddpm) {
  SamplerOptions o;
  o.solver = solver;
  o.clip_sample = false;
  return o;
}

}  // namespace

TEST_CASE("sampler: DDPM (200, 1000 steps) and DDIM (50 steps) with the exact predictor reproduce N(mu, Sigma)") {
  const index_t N = 20000;
  const Tensor<double> shape_only({N, 2, 2, 1});
  struct Case {
    const char* name;
    diffusion::Solver solver;
    diffusion::Variance variance;
    double eta;
    index_t steps, plan_steps;
    double bias_tol;  // distance of the sampler's exact law from the data (discretisation), measured below it
  };
  // Measured distance of the exact law from N(mu, Sigma) (covariance, relative to the largest variance):
  // DDPM-200 fixed-small 0.035, DDPM-1000 0.0077, DDPM-200 fixed-large 0.0070, DDIM-50 0.058, DDIM-50 eta=1 0.12
  // (stochastic DDIM on 50 strided steps is DDPM on 50 steps: its bias grows as 1/steps).
  for (const Case& c : {Case{"DDPM-200", diffusion::Solver::Ddpm, diffusion::Variance::FixedSmall, 0, 200, 200, 0.05},
                        Case{"DDPM-1000", diffusion::Solver::Ddpm, diffusion::Variance::FixedSmall, 0, 1000, 1000, 0.01},
                        Case{"DDPM-200-large", diffusion::Solver::Ddpm, diffusion::Variance::FixedLarge, 0, 200, 200, 0.015},
                        Case{"DDIM-50", diffusion::Solver::Ddim, diffusion::Variance::FixedSmall, 0, 200, 50, 0.07},
                        Case{"DDIM-50-eta1", diffusion::Solver::Ddim, diffusion::Variance::FixedSmall, 1, 200, 50, 0.14}}) {
    CAPTURE(c.name);
    const schedule::Cosine sched(c.steps);
    Gm den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());
    const auto plan = c.plan_steps == c.steps ? TimestepPlan::full(c.steps) : TimestepPlan::strided(c.steps, c.plan_steps);
    SamplerOptions o = no_clip(c.solver);
    o.variance = c.variance;
    o.eta = c.eta;
    const Sampler sampler(sched, plan, o);
    const Tensor<double> x = sampler.sample(den, guidance::None{}, shape_only, nullptr, {}, SampleNoise(7, 0));
    const Moments m = moments(x);
    const Law law = exact_law(alpha_bars(sched), plan, o, test_mean(), test_cov());
    // (1) The samples follow the sampler's exact law: only sampling error remains (~0.007 sd for a
    // mean, ~0.01 of the variance for a covariance entry at N = 20000).
    const double em = mean_error(m, law.m, law.S), ec = cov_error(m, law.S);
    // (2) That law is the data distribution up to the discretisation bias of the solver.
    const Law data{test_mean(), test_cov()};
    const double bm = law_mean_error(law, data), bc = law_cov_error(law, data);
    MESSAGE(c.name, ": samples vs exact law: mean ", em, " sd, cov ", ec, "; exact law vs data: mean ", bm, " sd, cov ", bc,
            "; samples vs data: cov ", cov_error(m, test_cov()));
    CHECK(em < 0.035);
    CHECK(ec < 0.035);
    CHECK(bm < 0.01);
    CHECK(bc < c.bias_tol);
  }
}

TEST_CASE("sampler: x0-prediction gives the same samples as eps-prediction") {
  const schedule::Cosine sched(100);
  Gm eps_den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());
  Gm x0_den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov(), denoiser::Prediction::Sample);
  for (auto solver : {diffusion::Solver::Ddpm, diffusion::Solver::Ddim}) {
    SamplerOptions oe = no_clip(solver), ox = no_clip(solver);
    ox.prediction = denoiser::Prediction::Sample;
    const Tensor<double> shape_only({64, 2, 2, 1});
    const auto a = Sampler(sched, TimestepPlan::full(100), oe).sample(eps_den, guidance::None{}, shape_only, nullptr, {}, SampleNoise(3, 0));
    const auto b = Sampler(sched, TimestepPlan::full(100), ox).sample(x0_den, guidance::None{}, shape_only, nullptr, {}, SampleNoise(3, 0));
    double diff = 0;
    for (index_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(a[i] - b[i]));
    CHECK(diff < 1e-8);
  }
}

TEST_CASE("sampler: RePaint inpainting follows its exact law; resampling moves it towards the true conditional") {
  // Agent 0 (flat entries 0 and 2) is known, agent 1 (entries 1 and 3) generated. RePaint pastes the known
  // entries with fresh noise, which ignores their correlation with the unknown ones at noisy levels, so
  // even with the exact predictor it samples the conditional only approximately; resampling (jumps)
  // reduces the error of the mean. The exact law of the algorithm is computed in closed form, the
  // samples must follow it, and its distance from the true conditional is asserted at the measured level
  // (K = 200, exact law vs conditional: no resampling mean 0.27 sd / cov 0.082; jump 10 x 10: 0.080 / 0.085;
  // with K = 1000 and 10 x 10: 0.069 / 0.017; 10 x 30: 0.027 / 0.044).
  const std::vector<index_t> known_idx{0, 2}, unknown_idx{1, 3};
  Eigen::VectorXd value(2);
  value << 0.8, -0.1;
  const index_t N = 8000;
  Tensor<double> data({N, 2, 2, 1});
  Tensor<std::uint8_t> known({N, 2, 2, 1});
  for (index_t n = 0; n < N; ++n) {
    data[n * 4 + 0] = value[0], data[n * 4 + 2] = value[1];
    known[n * 4 + 0] = known[n * 4 + 2] = 1;
  }
  const Law truth = conditional(test_mean(), test_cov(), unknown_idx, known_idx, value);
  const schedule::Cosine sched(200);
  double mean_bias[2] = {0, 0};
  int i = 0;
  for (const TimestepPlan& plan : {TimestepPlan::full(200), TimestepPlan::full(200).with_resampling(10, 10)}) {
    CAPTURE(plan.jump_n_sample());
    Gm den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());
    const Sampler sampler(sched, plan, no_clip());
    diffusion::SampleStats st;
    const Tensor<double> x = sampler.sample(den, guidance::None{}, data, &known, {}, SampleNoise(11, 0), &st);
    CHECK(st.reverse_steps == plan.model_evaluations());
    CHECK(st.renoise_steps == plan.renoise_steps());
    for (index_t n = 0; n < N; n += 997) {  // the known entries are exactly the data
      CHECK(x[n * 4 + 0] == value[0]);
      CHECK(x[n * 4 + 2] == value[1]);
    }
    const Moments m = moments(x, unknown_idx);
    const Law law = restrict(exact_law(alpha_bars(sched), plan, no_clip(), test_mean(), test_cov(), known_idx, value),
                             unknown_idx);
    const double em = mean_error(m, law.m, law.S), ec = cov_error(m, law.S);  // sampling error ~0.011 / ~0.016
    const double bm = law_mean_error(law, truth), bc = law_cov_error(law, truth);
    MESSAGE("jump_n_sample ", plan.jump_n_sample(), ": samples vs exact law: mean ", em, " sd, cov ", ec,
            "; exact law vs true conditional: mean ", bm, " sd, cov ", bc);
    CHECK(em < 0.05);
    CHECK(ec < 0.05);
    CHECK(bc < 0.1);
    mean_bias[i++] = bm;
  }
  CHECK(mean_bias[0] < 0.3);
  CHECK(mean_bias[1] < mean_bias[0] / 3);
}
