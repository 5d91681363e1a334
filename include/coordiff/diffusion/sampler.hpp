#pragma once
// The reverse-process sampler: walks a TimestepPlan, asks a Guidance policy for the model output at each
// reverse step and applies DDPM ancestral (Ho et al. 2020, eqs. 6-7) or DDIM (Song et al. 2021, eq. 12)
// updates; with a known mask it inpaints as RePaint does (Lugmayr et al. 2022, Algorithm 1): after every
// reverse step the known entries are replaced by the known data noised to the new level, and at the end
// by the data itself. Re-noising events of the plan ("undo", RePaint's resampling) apply q(x_to | x_from).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "coordiff/core/condition.hpp"
#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/diffusion/noise.hpp"
#include "coordiff/diffusion/timestep_plan.hpp"
#include "coordiff/guidance/guidance.hpp"
#include "coordiff/nn/parameter.hpp"
#include "coordiff/schedule/schedule.hpp"

namespace coordiff::diffusion {

enum class Solver {
  Ddpm,  ///< ancestral sampling from the posterior q(x_prev | x_k, x0^)
  Ddim   ///< x_prev = sqrt(abar_prev) x0^ + sqrt(1 - abar_prev - sigma^2) eps^ + sigma z, sigma from eta
};

/// DDPM posterior variance: FixedSmall = beta~ = beta (1 - abar_prev)/(1 - abar_k) (diffusers'
/// "fixed_small", MADiff); FixedLarge = beta (Ho et al. 2020, section 3.2).
enum class Variance { FixedSmall, FixedLarge };

/// Which noise level the known entries are pasted at after a reverse step k -> prev:
/// RePaint: level prev (Lugmayr et al. 2022, Algorithm 1 line 5); Mastars: level k, as MASTARS eq. 5c
/// and its reference code do. Both paste the exact data after the final step.
enum class PasteRule { RePaint, Mastars };

struct SamplerOptions {
  Solver solver = Solver::Ddpm;
  Variance variance = Variance::FixedSmall;
  double eta = 0.0;  ///< DDIM: 0 = deterministic, 1 = DDPM-like variance
  denoiser::Prediction prediction = denoiser::Prediction::Epsilon;
  bool clip_sample = true;  ///< clamp x0^ to [-clip_range, clip_range] (MADiff: on, range 1)
  double clip_range = 1.0;
  double initial_noise_scale = 1.0;  ///< x_K = scale * z (MADiff samples with 0.5)
  PasteRule paste = PasteRule::RePaint;
};

/// Counts of one sampling call (per batch, not per sample).
struct SampleStats {
  index_t reverse_steps = 0;
  index_t renoise_steps = 0;
};

/// The scalars of one reverse step from abar ab_t to abar ab_prev (1 for the clean end): x0^ =
/// (x - ss eps^)/sa; DDPM: x_prev = c0 x0^ + ct x (posterior mean, Ho et al. 2020 eq. 7, for a possibly
/// strided step) + sigma z; DDIM: x_prev = sqrt(ab_prev) x0^ + ddim_dir eps^ + sigma z (Song et al. 2021 eq. 12).
struct StepCoefficients {
  double sa, ss, sigma, c0, ct, sqrt_ab_prev, ddim_dir;
};

inline StepCoefficients step_coefficients(const SamplerOptions& opt, double ab_t, double ab_prev) {
  StepCoefficients c{};
  c.sa = std::sqrt(ab_t), c.ss = std::sqrt(1.0 - ab_t);
  const bool last = ab_prev >= 1.0;
  const double alpha_t = ab_t / ab_prev, beta_t = 1.0 - alpha_t;
  if (opt.solver == Solver::Ddpm) {
    const double var = opt.variance == Variance::FixedSmall ? std::max(beta_t * (1.0 - ab_prev) / (1.0 - ab_t), 1e-20)
                                                            : beta_t;
    c.sigma = last ? 0.0 : std::sqrt(var);
  } else {
    c.sigma = last ? 0.0 : opt.eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab_t) * beta_t);
  }
  c.c0 = std::sqrt(ab_prev) * beta_t / (1.0 - ab_t), c.ct = std::sqrt(alpha_t) * (1.0 - ab_prev) / (1.0 - ab_t);
  c.sqrt_ab_prev = std::sqrt(ab_prev);
  c.ddim_dir = std::sqrt(std::max(1.0 - ab_prev - c.sigma * c.sigma, 0.0));
  return c;
}

namespace detail {
/// Calls the denoiser with activation caching off (inference: no backward pass follows). A cost used by
/// gradient guidance still runs with caching on, as it needs its own backward pass.
template <class D>
struct InferenceCall {
  using value_type = typename D::value_type;
  D* d;
  Tensor<value_type> operator()(const Tensor<value_type>& x, const Tensor<value_type>& k, const Condition<value_type>& c) {
    nn::NoGradGuard no_grad;
    return (*d)(x, k, c);
  }
};

template <class T>
void paste_known(Tensor<T>& x, const Tensor<T>& known_values, const Tensor<std::uint8_t>& known, double alpha_bar,
                 const SampleNoise& noise, std::uint64_t event) {
  if (alpha_bar >= 1.0) {
    for (index_t i = 0; i < x.size(); ++i)
      if (known[i]) x[i] = known_values[i];
    return;
  }
  const Tensor<T> noised = add_noise(known_values, noise.normal<T>(x.shape(), NoisePurpose::Paste, event), alpha_bar);
  for (index_t i = 0; i < x.size(); ++i)
    if (known[i]) x[i] = noised[i];
}
}  // namespace detail

// Unconstrained on purpose: a schedule that misses a requirement gets the family's readable message
// instead of a constraint failure.
template <class S>
class Sampler {
  static_assert(schedule::check_noise_schedule<S>());

 public:
  Sampler(S schedule, TimestepPlan plan, SamplerOptions options = {})
      : schedule_(std::move(schedule)), plan_(std::move(plan)), opt_(options) {
    require<ConfigError>(plan_.num_train_steps() == static_cast<index_t>(schedule_.num_steps()), "Sampler: the plan is for ",
                         plan_.num_train_steps(), " training steps but the schedule has ", schedule_.num_steps());
    require<ConfigError>(opt_.eta >= 0.0, "Sampler: DDIM eta must be >= 0, got ", opt_.eta);
    require<ConfigError>(!opt_.clip_sample || opt_.clip_range > 0.0, "Sampler: clip_range must be > 0, got ", opt_.clip_range);
    require<ConfigError>(opt_.initial_noise_scale > 0.0, "Sampler: initial_noise_scale must be > 0, got ",
                         opt_.initial_noise_scale);
  }

  const S& schedule() const { return schedule_; }
  const TimestepPlan& plan() const { return plan_; }
  const SamplerOptions& options() const { return opt_; }

  /// Draws x0 samples shaped like `known_values` ([B, ...]). If `known` is given (1 = known, same shape),
  /// those entries are inpainted from known_values and equal them exactly in the result; otherwise the
  /// sample is unconditional (known_values only gives the shape).
  template <denoiser::Denoiser D, class G>
  Tensor<typename D::value_type> sample(D& den, const G& guide, const Tensor<typename D::value_type>& known_values,
                                        const Tensor<std::uint8_t>* known, const Condition<typename D::value_type>& cond,
                                        const SampleNoise& noise, SampleStats* stats = nullptr) const {
    using T = typename D::value_type;
    if (known) require_shape(known->shape(), known_values.shape(), "Sampler::sample known mask");
    Tensor<T> x = noise.normal<T>(known_values.shape(), NoisePurpose::Initial, 0);
    if (opt_.initial_noise_scale != 1.0)
      for (auto& v : x) v = static_cast<T>(v * opt_.initial_noise_scale);
    if (known) detail::paste_known(x, known_values, *known, alpha_bar(plan_.first_level()), noise, plan_.events().size());
    return run(den, guide, std::move(x), known ? &known_values : nullptr, known, cond, noise, stats);
  }

  /// Runs the plan from a given x at level plan().first_level() (no initial noise): e.g. the output of
  /// invert(), or a user-built start.
  template <denoiser::Denoiser D, class G>
  Tensor<typename D::value_type> denoise_from(D& den, const G& guide, Tensor<typename D::value_type> x_start,
                                              const Condition<typename D::value_type>& cond, const SampleNoise& noise,
                                              SampleStats* stats = nullptr) const {
    return run(den, guide, std::move(x_start), nullptr, nullptr, cond, noise, stats);
  }

  /// Deterministic DDIM inversion (Song et al. 2021, eq. 12 with sigma = 0, run from clean to noisy):
  /// x_next = sqrt(abar_next) x0^ + sqrt(1 - abar_next) eps^, with eps^ predicted at the current level
  /// (at the clean start, at the lowest level). Never clips. Returns x at plan().first_level().
  template <denoiser::Denoiser D, class G>
  Tensor<typename D::value_type> invert(D& den, const G& guide, const Tensor<typename D::value_type>& x0,
                                        const Condition<typename D::value_type>& cond) const {
    using T = typename D::value_type;
    require_finite(x0, "Sampler::invert x0");
    Tensor<T> x = x0;
    for (const StepEvent& ev : plan_.inversion_events()) {
      const index_t model_level = ev.from < 0 ? ev.to : ev.from;
      const double ab_from = alpha_bar(ev.from), ab_model = alpha_bar(model_level), ab_to = alpha_bar(ev.to);
      const Tensor<T> out = model_output(den, guide, x, model_level, ab_model, cond);
      // eps^ as predicted at the model level, x0^ consistent with the current x.
      const Tensor<T> eps = opt_.prediction == denoiser::Prediction::Epsilon
                                ? out
                                : guidance::epsilon_from_sample(x, out, ev.from < 0 ? ab_model : ab_from);
      const double sa = std::sqrt(ab_from), ss = std::sqrt(1.0 - ab_from);
      const double ta = std::sqrt(ab_to), ts = std::sqrt(1.0 - ab_to);
      for (index_t i = 0; i < x.size(); ++i) {
        const double x0_hat = (x[i] - ss * eps[i]) / sa;
        x[i] = static_cast<T>(ta * x0_hat + ts * eps[i]);
      }
    }
    return x;
  }

  double alpha_bar(index_t level) const { return schedule::alpha_bar_at(schedule_, level); }

 private:
  template <class D, class G>
  Tensor<typename D::value_type> model_output(D& den, const G& guide, const Tensor<typename D::value_type>& x, index_t level,
                                              double ab, const Condition<typename D::value_type>& cond) const {
    using T = typename D::value_type;
    const Tensor<T> k({x.dim(0)}, static_cast<T>(level));
    const guidance::StepInfo info{level, ab, opt_.prediction};
    detail::InferenceCall<D> call{&den};
    Tensor<T> out = guide.model_output(call, x, k, cond, info);
    require_shape(out.shape(), x.shape(), "Sampler: denoiser output");
    require_finite(out, "Sampler: denoiser output at diffusion step " + std::to_string(level));
    return out;
  }

  template <class D, class G>
  Tensor<typename D::value_type> run(D& den, const G& guide, Tensor<typename D::value_type> x,
                                     const Tensor<typename D::value_type>* known_values, const Tensor<std::uint8_t>* known,
                                     const Condition<typename D::value_type>& cond, const SampleNoise& noise,
                                     SampleStats* stats) const {
    using T = typename D::value_type;
    require<ShapeError>(x.rank() >= 1 && x.size() > 0, "Sampler: empty batch ", to_string(x.shape()));
    const auto& events = plan_.events();
    for (std::size_t e = 0; e < events.size(); ++e) {
      const StepEvent ev = events[e];
      const double ab_from = alpha_bar(ev.from), ab_to = alpha_bar(ev.to);
      if (!ev.denoise()) {  // q(x_to | x_from): x_to = sqrt(ab_to/ab_from) x + sqrt(1 - ab_to/ab_from) z
        const double ratio = ab_to / ab_from;
        const Tensor<T> z = noise.normal<T>(x.shape(), NoisePurpose::Renoise, e);
        const double a = std::sqrt(ratio), s = std::sqrt(1.0 - ratio);
        for (index_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(a * x[i] + s * z[i]);
        if (stats) ++stats->renoise_steps;
        continue;
      }
      const Tensor<T> out = model_output(den, guide, x, ev.from, ab_from, cond);
      step(x, out, ab_from, ab_to, noise, e);
      if (known) {
        const double paste_ab = ev.to < 0 ? 1.0 : (opt_.paste == PasteRule::RePaint ? ab_to : ab_from);
        detail::paste_known(x, *known_values, *known, paste_ab, noise, e);
      }
      if (stats) ++stats->reverse_steps;
    }
    return x;
  }

  /// One reverse step from level k (abar ab_t) to the previous level (abar ab_prev; 1 for clean).
  template <class T>
  void step(Tensor<T>& x, const Tensor<T>& out, double ab_t, double ab_prev, const SampleNoise& noise,
            std::uint64_t event) const {
    const index_t n = x.size();
    const bool eps_param = opt_.prediction == denoiser::Prediction::Epsilon;
    const StepCoefficients co = step_coefficients(opt_, ab_t, ab_prev);
    const double sa = co.sa, ss = co.ss, sigma = co.sigma, c0 = co.c0, ct = co.ct, ddim_dir = co.ddim_dir;
    Tensor<T> z;
    if (sigma > 0.0) z = noise.normal<T>(x.shape(), NoisePurpose::Step, event);
    const double lim = opt_.clip_range;
    for (index_t i = 0; i < n; ++i) {
      const double xi = x[i];
      double eps = eps_param ? static_cast<double>(out[i]) : (xi - sa * out[i]) / ss;
      double x0 = eps_param ? (xi - ss * out[i]) / sa : static_cast<double>(out[i]);
      if (opt_.clip_sample) x0 = std::clamp(x0, -lim, lim);
      double next = 0.0;
      if (opt_.solver == Solver::Ddpm) {
        next = c0 * x0 + ct * xi;
      } else {
        next = std::sqrt(ab_prev) * x0 + ddim_dir * eps;
      }
      if (sigma > 0.0) next += sigma * z[i];
      x[i] = static_cast<T>(next);
    }
  }

  S schedule_;
  TimestepPlan plan_;
  SamplerOptions opt_;
};

}  // namespace coordiff::diffusion
