// Samplers driven by the exact denoiser of Gaussian (mixture) data: whatever the data distribution,
// the true posterior-mean predictor makes DDPM/DDIM reproduce it, RePaint reproduce the conditional
// of the unknown entries given the known ones, and classifier-free guidance interpolate between the
// unconditional and the class-conditional distribution. Tolerances combine the sampling error of
// the sample moments (N samples) with the measured discretisation bias, noted at each check.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "coordiff/denoiser/gaussian_mixture.hpp"
#include "coordiff/diffusion/generator.hpp"
#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/filter/filters.hpp"
#include "coordiff/mask/masks.hpp"
#include "coordiff/order/orders.hpp"
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

struct Law {
  Eigen::VectorXd m;
  Eigen::MatrixXd S;
};

/// The exact law of sampler passes driven by the exact predictor of N(mu, Sigma) data. Every update is
/// affine in the state plus fresh Gaussian noise, so mean and covariance propagate in closed form; this
/// is an independent (matrix) derivation of the update rules the sampler applies element-wise. The state
/// is z = [x; d]: x the sample being denoised, d the values known entries are pasted from, d ~ N(d_mean,
/// d_cov) (fixed data: d_cov = 0). Round r regenerates the entries unknown[r]; its output becomes d of the
/// next round (agent-wise sequential generation). Returns the law of the final output.
Law law_of_rounds(const std::vector<double>& ab, const TimestepPlan& plan, const SamplerOptions& o, const Eigen::VectorXd& mu,
                  const Eigen::MatrixXd& Sigma, const Eigen::VectorXd& d_mean, const Eigen::MatrixXd& d_cov,
                  const std::vector<std::vector<index_t>>& unknown) {
  const index_t D = mu.size();
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(D, D);
  auto abar = [&](index_t k) { return k < 0 ? 1.0 : ab[static_cast<std::size_t>(k)]; };
  Law z{Eigen::VectorXd::Zero(2 * D), Eigen::MatrixXd::Zero(2 * D, 2 * D)};
  z.m.tail(D) = d_mean;
  z.S.bottomRightCorner(D, D) = d_cov;
  // z <- F z + c + noise with covariance Q.
  auto apply = [&](const Eigen::MatrixXd& F, const Eigen::VectorXd& c, const Eigen::MatrixXd& Q) {
    z.m = F * z.m + c;
    z.S = F * z.S * F.transpose() + Q;
  };
  for (const auto& gen : unknown) {
    std::vector<index_t> known;
    for (index_t i = 0; i < D; ++i)
      if (std::find(gen.begin(), gen.end(), i) == gen.end()) known.push_back(i);
    // Fresh start x = scale * noise, independent of d.
    z.m.head(D).setZero();
    z.S.topRows(D).setZero();
    z.S.leftCols(D).setZero();
    z.S.topLeftCorner(D, D) = I * o.initial_noise_scale * o.initial_noise_scale;
    auto paste = [&](double a) {  // x_i <- sqrt(a) d_i + sqrt(1 - a) fresh noise, i known
      Eigen::MatrixXd F = Eigen::MatrixXd::Identity(2 * D, 2 * D), Q = Eigen::MatrixXd::Zero(2 * D, 2 * D);
      for (index_t i : known) {
        F.row(i).setZero();
        F(i, D + i) = std::sqrt(a);
        Q(i, i) = 1.0 - a;
      }
      apply(F, Eigen::VectorXd::Zero(2 * D), Q);
    };
    auto on_x = [&](const Eigen::MatrixXd& A, const Eigen::VectorXd& b, double var) {
      Eigen::MatrixXd F = Eigen::MatrixXd::Identity(2 * D, 2 * D), Q = Eigen::MatrixXd::Zero(2 * D, 2 * D);
      Eigen::VectorXd c = Eigen::VectorXd::Zero(2 * D);
      F.topLeftCorner(D, D) = A;
      c.head(D) = b;
      Q.topLeftCorner(D, D) = var * I;
      apply(F, c, Q);
    };
    if (!known.empty()) paste(abar(plan.first_level()));
    for (const auto& ev : plan.events()) {
      const double a = abar(ev.from), ap = abar(ev.to);
      if (!ev.denoise()) {
        on_x(std::sqrt(ap / a) * I, Eigen::VectorXd::Zero(D), 1 - ap / a);
        continue;
      }
      const Eigen::MatrixXd M = std::sqrt(1 - a) * (a * Sigma + (1 - a) * I).inverse();  // eps = M (x - sqrt(a) mu)
      const Eigen::MatrixXd X0 = (I - std::sqrt(1 - a) * M) / std::sqrt(a);           // x0 = X0 x + x0c
      const Eigen::VectorXd x0c = std::sqrt(1 - a) * M * mu;
      const double at = a / ap, bt = 1 - at;
      if (o.solver == diffusion::Solver::Ddpm) {
        const double c0 = std::sqrt(ap) * bt / (1 - a), ct = std::sqrt(at) * (1 - ap) / (1 - a);
        const double var = ev.to < 0 ? 0 : (o.variance == diffusion::Variance::FixedSmall ? bt * (1 - ap) / (1 - a) : bt);
        on_x(c0 * X0 + ct * I, c0 * x0c, var);
      } else {
        const double var = ev.to < 0 ? 0 : o.eta * o.eta * (1 - ap) / (1 - a) * bt;
        const double dir = std::sqrt(1 - ap - var);
        on_x(std::sqrt(ap) * X0 + dir * M, std::sqrt(ap) * x0c - dir * std::sqrt(a) * M * mu, var);
      }
      if (!known.empty()) paste(ev.to < 0 ? 1.0 : (o.paste == diffusion::PasteRule::RePaint ? ap : a));
    }
    // The output is the next round's source.
    z.m.tail(D) = z.m.head(D);
    z.S.bottomRightCorner(D, D) = z.S.topLeftCorner(D, D);
    z.S.topRightCorner(D, D).setZero();
    z.S.bottomLeftCorner(D, D).setZero();
  }
  return {z.m.tail(D), z.S.bottomRightCorner(D, D)};
}

/// One pass; `known` entries fixed to `value` (none: unconditional).
Law exact_law(const std::vector<double>& ab, const TimestepPlan& plan, const SamplerOptions& o, const Eigen::VectorXd& mu,
              const Eigen::MatrixXd& Sigma, const std::vector<index_t>& known = {}, const Eigen::VectorXd& value = {}) {
  const index_t D = mu.size();
  Eigen::VectorXd d = Eigen::VectorXd::Zero(D);
  std::vector<index_t> unknown;
  for (index_t i = 0; i < D; ++i) {
    const auto it = std::find(known.begin(), known.end(), i);
    if (it == known.end()) unknown.push_back(i);
    else d[i] = value[it - known.begin()];
  }
  return law_of_rounds(ab, plan, o, mu, Sigma, d, Eigen::MatrixXd::Zero(D, D), {unknown});
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

TEST_CASE("sampler: RePaint inpainting follows its exact law - resampling moves it towards the true conditional") {
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

namespace {
/// Two classes in one dimension: N(-1, 0.25) and N(+1, 0.25), equal weights.
Gm two_classes(const std::vector<double>& ab) {
  Gm::Component c0{0.5, Eigen::VectorXd::Constant(1, -1.0), Eigen::MatrixXd::Constant(1, 1, 0.25)};
  Gm::Component c1{0.5, Eigen::VectorXd::Constant(1, 1.0), Eigen::MatrixXd::Constant(1, 1, 0.25)};
  return Gm(ab, Shape{1, 1, 1}, {c0, c1});
}
}  // namespace

TEST_CASE("guidance::ClassifierFree: eps_u + w (eps_c - eps_u), and its effect on a two-class mixture") {
  // The combination itself, with a denoiser that returns 2 on the conditional and 5 on the null path.
  auto fixed = denoiser::from_function<double>([](const Tensor<double>& x, const Tensor<double>&, const Condition<double>& c) {
    return Tensor<double>(x.shape(), c.keep[0] != 0 ? 2.0 : 5.0);
  });
  Condition<double> cond{Tensor<double>({1, 1}, 1.0), {}, {}};
  const auto out = guidance::ClassifierFree{1.2}.model_output(fixed, Tensor<double>({1, 1, 1, 1}), Tensor<double>({1}), cond, {});
  CHECK(out[0] == doctest::Approx(5 + 1.2 * (2 - 5)));
  CHECK_THROWS_AS(guidance::ClassifierFree{}.model_output(fixed, Tensor<double>({1, 1, 1, 1}), Tensor<double>({1}), Condition<double>{}, {}),
                  ConfigError);

  // Sampling class 1 with weight w: w = 0 is the unconditional mixture (mean 0, variance 1.25), w = 1
  // the class (mean 1, variance 0.25, P(x < 0) = Phi(-2) = 0.023), w > 1 moves samples further from
  // the other class (fewer on its side, mean above 1). Tolerances: sampling error (N = 10000) plus the
  // ~4% variance deficit of DDPM-200 (see above).
  const schedule::Cosine sched(200);
  const index_t N = 10000;
  const Tensor<double> shape_only({N, 1, 1, 1});
  Condition<double> class1{Tensor<double>({N, 1}, 1.0), {}, {}};
  struct Stat {
    double mean, var, below_zero;
  };
  auto run = [&](double w) {
    Gm den = two_classes(alpha_bars(sched));
    const Sampler sampler(sched, TimestepPlan::full(200), no_clip());
    const auto x = sampler.sample(den, guidance::ClassifierFree{w}, shape_only, nullptr, class1, SampleNoise(5, 0));
    const Moments m = moments(x);
    double below = 0;
    for (double v : x) below += v < 0 ? 1.0 : 0.0;
    return Stat{m.mean[0], m.cov(0, 0), below / static_cast<double>(N)};
  };
  const Stat w0 = run(0.0), w1 = run(1.0), w3 = run(3.0);
  MESSAGE("w=0: mean ", w0.mean, " var ", w0.var, " P(x<0) ", w0.below_zero, "; w=1: ", w1.mean, " ", w1.var, " ",
          w1.below_zero, "; w=3: ", w3.mean, " ", w3.var, " ", w3.below_zero);
  CHECK(std::abs(w0.mean) < 0.04);
  CHECK(w0.var == doctest::Approx(1.25).epsilon(0.06));
  CHECK(w0.below_zero == doctest::Approx(0.5).epsilon(0.04));
  CHECK(w1.mean == doctest::Approx(1.0).epsilon(0.03));
  CHECK(w1.var == doctest::Approx(0.25).epsilon(0.08));
  CHECK(w1.below_zero == doctest::Approx(0.0228).epsilon(0.3));
  CHECK(w3.below_zero < w1.below_zero / 2);
  CHECK(w3.mean > w1.mean);
}

TEST_CASE("guidance::CostGradient: a quadratic cost pulls samples towards its minimum, monotonically in the scale") {
  struct ToTarget {  // c(x) = 1/2 |x - 1|^2 per sample
    guidance::CostValue<double> value_and_gradient(const Tensor<double>& x) const {
      const index_t B = x.dim(0), D = x.size() / B;
      guidance::CostValue<double> cv{Tensor<double>({B}), Tensor<double>(x.shape())};
      for (index_t i = 0; i < x.size(); ++i) {
        cv.gradient[i] = x[i] - 1.0;
        cv.value[i / D] += 0.5 * (x[i] - 1.0) * (x[i] - 1.0);
      }
      return cv;
    }
  };
  static_assert(guidance::DifferentiableCost<ToTarget, double>);
  const schedule::Cosine sched(100);
  const Tensor<double> shape_only({2000, 2, 2, 1});
  double previous[2] = {1e9, 1e9};
  for (double scale : {0.0, 0.5, 2.0}) {
    for (auto at : {guidance::CostAt::PredictedClean, guidance::CostAt::Noisy}) {
      Gm den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());
      // Raw cost gradients on the noisy input are not damped at high noise (a classifier trained on noisy
      // inputs would be), so that mode needs x0 clipping to stay bounded.
      SamplerOptions o = no_clip();
      o.clip_sample = at == guidance::CostAt::Noisy;
      o.clip_range = 3.0;
      const Sampler sampler(sched, TimestepPlan::full(100), o);
      const auto x = sampler.sample(den, guidance::cost_gradient(ToTarget{}, scale, at), shape_only, nullptr, {}, SampleNoise(9, 0));
      double cost = 0;
      for (double c : ToTarget{}.value_and_gradient(x).value) cost += c / 2000.0;
      MESSAGE("scale ", scale, (at == guidance::CostAt::Noisy ? " (noisy)" : " (x0)"), ": mean cost ", cost);
      const int mode = at == guidance::CostAt::Noisy ? 1 : 0;
      CHECK(cost < previous[mode]);
      previous[mode] = cost;
    }
  }
}

TEST_CASE("sampler: DDIM inversion then DDIM generation reconstructs x0 with the exact predictor") {
  const schedule::Cosine sched(200);
  Gm den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());
  // Data points drawn from N(mu, Sigma).
  const Eigen::MatrixXd L = test_cov().llt().matrixL();
  Rng rng(4);
  Tensor<double> x0({256, 2, 2, 1});
  for (index_t n = 0; n < 256; ++n) {
    Eigen::Vector4d z(rng.normal(), rng.normal(), rng.normal(), rng.normal());
    const Eigen::VectorXd v = test_mean() + L * z;
    for (index_t i = 0; i < 4; ++i) x0[n * 4 + i] = v[i];
  }
  double previous = 1e9;
  for (index_t steps : {20, 50, 200}) {
    const Sampler sampler(sched, TimestepPlan::strided(200, steps), no_clip(diffusion::Solver::Ddim));
    const auto xT = sampler.invert(den, guidance::None{}, x0, {});
    const auto back = sampler.denoise_from(den, guidance::None{}, xT, {}, SampleNoise(0, 0));
    double err = 0, scale = 0;
    for (index_t i = 0; i < x0.size(); ++i) err = std::max(err, std::abs(back[i] - x0[i])), scale = std::max(scale, std::abs(x0[i]));
    MESSAGE("DDIM-", steps, " inversion round trip: max abs error ", err, " (data max ", scale, ")");
    CHECK(err < previous);
    previous = err;
  }
  CHECK(previous < 0.05);  // measured: 0.21 (20 steps), 0.090 (50), 0.023 (200) on data of magnitude <= 1.8
}

TEST_CASE("sampler: clipping bounds x0, the same seed is bitwise reproducible, samples do not depend on batching") {
  const schedule::Cosine sched(50);
  Gm den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());
  SamplerOptions clip;
  clip.clip_range = 0.2;
  const auto clipped = Sampler(sched, TimestepPlan::full(50), clip).sample(den, guidance::None{}, Tensor<double>({500, 2, 2, 1}),
                                                                          nullptr, {}, SampleNoise(1, 0));
  double mx = 0;
  for (double v : clipped) mx = std::max(mx, std::abs(v));
  CHECK(mx <= 0.2);
  CHECK(mx == doctest::Approx(0.2));

  const Sampler sampler(sched, TimestepPlan::full(50).with_resampling(5, 2), no_clip());
  Tensor<double> data({6, 2, 2, 1}, 0.5);
  Tensor<std::uint8_t> known({6, 2, 2, 1});
  for (index_t n = 0; n < 6; ++n) known[n * 4] = 1;
  const auto a = sampler.sample(den, guidance::None{}, data, &known, {}, SampleNoise(21, 0));
  const auto b = sampler.sample(den, guidance::None{}, data, &known, {}, SampleNoise(21, 0));
  const auto c = sampler.sample(den, guidance::None{}, data, &known, {}, SampleNoise(22, 0));
  CHECK(a.storage() == b.storage());
  CHECK(a.storage() != c.storage());
  // Samples 3..5 alone, as the second half of the run (first_sample = 3): the same numbers.
  Tensor<double> half_data({3, 2, 2, 1}, 0.5);
  Tensor<std::uint8_t> half_known({3, 2, 2, 1});
  for (index_t n = 0; n < 3; ++n) half_known[n * 4] = 1;
  const auto h = sampler.sample(den, guidance::None{}, half_data, &half_known, {}, SampleNoise(21, 3));
  for (index_t i = 0; i < h.size(); ++i) CHECK(h[i] == a[12 + i]);
}

TEST_CASE("sampler: configuration and denoiser errors are reported with context") {
  const schedule::Cosine sched(10);
  CHECK_THROWS_AS(Sampler(sched, TimestepPlan::full(20)), ConfigError);
  SamplerOptions bad;
  bad.eta = -1;
  CHECK_THROWS_AS(Sampler(sched, TimestepPlan::full(10), bad), ConfigError);
  const Sampler sampler(sched, TimestepPlan::full(10));
  auto nan_at_3 = denoiser::from_function<double>([](const Tensor<double>& x, const Tensor<double>& k, const Condition<double>&) {
    return Tensor<double>(x.shape(), k[0] == 3 ? std::nan("") : 0.0);
  });
  try {
    sampler.sample(nan_at_3, guidance::None{}, Tensor<double>({2, 2, 2, 1}), nullptr, {}, SampleNoise(0, 0));
    FAIL("expected a NumericError");
  } catch (const NumericError& e) {
    CHECK(std::string(e.what()).find("diffusion step 3") != std::string::npos);
  }
  auto wrong_shape = denoiser::from_function<double>([](const Tensor<double>&, const Tensor<double>&, const Condition<double>&) {
    return Tensor<double>({1});
  });
  CHECK_THROWS_AS(sampler.sample(wrong_shape, guidance::None{}, Tensor<double>({2, 2, 2, 1}), nullptr, {}, SampleNoise(0, 0)),
                  ShapeError);
  Tensor<std::uint8_t> bad_mask({2, 2, 2});
  CHECK_THROWS_AS(sampler.sample(nan_at_3, guidance::None{}, Tensor<double>({2, 2, 2, 1}), &bad_mask, {}, SampleNoise(0, 0)),
                  ShapeError);
}

// ---------------------------------------------------------------------------------------------------
// Generator

namespace {
/// N samples of N(mu, Sigma) as [N, 2, 2, 1].
Tensor<double> gaussian_data(index_t N, std::uint64_t seed) {
  const Eigen::MatrixXd L = test_cov().llt().matrixL();
  Rng rng(seed);
  Tensor<double> x({N, 2, 2, 1});
  for (index_t n = 0; n < N; ++n) {
    Eigen::Vector4d z(rng.normal(), rng.normal(), rng.normal(), rng.normal());
    const Eigen::VectorXd v = test_mean() + L * z;
    for (index_t i = 0; i < 4; ++i) x[n * 4 + i] = v[i];
  }
  return x;
}
}  // namespace

TEST_CASE("Generator: joint unconditional generation is the sampler's law - stats count rounds and calls") {
  const schedule::Cosine sched(100);
  const auto plan = TimestepPlan::full(100);
  auto gen = make_generator(sched, Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov()), mask::None{},
                            order::Joint{}, filter::AcceptAll{}, guidance::None{}, plan, no_clip(), 17);
  diffusion::Batch<double> batch;
  batch.data = Tensor<double>({8000, 2, 2, 1});
  const auto g = gen.generate(batch);
  CHECK(g.stats.rounds == 1);
  CHECK(g.stats.generated_fraction == 1.0);
  CHECK(g.stats.accepted_fraction == 1.0);
  CHECK(g.stats.denoiser_calls == plan.model_evaluations());
  CHECK(g.stats.round_seconds.size() == 1);
  const Law law = exact_law(alpha_bars(sched), plan, no_clip(), test_mean(), test_cov());
  const Moments m = moments(g.samples);
  CHECK(mean_error(m, law.m, law.S) < 0.05);
  CHECK(cov_error(m, law.S) < 0.05);
  // Bitwise reproducible from the seed.
  CHECK(gen.generate(batch).samples.storage() == g.samples.storage());
}

TEST_CASE("Generator: agent-wise sequential inpainting follows the law of chained RePaint passes - independent generation loses coupling") {
  // Rounds regenerate agent 1, then agent 0, each given the other (a Gibbs sweep): data drawn from
  // N(mu, Sigma) would stay N(mu, Sigma) under exact conditional sampling; with RePaint's approximation
  // the exact law of the chained passes is computed in closed form and the samples must follow it.
  // Independent generation samples each agent's marginal, so the cross-agent covariance vanishes.
  const schedule::Cosine sched(100);
  const auto plan = TimestepPlan::full(100).with_resampling(10, 10);
  const index_t N = 6000;
  diffusion::Batch<double> batch;
  batch.data = gaussian_data(N, 3);
  batch.values = Tensor<double>({N, 2, 2});
  for (index_t n = 0; n < N; ++n) batch.values(n, 1, 1) = 1.0;  // LOV: agent 1 first, for every sample
  const Gm den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());

  auto seq = make_generator(sched, den, mask::None{}, order::LastObsValue{}, filter::AcceptAll{}, guidance::None{}, plan,
                            no_clip(), 5);
  const auto s = seq.generate(batch);
  CHECK(s.stats.rounds == 2);
  CHECK(s.stats.denoiser_calls == 2 * plan.model_evaluations());
  CHECK(s.stats.generated_fraction == 1.0);
  const Law law = law_of_rounds(alpha_bars(sched), plan, no_clip(), test_mean(), test_cov(), test_mean(), test_cov(),
                                {{1, 3}, {0, 2}});
  const Moments ms = moments(s.samples);
  const double em = mean_error(ms, law.m, law.S), ec = cov_error(ms, law.S);
  const Law data{test_mean(), test_cov()};
  MESSAGE("sequential: samples vs exact law: mean ", em, " sd, cov ", ec, "; exact law vs N(mu, Sigma): mean ",
          law_mean_error(law, data), " sd, cov ", law_cov_error(law, data));
  CHECK(em < 0.05);
  CHECK(ec < 0.05);
  CHECK(law_mean_error(law, data) < 0.1);
  CHECK(law_cov_error(law, data) < 0.2);

  auto ind = make_generator(sched, den, mask::None{}, order::Independent{}, filter::AcceptAll{}, guidance::None{},
                            TimestepPlan::full(100), no_clip(), 5);
  const auto i = ind.generate(batch);
  const Moments mi = moments(i.samples);
  double cross = 0;
  for (index_t r = 0; r < 4; ++r)
    for (index_t c = 0; c < 4; ++c)
      if (r % 2 != c % 2) cross = std::max(cross, std::abs(mi.cov(r, c)) / test_cov().diagonal().maxCoeff());
  double marginal = 0;
  for (index_t a = 0; a < 2; ++a) {  // agent a's entries are flat indices a and 2 + a
    const std::vector<index_t> idx{a, 2 + a};
    const Law truth = restrict({test_mean(), test_cov()}, idx);
    const Law law = exact_law(alpha_bars(sched), TimestepPlan::full(100), no_clip(), truth.m, truth.S);
    const Moments m = moments(i.samples, idx);
    marginal = std::max({marginal, mean_error(m, law.m, law.S), cov_error(m, law.S)});
  }
  MESSAGE("independent: cross-agent covariance ", cross, " (joint: ", test_cov()(0, 1), "), per-agent law error ", marginal);
  CHECK(cross < 0.04);
  CHECK(marginal < 0.05);
}

TEST_CASE("Generator: MASTARS rounds (AfterSubgoal + LastObsValue), generated entries, filter verdicts") {
  const schedule::Cosine sched(20);
  const Gm den = Gm::gaussian(alpha_bars(sched), kEvent, test_mean(), test_cov());
  diffusion::Batch<double> batch;
  batch.data = gaussian_data(3, 1);
  batch.values = Tensor<double>({3, 2, 2});
  batch.subgoals = Tensor<std::int64_t>({3, 2}, {0, -1, 1, 0, 1, 1});  // sample 2: nothing after its subgoals
  for (index_t b = 0; b < 3; ++b) batch.values(b, 1, b % 2) = 1.0;     // LOV: agent b%2 first
  // Reject samples whose first entry is above the data's (a stand-in for the dynamics filter).
  auto score = [](const Tensor<double>& x, const diffusion::Batch<double>& bt) {
    std::vector<double> s;
    for (index_t b = 0; b < x.dim(0); ++b) s.push_back(x(b, 1, 0, 0) - bt.data(b, 1, 0, 0));
    return s;
  };
  auto gen = make_generator(sched, den, mask::AfterSubgoal{}, order::LastObsValue{}, filter::Threshold<decltype(score)>{score, 0.0},
                            guidance::None{}, TimestepPlan::full(20), no_clip(), 2);
  const auto g = gen.generate(batch);
  // Eq. 4: agent a of sample b is generated at steps t > g^a.
  for (index_t b = 0; b < 3; ++b)
    for (index_t t = 0; t < 2; ++t)
      for (index_t a = 0; a < 2; ++a) {
        const bool gen_entry = t > batch.subgoals(b, a);
        CHECK(g.generated(b, t, a, 0) == (gen_entry ? 1 : 0));
        if (!gen_entry) CHECK(g.samples(b, t, a, 0) == batch.data(b, t, a, 0));  // kept entries bitwise
      }
  CHECK(g.stats.generated_fraction == doctest::Approx(4.0 / 12.0));
  CHECK(g.stats.rounds == 2);
  for (index_t b = 0; b < 3; ++b) {
    const bool keep = g.samples(b, 1, 0, 0) - batch.data(b, 1, 0, 0) < 0.0;
    CHECK(g.keep[static_cast<std::size_t>(b)] == (keep ? 1 : 0));
    CHECK(g.reason[static_cast<std::size_t>(b)].empty() == keep);
  }
  CHECK(g.stats.accepted == static_cast<index_t>(std::count(g.keep.begin(), g.keep.end(), 1)));
  // Bad batches are refused before any work.
  diffusion::Batch<double> bad = batch;
  bad.data[0] = std::nan("");
  CHECK_THROWS_AS(gen.generate(bad), NumericError);
  bad = batch;
  bad.values = Tensor<double>();
  bad.subgoals = Tensor<std::int64_t>();
  CHECK_THROWS_AS(gen.generate(bad), ConfigError);
}
