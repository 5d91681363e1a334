#pragma once
// The timestep plan: the single list of transitions a sampler walks. Levels are training steps k
// (x_k is at noise level abar_k); level -1 is the clean sample. A transition to a lower level is a
// reverse (denoising) step that calls the model; a transition to a higher level is a forward
// re-noising step (RePaint's "undo", Lugmayr et al. 2022, Algorithm 1 lines 9-10), which does not.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::diffusion {

/// How a strided subset of num_inference_steps levels is chosen from num_train_steps (diffusers'
/// timestep_spacing; round = NumPy's, half to even): Leading k_i = i*(K/n); Trailing k_i =
/// round(K - i*K/n) - 1; Linspace = round of linspace(0, K-1, n).
enum class Spacing { Leading, Trailing, Linspace };

/// The spacing named by "leading", "trailing" or "linspace" (diffusers' names).
inline Spacing parse_spacing(const std::string& name) {
  if (name == "leading") return Spacing::Leading;
  if (name == "trailing") return Spacing::Trailing;
  require<ConfigError>(name == "linspace", "spacing must be leading, trailing or linspace, got '", name, "'");
  return Spacing::Linspace;
}

struct StepEvent {
  index_t from = 0;  ///< level of the input
  index_t to = -1;   ///< level of the output (-1 = clean)
  bool denoise() const { return to < from; }
};

class TimestepPlan {
 public:
  /// Every training step, K-1 down to 0, then clean.
  static TimestepPlan full(index_t num_train_steps) {
    require<ConfigError>(num_train_steps >= 1, "TimestepPlan: num_train_steps must be >= 1, got ", num_train_steps);
    std::vector<index_t> lv(static_cast<std::size_t>(num_train_steps));
    for (index_t i = 0; i < num_train_steps; ++i) lv[static_cast<std::size_t>(i)] = num_train_steps - 1 - i;
    return TimestepPlan(num_train_steps, std::move(lv));
  }

  /// num_inference_steps levels out of num_train_steps (DDIM, Song et al. 2021, section 4.2).
  static TimestepPlan strided(index_t num_train_steps, index_t num_inference_steps, Spacing spacing = Spacing::Leading) {
    require<ConfigError>(num_train_steps >= 1 && num_inference_steps >= 1 && num_inference_steps <= num_train_steps,
                         "TimestepPlan: need 1 <= num_inference_steps (", num_inference_steps, ") <= num_train_steps (",
                         num_train_steps, ")");
    const index_t K = num_train_steps, n = num_inference_steps;
    std::vector<index_t> lv;
    for (index_t i = 0; i < n; ++i) {
      index_t k = 0;
      switch (spacing) {
        case Spacing::Leading: k = i * (K / n); break;
        case Spacing::Trailing:
          k = static_cast<index_t>(std::nearbyint(static_cast<double>(K) - static_cast<double>(i) * K / n)) - 1;
          break;
        case Spacing::Linspace:
          k = n == 1 ? 0 : static_cast<index_t>(std::nearbyint(static_cast<double>(i) * (K - 1) / (n - 1)));
          break;
      }
      lv.push_back(k);
    }
    std::sort(lv.begin(), lv.end(), std::greater<>());
    lv.erase(std::unique(lv.begin(), lv.end()), lv.end());
    return TimestepPlan(K, std::move(lv));
  }

  /// An explicit list of levels (strictly decreasing, each in [0, num_train_steps)).
  static TimestepPlan from_levels(index_t num_train_steps, std::vector<index_t> levels) {
    require<ConfigError>(!levels.empty(), "TimestepPlan: empty level list");
    for (std::size_t i = 0; i < levels.size(); ++i) {
      require<ConfigError>(levels[i] >= 0 && levels[i] < num_train_steps, "TimestepPlan: level ", levels[i],
                           " outside 0 .. ", num_train_steps - 1);
      require<ConfigError>(i == 0 || levels[i] < levels[i - 1], "TimestepPlan: levels must decrease strictly, got ",
                           levels[i - 1], " then ", levels[i]);
    }
    return TimestepPlan(num_train_steps, std::move(levels));
  }

  /// RePaint resampling (Lugmayr et al. 2022, section 4.2; schedule of the reference code's
  /// get_schedule_jump): every jump_length positions (counted from the clean end, the last position
  /// included, the top jump_length never) the walk goes back up jump_length levels, jump_n_sample - 1
  /// times. jump_n_sample = 1 means no resampling.
  TimestepPlan with_resampling(index_t jump_length, index_t jump_n_sample) const {
    require<ConfigError>(jump_length >= 1 && jump_n_sample >= 1, "TimestepPlan: jump_length (", jump_length,
                         ") and jump_n_sample (", jump_n_sample, ") must be >= 1");
    const index_t n = static_cast<index_t>(levels_.size());
    // Walk positions t = n-1 .. 0 then -1, where position t is level levels_[n-1-t].
    std::vector<index_t> jumps_left(static_cast<std::size_t>(n), 0);
    for (index_t j = 0; j < n - jump_length; j += jump_length) jumps_left[static_cast<std::size_t>(j)] = jump_n_sample - 1;
    std::vector<index_t> walk{n - 1};
    index_t t = n - 1;
    while (t >= 1) {
      --t;
      walk.push_back(t);
      if (jumps_left[static_cast<std::size_t>(t)] > 0) {
        --jumps_left[static_cast<std::size_t>(t)];
        for (index_t u = 0; u < jump_length; ++u) walk.push_back(++t);
      }
    }
    walk.push_back(-1);
    TimestepPlan p = *this;
    p.events_.clear();
    auto level_of = [&](index_t pos) { return pos < 0 ? index_t(-1) : levels_[static_cast<std::size_t>(n - 1 - pos)]; };
    for (std::size_t i = 0; i + 1 < walk.size(); ++i) p.events_.push_back({level_of(walk[i]), level_of(walk[i + 1])});
    p.jump_length_ = jump_length;
    p.jump_n_sample_ = jump_n_sample;
    return p;
  }

  /// The deterministic-inversion walk (DDIM inversion, e.g. for the DIRE metric): clean -> lowest level
  /// -> ... -> highest level. Only denoise() == false events; a sampler uses them with the DDIM rule.
  std::vector<StepEvent> inversion_events() const {
    std::vector<StepEvent> ev;
    index_t prev = -1;
    for (std::size_t i = levels_.size(); i-- > 0;) {
      ev.push_back({prev, levels_[i]});
      prev = levels_[i];
    }
    return ev;
  }

  index_t num_train_steps() const { return num_train_steps_; }
  /// Distinct levels, highest first; sampling starts at levels().front().
  const std::vector<index_t>& levels() const { return levels_; }
  const std::vector<StepEvent>& events() const { return events_; }
  index_t first_level() const { return levels_.front(); }
  index_t jump_length() const { return jump_length_; }
  index_t jump_n_sample() const { return jump_n_sample_; }
  /// Number of reverse steps (model calls per sample without guidance).
  index_t model_evaluations() const {
    return static_cast<index_t>(std::count_if(events_.begin(), events_.end(), [](const StepEvent& e) { return e.denoise(); }));
  }
  index_t renoise_steps() const { return static_cast<index_t>(events_.size()) - model_evaluations(); }

 private:
  TimestepPlan(index_t num_train_steps, std::vector<index_t> levels)
      : num_train_steps_(num_train_steps), levels_(std::move(levels)) {
    for (std::size_t i = 0; i < levels_.size(); ++i)
      events_.push_back({levels_[i], i + 1 < levels_.size() ? levels_[i + 1] : index_t(-1)});
  }
  index_t num_train_steps_ = 0;
  std::vector<index_t> levels_;
  std::vector<StepEvent> events_;
  index_t jump_length_ = 1, jump_n_sample_ = 1;
};

}  // namespace coordiff::diffusion
