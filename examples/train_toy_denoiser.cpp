// Trains a small TemporalUNet as an epsilon-prediction denoiser (DDPM objective, cosine schedule) on a
// toy set of 2-D trajectories (circular arcs of random radius, phase and speed), printing the loss as it
// falls. Writes a checkpoint, the loss curve (npz + SVG) and a stats file to --out.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/core/threading.hpp"
#include "coordiff/io/atomic_file.hpp"
#include "coordiff/io/npz.hpp"
#include "coordiff/nn/checkpoint.hpp"
#include "coordiff/nn/optim/optim.hpp"
#include "coordiff/nn/temporal_unet.hpp"
#include "coordiff/viz/svg_plot.hpp"

namespace cd = coordiff;

namespace {

struct Options {
  long steps = 400, batch = 64, log_every = 25, dataset = 2048, seed = 0, threads = 0;
  double lr = 2e-3;
  std::string out = "coordiff-demo-out";
};

long parse_long(const std::string& flag, const char* v) {
  char* end = nullptr;
  const long r = std::strtol(v, &end, 10);
  if (!v[0] || *end) throw cd::ConfigError("flag " + flag + ": expected an integer, got '" + v + "'");
  return r;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "--help" || f == "-h") {
      std::puts("train_toy_denoiser [--steps N] [--batch B] [--lr X] [--log-every N] [--seed S] [--threads T] [--out DIR]");
      std::exit(0);
    }
    if (i + 1 >= argc) throw cd::ConfigError("flag " + f + " needs a value (see --help)");
    const char* v = argv[++i];
    if (f == "--steps") o.steps = parse_long(f, v);
    else if (f == "--batch") o.batch = parse_long(f, v);
    else if (f == "--log-every") o.log_every = parse_long(f, v);
    else if (f == "--seed") o.seed = parse_long(f, v);
    else if (f == "--threads") o.threads = parse_long(f, v);
    else if (f == "--out") o.out = v;
    else if (f == "--lr") {
      char* end = nullptr;
      o.lr = std::strtod(v, &end);
      if (!v[0] || *end || !(o.lr > 0)) throw cd::ConfigError("flag --lr: expected a positive number, got '" + std::string(v) + "'");
    } else {
      throw cd::ConfigError("unknown flag '" + f + "' (see --help)");
    }
  }
  if (o.steps < 1 || o.batch < 1 || o.log_every < 1) throw cd::ConfigError("--steps, --batch and --log-every must be >= 1");
  return o;
}

constexpr cd::index_t kHorizon = 16, kFeatures = 2;
constexpr int kDiffusionSteps = 100;

// Toy trajectories: x_t = r (cos(phi + w t), sin(phi + w t)), all inside [-1, 1]^2.
cd::Tensor<float> make_dataset(cd::index_t n, std::uint64_t seed) {
  cd::Rng rng(seed, /*stream=*/1);
  cd::Tensor<float> d({n, kHorizon, kFeatures});
  for (cd::index_t e = 0; e < n; ++e) {
    const double r = 0.3 + 0.6 * rng.uniform(), phi = 2 * std::numbers::pi * rng.uniform();
    const double w = (rng.uniform() < 0.5 ? -1 : 1) * (0.05 + 0.15 * rng.uniform());
    for (cd::index_t t = 0; t < kHorizon; ++t) {
      d(e, t, 0) = static_cast<float>(r * std::cos(phi + w * static_cast<double>(t)));
      d(e, t, 1) = static_cast<float>(r * std::sin(phi + w * static_cast<double>(t)));
    }
  }
  return d;
}

// Cosine schedule (Nichol & Dhariwal 2021, as squaredcos_cap_v2): alpha_bar_k = prod_{i<=k} (1 - beta_i).
std::vector<double> cosine_alpha_bar(int K) {
  auto f = [](double s) { return std::pow(std::cos((s + 0.008) / 1.008 * std::numbers::pi / 2), 2); };
  std::vector<double> ab(static_cast<std::size_t>(K));
  double prod = 1;
  for (int i = 0; i < K; ++i) {
    prod *= 1 - std::min(1 - f((i + 1.0) / K) / f(static_cast<double>(i) / K), 0.999);
    ab[static_cast<std::size_t>(i)] = prod;
  }
  return ab;
}

int run(const Options& o) {
  if (o.threads > 0) cd::set_num_threads(static_cast<int>(o.threads));
  const auto data = make_dataset(o.dataset, static_cast<std::uint64_t>(o.seed));
  const auto alpha_bar = cosine_alpha_bar(kDiffusionSteps);

  cd::nn::UNetConfig cfg;
  cfg.horizon = kHorizon;
  cfg.transition_dim = kFeatures;
  cfg.dim = 32;
  cfg.dim_mults = {1, 2, 4};
  cd::Rng init(static_cast<std::uint64_t>(o.seed), /*stream=*/2);
  cd::nn::TemporalUNet<float> net(cfg, init);
  auto params = cd::nn::parameters_of<float>(net);
  cd::nn::optim::AdamOptions adam_opt;
  adam_opt.lr = o.lr;
  cd::nn::optim::Adam<float> adam(params, adam_opt);
  std::printf("TemporalUNet: %lld parameters; %ld steps of batch %ld on %lld toy trajectories (H=%lld, 2-D)\n",
              static_cast<long long>(cd::nn::parameter_count(params)), o.steps, o.batch,
              static_cast<long long>(o.dataset), static_cast<long long>(kHorizon));

  cd::Rng rng(static_cast<std::uint64_t>(o.seed), /*stream=*/3);
  const cd::index_t B = o.batch, row = kHorizon * kFeatures;
  std::vector<double> curve_x, curve_y, all_losses;
  double window = 0;
  long in_window = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (long step = 1; step <= o.steps; ++step) {
    cd::Tensor<float> x0({B, kHorizon, kFeatures}), t({B});
    std::vector<double> ab(static_cast<std::size_t>(B));
    for (cd::index_t b = 0; b < B; ++b) {
      const auto e = static_cast<cd::index_t>(rng.below(static_cast<std::uint64_t>(o.dataset)));
      std::copy(data.data() + e * row, data.data() + (e + 1) * row, x0.data() + b * row);
      const auto k = static_cast<int>(rng.below(kDiffusionSteps));
      t[b] = static_cast<float>(k);
      ab[static_cast<std::size_t>(b)] = alpha_bar[static_cast<std::size_t>(k)];
    }
    auto noise = rng.normal<float>({B, kHorizon, kFeatures});
    cd::Tensor<float> xk(x0.shape());
    for (cd::index_t i = 0; i < xk.size(); ++i) {  // q(x_k | x_0), DDPM eq. 4
      const double a = ab[static_cast<std::size_t>(i / row)];
      xk[i] = static_cast<float>(std::sqrt(a) * x0[i] + std::sqrt(1 - a) * noise[i]);
    }
    auto pred = net.forward(xk, t);
    cd::Tensor<float> grad(pred.shape());
    double loss = 0;
    for (cd::index_t i = 0; i < pred.size(); ++i) {  // simple loss: mean squared error on epsilon
      const double d = pred[i] - noise[i];
      loss += d * d;
      grad[i] = static_cast<float>(2 * d / static_cast<double>(pred.size()));
    }
    loss /= static_cast<double>(pred.size());
    cd::nn::zero_grad(params);
    net.backward(grad);
    cd::nn::optim::clip_grad_norm(params, 1.0);
    adam.step();
    all_losses.push_back(loss);
    window += loss;
    ++in_window;
    if (step % o.log_every == 0 || step == o.steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %5ld  loss %.4f  (%.1f s)\n", step, window / static_cast<double>(in_window), secs);
      std::fflush(stdout);
      curve_x.push_back(static_cast<double>(step));
      curve_y.push_back(window / static_cast<double>(in_window));
      window = 0;
      in_window = 0;
    }
  }

  const std::filesystem::path out(o.out);
  std::filesystem::create_directories(out);
  cd::nn::CheckpointMeta meta;
  meta.architecture = "TemporalUNet(dim=32,mults=1-2-4,H=16,F=2)";
  meta.step = static_cast<std::uint64_t>(o.steps);
  cd::nn::save_checkpoint(out / "denoiser.ckpt", params, meta);
  cd::Tensor<double> losses({static_cast<cd::index_t>(all_losses.size())}, all_losses);
  cd::io::NpzWriter().add("loss", losses).add("train_data_sample", data.view().slice(0, 0, 16).contiguous())
      .save(out / "training.npz");
  cd::viz::PlotOptions plot;
  plot.title = "toy denoiser: training loss";
  plot.y_label = "MSE on epsilon";
  plot.log_y = true;
  const std::string svg = cd::viz::line_plot_svg({{"loss (window mean)", curve_x, curve_y}}, plot);
  cd::io::write_file_atomic(out / "loss.svg", svg.data(), svg.size());
  const double first = curve_y.front(), last = curve_y.back();
  const std::string stats = "{\"steps\": " + std::to_string(o.steps) + ", \"first_window_loss\": " + std::to_string(first) +
                            ", \"last_window_loss\": " + std::to_string(last) + "}\n";
  cd::io::write_file_atomic(out / "stats.json", stats.data(), stats.size());
  std::printf("loss fell from %.4f to %.4f\n", first, last);
  std::printf("outputs: %s/{denoiser.ckpt, training.npz, loss.svg, stats.json}\n",
              std::filesystem::absolute(out).string().c_str());
  if (!(last < first)) {
    std::fprintf(stderr, "error: the loss did not fall\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const cd::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
