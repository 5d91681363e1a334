#pragma once
// A training loop for trainable denoisers with MADiff's recipe (Zhu et al. 2024; Diffuser's Trainer):
// shuffled epochs, the simple loss of training_loss.hpp, Adam with linear warm-up, gradient accumulation,
// optional gradient-norm clipping, an EMA of the weights (decay 0.995, every 10 steps, from step 2000)
// and atomic checkpoints (model + EMA + optimizer state).
//
// Every random draw is keyed by (seed, step): the shuffle of epoch e comes from Philox stream
// kShuffleStream + e and the loss draws of minibatch g from stream kLossStream + g. A run therefore
// reproduces bit for bit, and a run resumed from a checkpoint continues exactly as the original: the
// checkpoint holds the weights, EMA, Adam moments, step, the logged loss curve and a fingerprint of the
// training data, and resume() refuses a checkpoint of other data or another minibatch layout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/diffusion/training_loss.hpp"
#include "coordiff/io/zip.hpp"
#include "coordiff/nn/checkpoint.hpp"
#include "coordiff/nn/optim/optim.hpp"
#include "coordiff/nn/parameter.hpp"
#include "coordiff/schedule/schedule.hpp"

namespace coordiff::diffusion {

/// N training windows: x [N, H, A, F] and an optional per-agent condition [N, A] (e.g. MADiff's
/// normalised returns) or [N, A, C] (C values per agent).
template <class T>
struct TrajectoryDataset {
  Tensor<T> x;
  Tensor<T> condition;

  index_t size() const { return x.rank() ? x.dim(0) : 0; }
  index_t horizon() const { return x.dim(1); }
  index_t agents() const { return x.dim(2); }
  index_t features() const { return x.dim(3); }

  void validate() const {
    require<ShapeError>(x.rank() == 4 && x.size() > 0, "TrajectoryDataset: x must be a non-empty [N, H, A, F] tensor, got ",
                        to_string(x.shape()));
    require_finite(x, "TrajectoryDataset x");
    if (!condition.empty()) Condition<T>{condition, {}, {}}.validate(x.dim(0), x.dim(2), "TrajectoryDataset");
  }
};

struct TrainerOptions {
  index_t batch_size = 32;      ///< windows per minibatch
  index_t steps = 1000;         ///< total optimisation steps
  double lr = 2e-4;             ///< Adam learning rate after warm-up (MADiff: 2e-4)
  index_t warmup_steps = 0;     ///< linear warm-up length
  double grad_clip = 0;         ///< max gradient 2-norm; 0 = off
  index_t grad_accumulate = 1;  ///< minibatches per optimisation step (MADiff: 2)
  double ema_decay = 0.995;
  index_t ema_every = 10;
  index_t ema_start = 2000;     ///< before this step the EMA is reset to the weights
  index_t checkpoint_every = 0; ///< 0 = only at the end of train() (if checkpoint_path is set)
  std::string checkpoint_path;  ///< empty = no checkpoints
  index_t log_every = 100;      ///< progress line period; 0 = only the final line
  std::uint64_t seed = 0;
  LossOptions loss;
  std::string architecture;     ///< stored in checkpoints (free-form description of the model)

  void validate() const {
    require<ConfigError>(batch_size >= 1, "TrainerOptions: batch_size must be >= 1, got ", batch_size);
    require<ConfigError>(steps >= 0, "TrainerOptions: steps must be >= 0, got ", steps);
    require<ConfigError>(std::isfinite(lr) && lr > 0, "TrainerOptions: lr must be > 0, got ", lr);
    require<ConfigError>(warmup_steps >= 0, "TrainerOptions: warmup_steps must be >= 0, got ", warmup_steps);
    require<ConfigError>(grad_clip >= 0, "TrainerOptions: grad_clip must be >= 0 (0 = off), got ", grad_clip);
    require<ConfigError>(grad_accumulate >= 1, "TrainerOptions: grad_accumulate must be >= 1, got ", grad_accumulate);
    require<ConfigError>(ema_decay >= 0 && ema_decay <= 1, "TrainerOptions: ema_decay must lie in [0, 1], got ", ema_decay);
    require<ConfigError>(ema_every >= 1 && ema_start >= 0, "TrainerOptions: need ema_every >= 1 and ema_start >= 0");
    require<ConfigError>(checkpoint_every >= 0 && log_every >= 0, "TrainerOptions: checkpoint_every and log_every must be >= 0");
    require<ConfigError>(checkpoint_every == 0 || !checkpoint_path.empty(),
                         "TrainerOptions: checkpoint_every is set but checkpoint_path is empty");
    loss.validate();
  }
};

/// What train() did: the mean loss of every logged interval (since step 1, including the intervals
/// logged before a resume), every step's loss in this call, and the wall time.
struct TrainingHistory {
  std::vector<index_t> logged_steps;  ///< last step of each logged interval
  std::vector<double> logged_loss;    ///< mean loss over that interval
  std::vector<double> step_loss;      ///< loss of each step run by this call, in order
  index_t first_step = 0;             ///< the step number of step_loss[0]
  double seconds = 0;                 ///< wall time of this call
  double total_seconds = 0;           ///< wall time of all steps since step 1 (across resumes)
};

namespace detail {
/// "[shape] crc32" of a tensor's bytes: enough to tell one training set from another.
template <class T>
std::string fingerprint(const Tensor<T>& t) {
  if (t.empty()) return "none";
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x",
                io::zip::detail::crc32_of(reinterpret_cast<const unsigned char*>(t.data()), static_cast<std::size_t>(t.size()) * sizeof(T)));
  return to_string(t.shape()) + " " + crc;
}

inline std::string join_numbers(const auto& values) {
  std::string out;
  char buf[32];
  for (const auto v : values) {
    std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(v));
    if (!out.empty()) out += ',';
    out += buf;
  }
  return out;
}

template <class V>
std::vector<V> split_numbers(const std::string& s, const std::string& what) {
  std::vector<V> out;
  std::size_t begin = 0;
  while (begin < s.size()) {
    const std::size_t end = std::min(s.find(',', begin), s.size());
    const std::string item = s.substr(begin, end - begin);
    char* stop = nullptr;
    const double v = std::strtod(item.c_str(), &stop);
    require<FormatError>(!item.empty() && stop == item.c_str() + item.size(), what, ": '", item, "' is not a number");
    out.push_back(static_cast<V>(v));
    begin = end + 1;
  }
  return out;
}

inline std::string format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  const auto total = static_cast<long long>(s + 0.5);
  if (total >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", total / 3600, (total / 60) % 60);
  else if (total >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", total / 60, total % 60);
  else std::snprintf(buf, sizeof buf, "%llds", total);
  return buf;
}
}  // namespace detail

/// Trains `model` (owned by the caller, which must outlive the trainer) on `data`.
template <schedule::NoiseSchedule S, class Net>
  requires TrainableDenoiser<Net> &&
           requires(Net& n, nn::ParameterList<typename Net::value_type>& l, const std::string& p) { n.collect_parameters(l, p); }
class Trainer {
 public:
  using value_type = typename Net::value_type;
  using T = value_type;
  static constexpr std::uint64_t kLossStream = std::uint64_t{1} << 62;
  static constexpr std::uint64_t kShuffleStream = std::uint64_t{2} << 62;

  Trainer(Net& model, S schedule, TrajectoryDataset<T> data, TrainerOptions options)
      : net_(&model),
        schedule_(std::move(schedule)),
        data_(std::move(data)),
        opt_(std::move(options)),
        params_(checked_parameters(model, opt_, data_)),
        adam_(params_, adam_options(opt_)),
        ema_(params_, opt_.ema_decay, opt_.ema_start, opt_.ema_every) {
    require<ConfigError>(schedule_.num_steps() >= 1, "Trainer: the schedule has no diffusion steps");
    require<ConfigError>(opt_.loss.history_steps < data_.horizon(), "Trainer: history_steps ", opt_.loss.history_steps,
                         " leaves no step of the horizon ", data_.horizon(), " in the loss");
  }

  /// One optimisation step (grad_accumulate minibatches), then the periodic checkpoint if one is due;
  /// returns the step's mean loss.
  double step() {
    const double loss = optimise();
    checkpoint_if_due();
    return loss;
  }

 private:
  double optimise() {
    const index_t s = step_ + 1;
    nn::optim::apply_schedule(adam_, nn::optim::LinearWarmup{opt_.warmup_steps}, opt_.lr, s);
    nn::zero_grad(params_);
    double loss = 0;
    const double scale = 1.0 / static_cast<double>(opt_.grad_accumulate);
    for (index_t m = 0; m < opt_.grad_accumulate; ++m) {
      const index_t g = step_ * opt_.grad_accumulate + m;  // global minibatch index
      Rng rng(opt_.seed, kLossStream + static_cast<std::uint64_t>(g));
      loss += scale * training_loss(*net_, schedule_, minibatch(g), opt_.loss, rng, scale);
    }
    if (opt_.grad_clip > 0) nn::optim::clip_grad_norm(params_, opt_.grad_clip);
    adam_.step();  // throws NumericError naming the parameter if a gradient is not finite
    step_ = s;
    ema_.update(s);
    window_sum_ += loss;  // the progress interval in flight (it survives a checkpoint and a resume)
    ++window_count_;
    return loss;
  }
  void checkpoint_if_due() {
    if (!opt_.checkpoint_path.empty() && opt_.checkpoint_every > 0 && step_ % opt_.checkpoint_every == 0)
      save_checkpoint(opt_.checkpoint_path);
  }

 public:

  /// Runs the remaining steps up to options.steps, printing progress to `log` (nullptr = silent), and
  /// writes a final checkpoint when checkpoint_path is set.
  TrainingHistory train(std::ostream* log = nullptr) {
    using clock = std::chrono::steady_clock;
    TrainingHistory h;
    h.first_step = step_ + 1;
    const auto t0 = clock::now();
    train_started_ = t0;
    training_ = true;
    const index_t start = step_;
    while (step_ < opt_.steps) {
      h.step_loss.push_back(optimise());
      if ((opt_.log_every > 0 && step_ % opt_.log_every == 0) || step_ == opt_.steps) {
        const double mean = window_sum_ / static_cast<double>(window_count_);
        logged_steps_.push_back(step_);
        logged_loss_.push_back(mean);
        if (log) {
          const double secs = std::chrono::duration<double>(clock::now() - t0).count();
          const double rate = secs > 0 ? static_cast<double>(step_ - start) / secs : 0.0;
          const double eta = rate > 0 ? static_cast<double>(opt_.steps - step_) / rate : 0.0;
          char buf[160];
          std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.5f  %.1f steps/s  ETA %s",
                        static_cast<long long>(step_), static_cast<long long>(opt_.steps), mean, rate,
                        detail::format_duration(eta).c_str());
          *log << buf << '\n' << std::flush;
        }
        window_sum_ = 0;
        window_count_ = 0;
      }
      checkpoint_if_due();  // after the progress line, so that the checkpoint holds the curve up to here
    }
    if (!opt_.checkpoint_path.empty() && step_ > start &&
        !(opt_.checkpoint_every > 0 && step_ % opt_.checkpoint_every == 0))
      save_checkpoint(opt_.checkpoint_path);
    h.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    training_ = false;
    seconds_before_ += h.seconds;
    h.total_seconds = seconds_before_;
    h.logged_steps = logged_steps_;
    h.logged_loss = logged_loss_;
    return h;
  }

  /// Writes model weights, EMA weights ("ema.<name>") and Adam moments atomically.
  void save_checkpoint(const std::filesystem::path& path) {
    nn::CheckpointMeta meta;
    meta.architecture = opt_.architecture.empty() ? "coordiff::diffusion::Trainer model" : opt_.architecture;
    meta.step = static_cast<std::uint64_t>(step_);
    const bool eps = opt_.loss.prediction == denoiser::Prediction::Epsilon;
    meta.metadata = std::map<std::string, std::string>{{"adam_step", std::to_string(adam_.step_count())},
                     {"diffusion_steps", std::to_string(static_cast<index_t>(schedule_.num_steps()))},
                     {"prediction", eps ? "epsilon" : "sample"},
                     {"seed", std::to_string(opt_.seed)},
                     {"lr", std::to_string(opt_.lr)},
                     {"batch_size", std::to_string(opt_.batch_size)},
                     {"grad_accumulate", std::to_string(opt_.grad_accumulate)},
                     {"ema_decay", std::to_string(opt_.ema_decay)},
                     {"data", data_fingerprint_},
                     {"logged_steps", detail::join_numbers(logged_steps_)},
                     {"logged_loss", detail::join_numbers(logged_loss_)},
                     {"train_seconds", detail::join_numbers(std::vector<double>{elapsed_seconds()})},
                     {"loss_interval", detail::join_numbers(std::vector<double>{window_sum_, double(window_count_)})}};
    nn::save_checkpoint(path, params_, meta, extras());
  }

  /// Restores model, EMA and optimizer state, the step counter and the logged loss curve from
  /// save_checkpoint()'s file. The checkpoint must come from the same training data (fingerprint), the
  /// same schedule length and the same minibatch layout (batch_size, grad_accumulate), or the continued
  /// run would not be the one that was stopped.
  nn::CheckpointMeta resume(const std::filesystem::path& path) {
    // The metadata is checked before any tensor is loaded, so that a refused checkpoint leaves the model untouched.
    std::vector<index_t> logged_steps;
    std::vector<double> logged_loss, seconds, interval;
    std::string adam_step;
    const auto check = [&](const nn::CheckpointMeta& peek) {
      const auto get = [&](const char* key) -> std::string {
        const auto it = peek.metadata.find(key);
        require<FormatError>(it != peek.metadata.end(), path.string(), ": not a Trainer checkpoint, or one written before its '",
                             key, "' entry existed (train again to resume)");
        return it->second;
      };
      require<ConfigError>(get("diffusion_steps") == std::to_string(static_cast<index_t>(schedule_.num_steps())),
                           path.string(), ": trained with ", get("diffusion_steps"), " diffusion steps, the schedule has ",
                           schedule_.num_steps());
      const auto same = [&](const char* key, const std::string& ours) {
        require<ConfigError>(get(key) == ours, path.string(), ": its ", key, " is ", get(key), ", this trainer's is ", ours,
                             "; resuming would not continue that run");
      };
      same("batch_size", std::to_string(opt_.batch_size));
      same("grad_accumulate", std::to_string(opt_.grad_accumulate));
      same("data", data_fingerprint_);
      logged_steps = detail::split_numbers<index_t>(get("logged_steps"), path.string() + " logged_steps");
      logged_loss = detail::split_numbers<double>(get("logged_loss"), path.string() + " logged_loss");
      seconds = detail::split_numbers<double>(get("train_seconds"), path.string() + " train_seconds");
      interval = detail::split_numbers<double>(get("loss_interval"), path.string() + " loss_interval");
      require<FormatError>(logged_steps.size() == logged_loss.size() && seconds.size() == 1 && interval.size() == 2,
                           path.string(), ": malformed logged loss curve");
      adam_step = get("adam_step");
    };
    auto meta = nn::load_checkpoint(path, params_, extras(), check);
    adam_.set_step_count(std::stoll(adam_step));
    step_ = static_cast<index_t>(meta.step);
    logged_steps_ = std::move(logged_steps);
    logged_loss_ = std::move(logged_loss);
    seconds_before_ = seconds.front();
    window_sum_ = interval[0];
    window_count_ = static_cast<index_t>(interval[1]);
    return meta;
  }

  /// The fingerprint of the training data stored in checkpoints ("[shape] crc32" of windows and condition).
  const std::string& data_fingerprint() const { return data_fingerprint_; }

  /// Writes the EMA weights into `target` (a model of the same architecture, e.g. for evaluation).
  void copy_ema_to(Net& target) const { ema_.copy_to(nn::parameters_of<T>(target)); }

  /// The minibatch with global index g: epoch g / batches_per_epoch, in that epoch's shuffled order.
  TrainingBatch<T> minibatch(index_t g) {
    const index_t N = data_.size(), per_epoch = batches_per_epoch();
    const index_t epoch = g / per_epoch, j = g % per_epoch;
    if (epoch != perm_epoch_) shuffle(epoch);
    const index_t begin = j * opt_.batch_size, end = std::min(N, begin + opt_.batch_size), B = end - begin;
    const index_t row = data_.x.size() / N, A = data_.agents();
    TrainingBatch<T> b;
    b.x0 = Tensor<T>({B, data_.horizon(), A, data_.features()});
    const index_t crow = data_.condition.empty() ? 0 : data_.condition.size() / N;  // A or A C values
    if (crow > 0) {
      Shape shape = data_.condition.shape();
      shape[0] = B;
      b.condition.value = Tensor<T>(shape);
    }
    for (index_t i = 0; i < B; ++i) {
      const index_t src = perm_[static_cast<std::size_t>(begin + i)];
      std::copy(data_.x.data() + src * row, data_.x.data() + (src + 1) * row, b.x0.data() + i * row);
      if (crow > 0)
        std::copy(data_.condition.data() + src * crow, data_.condition.data() + (src + 1) * crow, b.condition.value.data() + i * crow);
    }
    return b;
  }

  index_t batches_per_epoch() const { return (data_.size() + opt_.batch_size - 1) / opt_.batch_size; }
  index_t current_step() const { return step_; }
  const TrainerOptions& options() const { return opt_; }
  const S& schedule() const { return schedule_; }
  const nn::ParameterList<T>& parameters() const { return params_; }
  nn::optim::Adam<T>& optimizer() { return adam_; }
  nn::optim::Ema<T>& ema() { return ema_; }
  Net& model() { return *net_; }

 private:
  static nn::ParameterList<T> checked_parameters(Net& model, const TrainerOptions& o, const TrajectoryDataset<T>& d) {
    o.validate();  // before Adam/Ema see the options
    d.validate();
    auto p = nn::parameters_of<T>(model);
    require<ConfigError>(!p.empty(), "Trainer: the model has no parameters");
    return p;
  }
  static nn::optim::AdamOptions adam_options(const TrainerOptions& o) {
    nn::optim::AdamOptions a;
    a.lr = o.lr;
    return a;
  }
  double elapsed_seconds() const {
    return seconds_before_ +
           (training_ ? std::chrono::duration<double>(std::chrono::steady_clock::now() - train_started_).count() : 0.0);
  }
  nn::NamedTensors<T> extras() {
    nn::NamedTensors<T> e = ema_.shadow();
    for (auto& s : adam_.state()) e.push_back(s);
    return e;
  }
  // Fisher-Yates permutation of the dataset for one epoch.
  void shuffle(index_t epoch) {
    const index_t N = data_.size();
    perm_.resize(static_cast<std::size_t>(N));
    for (index_t i = 0; i < N; ++i) perm_[static_cast<std::size_t>(i)] = i;
    Rng rng(opt_.seed, kShuffleStream + static_cast<std::uint64_t>(epoch));
    for (index_t i = N - 1; i > 0; --i)
      std::swap(perm_[static_cast<std::size_t>(i)], perm_[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
    perm_epoch_ = epoch;
  }

  Net* net_;
  S schedule_;
  TrajectoryDataset<T> data_;
  TrainerOptions opt_;
  nn::ParameterList<T> params_;
  nn::optim::Adam<T> adam_;
  nn::optim::Ema<T> ema_;
  std::string data_fingerprint_ = "x " + detail::fingerprint(data_.x) + ", condition " + detail::fingerprint(data_.condition);
  index_t step_ = 0;
  index_t perm_epoch_ = -1;
  std::vector<index_t> perm_;
  std::vector<index_t> logged_steps_;  // the loss curve since step 1
  std::vector<double> logged_loss_;
  double window_sum_ = 0;  // loss sum and step count of the progress interval in flight
  index_t window_count_ = 0;
  double seconds_before_ = 0;  // training time before this train() call (earlier calls, resumed runs)
  std::chrono::steady_clock::time_point train_started_{};
  bool training_ = false;
};

/// Loads a Trainer checkpoint into `model` for evaluation: the EMA weights (use_ema) or the raw weights.
template <class T>
nn::CheckpointMeta load_trained_weights(const std::filesystem::path& path, const nn::ParameterList<T>& model,
                                        bool use_ema = true) {
  std::vector<Tensor<T>> ema(model.size());
  nn::NamedTensors<T> extra;
  if (use_ema)
    for (std::size_t k = 0; k < model.size(); ++k) {
      ema[k] = Tensor<T>(model[k].param->shape());
      extra.emplace_back("ema." + model[k].name, &ema[k]);
    }
  auto meta = nn::load_checkpoint(path, model, extra);
  if (use_ema)
    for (std::size_t k = 0; k < model.size(); ++k) model[k].param->value = std::move(ema[k]);
  return meta;
}

}  // namespace coordiff::diffusion
