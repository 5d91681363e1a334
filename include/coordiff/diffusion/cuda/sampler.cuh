#pragma once
// diffusion::Sampler with the whole loop on the GPU: initial noise, every reverse step (classifier-free
// guidance as one pass over the doubled batch, the DDPM/DDIM update with x0^ clipping and the inpainting
// paste fused into one kernel) and re-noising, with noise drawn on the device from the same Philox
// streams as the CPU sampler (diffusion/noise.hpp), so both backends start from and add the same noise.
// The first call of a configuration runs eagerly and records the whole sequence in a CUDA graph; later
// calls of the same batch shape replay it (one launch per sampling run) while no device buffer has moved.
#include <cstdint>
#include <optional>

#include "coordiff/backend/cuda/elementwise.cuh"
#include "coordiff/backend/cuda/memory.cuh"
#include "coordiff/core/philox.hpp"
#include "coordiff/diffusion/noise.hpp"
#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/guidance/none.hpp"
#include "coordiff/nn/cuda/multi_agent_unet.cuh"

namespace coordiff::diffusion::cuda {

namespace bc = coordiff::backend::cuda;

/// The per-call part of a SampleNoise, kept in device memory so that a recorded graph serves every batch.
struct DeviceNoiseKey {
  std::uint64_t seed = 0, first_sample = 0, round = 0;
};

/// SampleNoise::fill's value for flat element i of a batch with `per` values per sample.
__device__ inline double sample_normal(const DeviceNoiseKey& key, NoisePurpose purpose, std::uint64_t event,
                                       std::int64_t per, std::int64_t i) {
  const auto b = static_cast<std::uint64_t>(i / per), j = static_cast<std::uint64_t>(i % per);
  const std::uint64_t stream = sample_noise_stream(key.first_sample + b, key.round, static_cast<std::uint64_t>(purpose));
  const std::uint64_t index = event * sample_noise_padded(static_cast<std::uint64_t>(per)) + j;
  std::uint32_t bits[4];
  philox_stream_block(key.seed, stream, index / 4, bits);
  double z[4];
  box_muller(bits[0], bits[1], z[0], z[1]);
  box_muller(bits[2], bits[3], z[2], z[3]);
  return z[index % 4];
}

/// Inpainting paste after a step: known entries are set to the data noised to abar `alpha_bar` (the
/// data itself when alpha_bar >= 1).
template <class T>
struct PasteArgs {
  const T* values = nullptr;
  const std::uint8_t* known = nullptr;  ///< null: no inpainting
  double alpha_bar = 1.0;
  std::uint64_t event = 0;
};

/// One reverse step's scalars (Sampler's StepCoefficients and options).
struct StepArgs {
  StepCoefficients co{};
  bool ddpm = true, eps_param = true, clip = true;
  double clip_range = 1.0, guidance_weight = 1.0;
  std::uint64_t event = 0;
};

namespace kernels {
template <class T>
__device__ inline T pasted(T current, std::int64_t i, std::int64_t per, const PasteArgs<T>& p, const DeviceNoiseKey& key) {
  if (!p.known || !p.known[i]) return current;
  if (p.alpha_bar >= 1.0) return p.values[i];
  const T z = static_cast<T>(sample_normal(key, NoisePurpose::Paste, p.event, per, i));
  return static_cast<T>(sqrt(p.alpha_bar) * p.values[i] + sqrt(1.0 - p.alpha_bar) * z);
}

template <class T>
__global__ void initial_noise(T* x, std::int64_t n, std::int64_t per, double scale, const DeviceNoiseKey* key,
                              PasteArgs<T> paste) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T v = static_cast<T>(sample_normal(*key, NoisePurpose::Initial, 0, per, i));
  if (scale != 1.0) v = static_cast<T>(v * scale);
  x[i] = pasted(v, i, per, paste, *key);
}

template <class T>
__global__ void renoise(T* x, std::int64_t n, std::int64_t per, double a, double s, std::uint64_t event,
                        const DeviceNoiseKey* key) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const T z = static_cast<T>(sample_normal(*key, NoisePurpose::Renoise, event, per, i));
  x[i] = static_cast<T>(a * x[i] + s * z);
}

// out: the model output (the conditional branch under guidance), uncond: the null branch or null.
template <class T>
__global__ void reverse_step(T* x, const T* out, const T* uncond, std::int64_t n, std::int64_t per, StepArgs a,
                             PasteArgs<T> paste, const DeviceNoiseKey* key) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T o = out[i];
  if (uncond) o = static_cast<T>(uncond[i] + a.guidance_weight * (static_cast<double>(o) - uncond[i]));
  const double xi = x[i];
  const double eps = a.eps_param ? static_cast<double>(o) : (xi - a.co.sa * o) / a.co.ss;
  double x0 = a.eps_param ? (xi - a.co.ss * o) / a.co.sa : static_cast<double>(o);
  if (a.clip) x0 = fmin(fmax(x0, -a.clip_range), a.clip_range);
  double next = a.ddpm ? a.co.c0 * x0 + a.co.ct * xi : a.co.sqrt_ab_prev * x0 + a.co.ddim_dir * eps;
  if (a.co.sigma > 0.0) next += a.co.sigma * static_cast<T>(sample_normal(*key, NoisePurpose::Step, a.event, per, i));
  x[i] = pasted(static_cast<T>(next), i, per, paste, *key);
}

template <class T>
__global__ void fill(T* y, std::int64_t n, T value) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = value;
}
}  // namespace kernels

template <class S, class T>
class DeviceSampler {
 public:
  using Net = nn::cuda::DeviceMultiAgentUNet<T>;

  /// `record_graphs`: replay repeated configurations from a CUDA graph (off: every call runs eagerly).
  DeviceSampler(S schedule, TimestepPlan plan, SamplerOptions options = {}, bool record_graphs = true)
      : host_(std::move(schedule), std::move(plan), options), record_graphs_(record_graphs) {}
  ~DeviceSampler() { drop_graph(); }
  DeviceSampler(const DeviceSampler&) = delete;
  DeviceSampler& operator=(const DeviceSampler&) = delete;

  /// The same schedule, plan and options on the CPU (for alpha_bar, invert, or a reference run).
  const Sampler<S>& host_sampler() const { return host_; }
  std::size_t graph_replays() const { return replays_; }
  std::size_t graph_recordings() const { return recordings_; }

  /// As Sampler::sample, for guidance::None or guidance::ClassifierFree; known_values [B, H, A, F].
  template <class G>
  Tensor<T> sample(Net& net, const G& guide, const Tensor<T>& known_values, const Tensor<std::uint8_t>* known,
                   const Condition<T>& cond, const SampleNoise& noise) {
    constexpr bool cfg = std::is_same_v<G, guidance::ClassifierFree>;
    static_assert(cfg || std::is_same_v<G, guidance::None>,
                  "DeviceSampler: the device loop supports guidance::None and guidance::ClassifierFree; run other "
                  "guidance with diffusion::Sampler and the device network as its Denoiser");
    const auto& ncfg = net.config();
    require<ShapeError>(known_values.rank() == 4 && known_values.dim(1) == ncfg.horizon &&
                            known_values.dim(3) == ncfg.transition_dim && known_values.dim(0) > 0,
                        "DeviceSampler: expected [B, ", ncfg.horizon, ", A, ", ncfg.transition_dim, "], got ",
                        to_string(known_values.shape()));
    if (known) require_shape(known->shape(), known_values.shape(), "DeviceSampler known mask");
    const index_t B = known_values.dim(0), A = known_values.dim(2), n = known_values.size(), per = n / B;
    const bool returns = ncfg.returns_condition;
    require<ConfigError>(!cfg || (returns && cond.has_value()),
                         "DeviceSampler: classifier-free guidance needs a network with returns_condition and a condition value");
    require<ConfigError>(returns || !cond.has_value(), "DeviceSampler: a condition value was given but the network "
                         "was built without returns_condition");
    const index_t C = ncfg.condition_dim;
    if (returns) cond.validate(B, A, "DeviceSampler", C);
    const bool keep = returns && !cfg && !cond.keep.empty();
    double weight = 1.0;
    if constexpr (cfg) weight = guide.weight;

    cudaStream_t s = net.stream();
    const DeviceNoiseKey key{noise.seed(), noise.first_sample(), noise.round()};
    key_.upload(&key, 1, s);
    if (known) {
      known_values_.upload(known_values.data(), static_cast<std::size_t>(n), s);
      known_.upload(known->data(), static_cast<std::size_t>(n), s);
    }
    const index_t rows = cfg ? 2 * B : B;  // the network's batch: both guidance branches in one pass
    if (returns) {
      std::vector<T> r(static_cast<std::size_t>(rows * A * C)), k(static_cast<std::size_t>(rows * A), T(1));
      for (index_t i = 0; i < rows * A * C; ++i) r[static_cast<std::size_t>(i)] = cond.value[i % (B * A * C)];
      if (cfg)
        for (index_t i = B * A; i < rows * A; ++i) k[static_cast<std::size_t>(i)] = T(0);
      if (keep)
        for (index_t i = 0; i < B * A; ++i) k[static_cast<std::size_t>(i)] = cond.keep[i];
      returns_.upload(r, s);
      keep_.upload(k, s);
    }
    x_.ensure(static_cast<std::size_t>(n));
    if (cfg) net_in_.ensure(static_cast<std::size_t>(rows * per));
    net_out_.ensure(static_cast<std::size_t>(rows * per));
    time_.ensure(static_cast<std::size_t>(rows));

    const Key k{&net, net.parameters_version(), B, A, cfg, weight, known != nullptr, returns && (cfg || keep)};
    // Replay only while no device buffer has moved since the recording (any allocation may have).
    if (graph_ && k == graph_key_ && bc::DevicePool::instance().grants() == grants_at_recording_) {
      bc::check(cudaGraphLaunch(graph_, s), "cudaGraphLaunch");
      ++replays_;
    } else {
      enqueue(net, k, n, per);  // eagerly: also makes every buffer the sequence needs
      if (record_graphs_) record(net, k, n, per);
    }
    Tensor<T> x(known_values.shape());
    x_.download(x.data(), static_cast<std::size_t>(n), s);
    require_finite(x, "DeviceSampler: sample");
    return x;
  }

 private:
  struct Key {
    const void* net = nullptr;
    std::size_t net_version = 0;
    index_t batch = 0, agents = 0;
    bool cfg = false;
    double weight = 1.0;
    bool inpaint = false, keep = false;
    bool operator==(const Key&) const = default;
  };

  void enqueue(Net& net, const Key& k, index_t n, index_t per) {
    cudaStream_t s = net.stream();
    const SamplerOptions& opt = host_.options();
    const auto& events = host_.plan().events();
    const unsigned blocks = bc::blocks_for(n, bc::kThreads);
    const index_t rows = k.cfg ? 2 * k.batch : k.batch;
    const auto paste_at = [&](double ab, std::uint64_t event) {
      return PasteArgs<T>{known_values_.data(), k.inpaint ? known_.data() : nullptr, ab, event};
    };
    kernels::initial_noise<<<blocks, bc::kThreads, 0, s>>>(x_.data(), n, per, opt.initial_noise_scale, key_.data(),
                                                            paste_at(host_.alpha_bar(host_.plan().first_level()), events.size()));
    bc::check(cudaGetLastError(), "initial_noise launch");
    for (std::size_t e = 0; e < events.size(); ++e) {
      const StepEvent ev = events[e];
      const double ab_from = host_.alpha_bar(ev.from), ab_to = host_.alpha_bar(ev.to);
      if (!ev.denoise()) {
        const double ratio = ab_to / ab_from;
        kernels::renoise<<<blocks, bc::kThreads, 0, s>>>(x_.data(), n, per, std::sqrt(ratio), std::sqrt(1.0 - ratio), e,
                                                          key_.data());
        bc::check(cudaGetLastError(), "renoise launch");
        continue;
      }
      kernels::fill<<<bc::blocks_for(rows, bc::kThreads), bc::kThreads, 0, s>>>(time_.data(), rows, static_cast<T>(ev.from));
      bc::check(cudaGetLastError(), "fill launch");
      // Guidance runs both branches on [x; x]; without it the network reads x itself (it does not write
      // its input).
      const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
      if (k.cfg) {
        bc::check(cudaMemcpyAsync(net_in_.data(), x_.data(), bytes, cudaMemcpyDeviceToDevice, s), "cudaMemcpyAsync D2D");
        bc::check(cudaMemcpyAsync(net_in_.data() + n, x_.data(), bytes, cudaMemcpyDeviceToDevice, s), "cudaMemcpyAsync D2D");
      }
      const bool returns = net.config().returns_condition;
      net.forward_device(k.cfg ? net_in_.data() : x_.data(), time_.data(), returns ? returns_.data() : nullptr, k.keep ? keep_.data() : nullptr,
                         rows, k.agents, net_out_.data());
      StepArgs a;
      a.co = step_coefficients(opt, ab_from, ab_to);
      a.ddpm = opt.solver == Solver::Ddpm;
      a.eps_param = opt.prediction == denoiser::Prediction::Epsilon;
      a.clip = opt.clip_sample;
      a.clip_range = opt.clip_range;
      a.guidance_weight = k.weight;
      a.event = e;
      const double paste_ab = ev.to < 0 ? 1.0 : (opt.paste == PasteRule::RePaint ? ab_to : ab_from);
      kernels::reverse_step<<<blocks, bc::kThreads, 0, s>>>(x_.data(), net_out_.data(), k.cfg ? net_out_.data() + n : nullptr,
                                                             n, per, a, paste_at(paste_ab, e), key_.data());
      bc::check(cudaGetLastError(), "reverse_step launch");
    }
  }

  void record(Net& net, const Key& k, index_t n, index_t per) {
    drop_graph();
    cudaStream_t s = net.stream();
    cudaGraph_t graph = nullptr;
    bc::check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      enqueue(net, k, n, per);
    } catch (...) {
      cudaStreamEndCapture(s, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    bc::check(cudaStreamEndCapture(s, &graph), "cudaStreamEndCapture");
    const cudaError_t st = cudaGraphInstantiate(&graph_, graph, 0);
    cudaGraphDestroy(graph);
    bc::check(st, "cudaGraphInstantiate");
    graph_key_ = k;
    grants_at_recording_ = bc::DevicePool::instance().grants();
    ++recordings_;
  }

  void drop_graph() {
    if (graph_) cudaGraphExecDestroy(graph_);
    graph_ = nullptr;
  }

  Sampler<S> host_;
  bool record_graphs_ = true;
  cudaGraphExec_t graph_ = nullptr;
  Key graph_key_{};
  std::size_t replays_ = 0, recordings_ = 0, grants_at_recording_ = 0;
  bc::DeviceArray<T> x_, known_values_, returns_, keep_, time_, net_in_, net_out_;
  bc::DeviceArray<std::uint8_t> known_;
  bc::DeviceArray<DeviceNoiseKey> key_;
};

}  // namespace coordiff::diffusion::cuda
