// The training objective (gradient, targets, condition dropout, history masking) and the Trainer
// (learning on a toy multi-agent set, checkpoints, EMA, determinism, resume, input validation).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <sstream>
#include <vector>

#include "coordiff/diffusion/trainer.hpp"
#include "coordiff/diffusion/training_loss.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
#include "coordiff/schedule/cosine.hpp"
#include "support/gradcheck.hpp"
#include "support/scratch.hpp"
#include "support/tiny_unet.hpp"

using namespace coordiff;
using diffusion::LossOptions;
using diffusion::TrainingBatch;
using denoiser::Prediction;
namespace fs = std::filesystem;

namespace {


// An exact "denoiser" that knows the clean batch: it recovers eps from x_k (inverting DDPM eq. 4) or
// returns x0, and records the gradient the loss hands to backward().
template <class T>
struct Oracle {
  using value_type = T;
  const Tensor<T>* x0;
  const schedule::Cosine* sched;
  Prediction output = Prediction::Epsilon;
  Tensor<T> last_dy;

  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>*, const Tensor<T>*) {
    if (output == Prediction::Sample) return *x0;
    Tensor<T> eps(x.shape());
    const index_t per = x.size() / x.dim(0);
    for (index_t i = 0; i < x.size(); ++i) {
      const double a = sched->alpha_bar(static_cast<index_t>(k[i / per]));
      eps[i] = static_cast<T>((x[i] - std::sqrt(a) * (*x0)[i]) / std::sqrt(1 - a));
    }
    return eps;
  }
  Tensor<T> backward(const Tensor<T>& dy) {
    last_dy = dy;
    return dy;
  }
};
static_assert(diffusion::TrainableDenoiser<Oracle<double>>);
static_assert(diffusion::TrainableDenoiser<nn::MultiAgentUNet<float>>);

template <class T>
TrainingBatch<T> random_batch(Rng& rng, index_t B, index_t H, index_t A, index_t F, bool cond) {
  TrainingBatch<T> b;
  b.x0 = rng.uniform<T>({B, H, A, F}, T(-1), T(1));
  if (cond) b.condition.value = rng.uniform<T>({B, A}, T(0), T(1));
  return b;
}

// Toy coordinated trajectories: agent a moves on a circle of radius r at phase phi + a*pi/2 (the two
// agents stay a quarter turn apart); the condition is a per-agent affine function of r.
diffusion::TrajectoryDataset<float> toy_dataset(index_t n, index_t H, std::uint64_t seed) {
  Rng rng(seed, 7);
  diffusion::TrajectoryDataset<float> d;
  d.x = Tensor<float>({n, H, 2, 2});
  d.condition = Tensor<float>({n, 2});
  for (index_t e = 0; e < n; ++e) {
    const double r = 0.3 + 0.6 * rng.uniform(), phi = 2 * std::numbers::pi * rng.uniform();
    const double w = (rng.uniform() < 0.5 ? -1 : 1) * (0.1 + 0.2 * rng.uniform());
    for (index_t a = 0; a < 2; ++a) {
      d.condition(e, a) = static_cast<float>(r - 0.5 + 0.2 * static_cast<double>(a));
      for (index_t t = 0; t < H; ++t) {
        const double th = phi + w * static_cast<double>(t) + std::numbers::pi / 2 * static_cast<double>(a);
        d.x(e, t, a, 0) = static_cast<float>(r * std::cos(th));
        d.x(e, t, a, 1) = static_cast<float>(r * std::sin(th));
      }
    }
  }
  return d;
}

bool same_weights(const nn::ParameterList<float>& a, const nn::ParameterList<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (a[k].param->value.storage() != b[k].param->value.storage()) return false;
  return true;
}

double mean_of(const std::vector<double>& v, std::size_t begin, std::size_t end) {
  double s = 0;
  for (std::size_t i = begin; i < end; ++i) s += v[i];
  return s / static_cast<double>(end - begin);
}

}  // namespace

TEST_CASE("training loss: weighted MSE gradient equals a finite difference of the loss w.r.t. the prediction") {
  Rng rng(1);
  auto pred = rng.normal<double>({2, 3, 2, 2});
  const auto target = rng.normal<double>(pred.shape());
  auto weight = rng.uniform<double>({2, 3, 2}, 0.0, 2.0);
  weight(0, 1, 1) = 0;  // a masked entry
  Tensor<double> grad;
  const double scale = 0.5;  // as for two accumulated minibatches
  diffusion::weighted_mse(pred, target, weight, &grad, scale);
  const double h = 1e-6;
  double worst = 0;
  for (index_t i = 0; i < pred.size(); ++i) {
    const double orig = pred[i];
    pred[i] = orig + h;
    const double lp = diffusion::weighted_mse(pred, target, weight);
    pred[i] = orig - h;
    const double lm = diffusion::weighted_mse(pred, target, weight);
    pred[i] = orig;
    worst = std::max(worst, std::abs(scale * (lp - lm) / (2 * h) - grad[i]));
  }
  CHECK(worst < 1e-8);
  CHECK(grad(0, 1, 1, 0) == 0.0);
  CHECK(grad(0, 1, 1, 1) == 0.0);
  // Unit weights: the plain mean of DDPM eq. 14.
  const Tensor<double> ones({2, 3, 2}, 1.0);
  double plain = 0;
  for (index_t i = 0; i < pred.size(); ++i) plain += (pred[i] - target[i]) * (pred[i] - target[i]);
  CHECK(diffusion::weighted_mse(pred, target, ones) == doctest::Approx(plain / static_cast<double>(pred.size())).epsilon(1e-14));
  CHECK_THROWS_AS(diffusion::weighted_mse(pred, target, Tensor<double>({2, 3, 2}, 0.0)), ConfigError);
}

TEST_CASE("training loss: parameter gradients of a MultiAgentUNet<double> match finite differences of the full loss") {
  Rng rng(2);
  const schedule::Cosine sched(20);
  nn::MultiAgentUNet<double> net(testing::tiny_unet_config(4, 2, true), 2, rng);
  auto params = nn::parameters_of<double>(net);
  for (auto& p : params)  // open the attention gates so the attention weights get gradients
    if (p.name.find("gamma") != std::string::npos) p.param->value.fill(0.6);
  auto batch = random_batch<double>(rng, 3, 4, 2, 2, true);
  batch.weight = rng.uniform<double>({3, 4, 2}, 0.5, 1.5);
  LossOptions opt;
  opt.condition_dropout = 0.5;
  opt.history_steps = 1;
  Rng draws(3);
  const auto nb = diffusion::make_noised_batch(sched, batch, opt, draws);  // k, eps, keep fixed from here on
  nn::zero_grad(params);
  diffusion::loss_and_backward(net, nb);
  std::vector<testing::GradTarget> targets;
  for (auto& p : params) targets.push_back({p.name, &p.param->value, &p.param->grad});
  const double worst = testing::check_gradients(
      [&] {
        nn::NoGradGuard g;
        const auto pred = net.forward(nb.x_k, nb.time, &nb.returns, &nb.keep);
        return diffusion::weighted_mse(pred, nb.target, nb.weight);
      },
      targets, 1e-5, 1e-5, /*max_elements=*/4);
  CHECK(worst < 1e-5);
}

TEST_CASE("training loss: an exact denoiser has zero loss for the eps target and for the x0 target") {
  Rng rng(4);
  const schedule::Cosine sched(50);
  const auto batch = random_batch<double>(rng, 8, 6, 3, 2, false);
  for (Prediction target : {Prediction::Epsilon, Prediction::Sample}) {
    const bool eps_target = target == Prediction::Epsilon;
    CAPTURE(eps_target);
    Oracle<double> exact{&batch.x0, &sched, target, {}};
    LossOptions opt;
    opt.prediction = target;
    Rng draws(5);
    CHECK(diffusion::training_loss(exact, sched, batch, opt, draws) < 1e-20);
    // The wrong kind of output: the loss is the MSE between eps and x0 of the same draws.
    Oracle<double> wrong{&batch.x0, &sched, target == Prediction::Epsilon ? Prediction::Sample : Prediction::Epsilon, {}};
    Rng again(5);
    const auto nb = diffusion::make_noised_batch(sched, batch, opt, again);
    Rng again2(5);
    const double l = diffusion::training_loss(wrong, sched, batch, opt, again2);
    CHECK(l == doctest::Approx(diffusion::weighted_mse(nb.eps, batch.x0, nb.weight)).epsilon(1e-9));
    CHECK(l > 0.5);
  }
}

TEST_CASE("training loss: draws of k, eps and condition dropout per (sample, agent)") {
  const schedule::Cosine sched(10);
  Rng rng(6);
  const auto batch = random_batch<float>(rng, 64, 2, 4, 1, true);
  LossOptions opt;  // condition_dropout 0.25
  Rng draws(7);
  index_t dropped = 0, flags = 0, mixed_samples = 0;
  std::vector<index_t> k_count(10, 0);
  double eps_sum = 0, eps_sq = 0;
  index_t eps_n = 0;
  for (int rep = 0; rep < 50; ++rep) {
    const auto nb = diffusion::make_noised_batch(sched, batch, opt, draws);
    REQUIRE(nb.keep.shape() == Shape{64, 4});
    for (index_t b = 0; b < 64; ++b) {
      index_t kept = 0;
      for (index_t a = 0; a < 4; ++a) {
        const float f = nb.keep(b, a);
        REQUIRE((f == 0.0f || f == 1.0f));
        kept += f == 1.0f;
        dropped += f == 0.0f;
        ++flags;
      }
      mixed_samples += kept > 0 && kept < 4;
      ++k_count[static_cast<std::size_t>(nb.k[static_cast<std::size_t>(b)])];
    }
    for (index_t i = 0; i < nb.eps.size(); ++i) eps_sum += nb.eps[i], eps_sq += nb.eps[i] * nb.eps[i], ++eps_n;
  }
  // 12800 Bernoulli(0.25) flags: standard deviation of the fraction 0.0038.
  const double frac = static_cast<double>(dropped) / static_cast<double>(flags);
  CHECK(frac == doctest::Approx(0.25).epsilon(0.06));
  CHECK(mixed_samples > 1000);  // flags are per agent, not per sample
  for (index_t c : k_count) CHECK(c == doctest::Approx(320).epsilon(0.25));  // k uniform on 0..9
  CHECK(std::abs(eps_sum / static_cast<double>(eps_n)) < 0.03);
  CHECK(eps_sq / static_cast<double>(eps_n) == doctest::Approx(1.0).epsilon(0.05));

  SUBCASE("dropout 0 and 1, user keep flags, no condition, determinism") {
    LossOptions o0, o1;
    o0.condition_dropout = 0;
    o1.condition_dropout = 1;
    Rng r0(8), r1(8);
    const auto n0 = diffusion::make_noised_batch(sched, batch, o0, r0);
    const auto n1 = diffusion::make_noised_batch(sched, batch, o1, r1);
    CHECK(*std::min_element(n0.keep.begin(), n0.keep.end()) == 1.0f);
    CHECK(*std::max_element(n1.keep.begin(), n1.keep.end()) == 0.0f);
    auto forced = batch;
    forced.condition.keep = Tensor<float>({64, 4}, 1.0f);
    forced.condition.keep(3, 2) = 0;
    Rng r2(8);
    CHECK(diffusion::make_noised_batch(sched, forced, o0, r2).keep(3, 2) == 0.0f);
    auto uncond = batch;
    uncond.condition = {};
    Rng r3(8);
    const auto nu = diffusion::make_noised_batch(sched, uncond, opt, r3);
    CHECK(nu.keep.empty());
    CHECK(nu.returns.empty());
    Rng a(9), b(9);
    const auto na = diffusion::make_noised_batch(sched, batch, opt, a), nb = diffusion::make_noised_batch(sched, batch, opt, b);
    CHECK(na.k == nb.k);
    CHECK(na.eps.storage() == nb.eps.storage());
    CHECK(na.keep.storage() == nb.keep.storage());
  }
}

TEST_CASE("training loss: history steps are pasted clean into x_k and carry no loss weight or gradient") {
  const schedule::Cosine sched(30);
  Rng rng(10);
  const auto batch = random_batch<double>(rng, 5, 6, 3, 2, false);
  LossOptions opt;
  opt.history_steps = 2;
  Rng draws(11);
  const auto nb = diffusion::make_noised_batch(sched, batch, opt, draws);
  for (index_t b = 0; b < 5; ++b)
    for (index_t t = 0; t < 6; ++t)
      for (index_t a = 0; a < 3; ++a) {
        CHECK(nb.weight(b, t, a) == (t < 2 ? 0.0 : 1.0));
        for (index_t f = 0; f < 2; ++f)
          if (t < 2) CHECK(nb.x_k(b, t, a, f) == batch.x0(b, t, a, f));
          else CHECK(nb.x_k(b, t, a, f) != batch.x0(b, t, a, f));
      }
  // The oracle inverts eq. 4, which the pasted entries do not follow: its output there is wrong, yet the
  // loss is zero because those entries are masked, and the gradient handed to backward() is zero there.
  Oracle<double> exact{&batch.x0, &sched, Prediction::Epsilon, {}};
  Rng again(11);
  CHECK(diffusion::training_loss(exact, sched, batch, opt, again) < 1e-20);
  auto biased = exact;
  struct Shifted {
    using value_type = double;
    Oracle<double> inner;
    Tensor<double> forward(const Tensor<double>& x, const Tensor<double>& k, const Tensor<double>* r, const Tensor<double>* c) {
      auto y = inner.forward(x, k, r, c);
      for (double& v : y) v += 0.1;
      return y;
    }
    Tensor<double> backward(const Tensor<double>& dy) { return inner.backward(dy); }
  } shifted{biased};
  Rng again2(11);
  const double l = diffusion::training_loss(shifted, sched, batch, opt, again2);
  CHECK(l == doctest::Approx(0.01).epsilon(1e-6));  // every unmasked entry is off by exactly 0.1
  const auto& dy = shifted.inner.last_dy;
  REQUIRE(dy.shape() == batch.x0.shape());
  for (index_t b = 0; b < 5; ++b)
    for (index_t t = 0; t < 6; ++t)
      for (index_t a = 0; a < 3; ++a)
        for (index_t f = 0; f < 2; ++f)  // d/dpred of mean over 4*3*2*5 = 120 entries of (0.1)^2
          CHECK(dy(b, t, a, f) == doctest::Approx(t < 2 ? 0.0 : 2 * 0.1 / 120).epsilon(1e-9));
  LossOptions all;
  all.history_steps = 6;
  Rng r(1);
  CHECK_THROWS_AS(diffusion::make_noised_batch(sched, batch, all, r), ConfigError);
}

TEST_CASE("Trainer: a MultiAgentUNet<float> learns a toy two-agent set - checkpoint and EMA") {
  const index_t H = 8;
  const schedule::Cosine sched(50);
  const auto data = toy_dataset(64, H, 1);
  const auto dir = testing::scratch_dir("trainer");
  Rng init(12);
  nn::MultiAgentUNet<float> net(testing::tiny_unet_config(H, 2, true), 2, init);
  diffusion::TrainerOptions opt;
  opt.batch_size = 16;
  opt.steps = 200;
  opt.lr = 2e-3;  // MADiff's 2e-4 is for a million steps; 200 steps need a larger rate
  opt.warmup_steps = 10;
  opt.grad_clip = 1.0;
  opt.ema_start = 100;
  opt.ema_every = 10;
  opt.checkpoint_every = 100;
  opt.checkpoint_path = (dir / "model.ckpt").string();
  opt.log_every = 50;
  opt.seed = 3;
  opt.architecture = "MultiAgentUNet(dim=16,mults=1-2,H=8,F=2,A=2,returns)";
  diffusion::Trainer trainer(net, sched, data, opt);
  std::ostringstream log;
  const auto h = trainer.train(&log);
  REQUIRE(h.step_loss.size() == 200);
  CHECK(trainer.current_step() == 200);
  CHECK(h.logged_steps == std::vector<index_t>{50, 100, 150, 200});
  CHECK(log.str().find("step 200/200") != std::string::npos);
  CHECK(log.str().find("steps/s") != std::string::npos);
  // Measured (seed 3, any thread count): mean loss of the first 40 steps 0.676, of the last 40 steps 0.168
  // (about 2 s for the 200 steps on 2 cores).
  const double first = mean_of(h.step_loss, 0, 40), last = mean_of(h.step_loss, 160, 200);
  MESSAGE("loss first 20%: ", first, ", last 20%: ", last, ", ", h.seconds, " s");
  CHECK(last < 0.5 * first);

  // The checkpoint holds the final raw weights, the EMA weights and the step.
  const fs::path ckpt = opt.checkpoint_path;
  REQUIRE(fs::exists(ckpt));
  Rng other(99);
  const auto cfg = testing::tiny_unet_config(H, 2, true);
  nn::MultiAgentUNet<float> raw(cfg, 2, other), averaged(cfg, 2, other), ema_copy(cfg, 2, other);
  const auto meta = diffusion::load_trained_weights(ckpt, nn::parameters_of<float>(raw), /*use_ema=*/false);
  CHECK(meta.step == 200);
  CHECK(meta.architecture == opt.architecture);
  CHECK(meta.metadata.at("adam_step") == "200");
  CHECK(same_weights(nn::parameters_of<float>(raw), nn::parameters_of<float>(net)));
  diffusion::load_trained_weights(ckpt, nn::parameters_of<float>(averaged));
  trainer.copy_ema_to(ema_copy);
  CHECK(same_weights(nn::parameters_of<float>(averaged), nn::parameters_of<float>(ema_copy)));
  CHECK_FALSE(same_weights(nn::parameters_of<float>(averaged), nn::parameters_of<float>(net)));  // EMA after step 100
  // A different architecture is refused by name/shape.
  auto wider = testing::tiny_unet_config(H, 2, true);
  wider.dim = 32;
  nn::MultiAgentUNet<float> mismatch(wider, 2, other);
  CHECK_THROWS_AS(diffusion::load_trained_weights(ckpt, nn::parameters_of<float>(mismatch)), Error);
  // A damaged file fails its checksum.
  {
    std::fstream f(ckpt, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(200);
    const int byte = f.get();
    f.seekp(200);
    f.put(static_cast<char>(byte ^ 0x5a));
  }
  CHECK_THROWS_AS(diffusion::load_trained_weights(ckpt, nn::parameters_of<float>(raw)), FormatError);
  fs::remove_all(dir);
}

TEST_CASE("Trainer: the same seed gives a bitwise identical history and a resumed run continues exactly") {
  const index_t H = 4;
  const schedule::Cosine sched(20);
  const auto data = toy_dataset(10, H, 2);  // 10 windows in batches of 4: partial batches, several epochs
  const auto cfg = testing::tiny_unet_config(H, 2, true);
  const auto dir = testing::scratch_dir("trainer_resume");
  diffusion::TrainerOptions opt;
  opt.batch_size = 4;
  opt.steps = 12;
  opt.lr = 1e-3;
  opt.warmup_steps = 4;
  opt.grad_clip = 0.5;
  opt.grad_accumulate = 2;
  opt.ema_start = 4;
  opt.ema_every = 2;
  opt.log_every = 0;
  opt.seed = 5;
  opt.loss.history_steps = 1;
  auto make_net = [&](std::uint64_t s) {
    Rng r(s);
    return nn::MultiAgentUNet<float>(cfg, 2, r);
  };
  auto net_a = make_net(1), net_b = make_net(1);
  diffusion::Trainer ta(net_a, sched, data, opt), tb(net_b, sched, data, opt);
  const auto ha = ta.train(), hb = tb.train();
  REQUIRE(ha.step_loss.size() == 12);
  CHECK(ha.step_loss == hb.step_loss);
  CHECK(ha.logged_steps == std::vector<index_t>{12});
  CHECK(same_weights(nn::parameters_of<float>(net_a), nn::parameters_of<float>(net_b)));

  auto other_seed = opt;
  other_seed.seed = 6;
  auto net_c = make_net(1);
  diffusion::Trainer tc(net_c, sched, data, other_seed);
  CHECK(tc.train().step_loss != ha.step_loss);

  // Stop after 6 steps, checkpoint, resume into a differently initialised model, finish.
  auto net_d = make_net(1), net_e = make_net(2);
  diffusion::Trainer td(net_d, sched, data, opt), te(net_e, sched, data, opt);
  for (int i = 0; i < 6; ++i) td.step();
  td.save_checkpoint(dir / "half.ckpt");
  const auto meta = te.resume(dir / "half.ckpt");
  CHECK(meta.step == 6);
  CHECK(te.current_step() == 6);
  const auto he = te.train();
  CHECK(he.first_step == 7);
  CHECK(he.step_loss == std::vector<double>(ha.step_loss.begin() + 6, ha.step_loss.end()));
  CHECK(same_weights(nn::parameters_of<float>(net_e), nn::parameters_of<float>(net_a)));
  auto ema_a = make_net(3), ema_e = make_net(4);
  ta.copy_ema_to(ema_a);
  te.copy_ema_to(ema_e);
  CHECK(same_weights(nn::parameters_of<float>(ema_a), nn::parameters_of<float>(ema_e)));
  // A checkpoint for another schedule length is refused.
  auto net_f = make_net(1);
  diffusion::Trainer tf(net_f, schedule::Cosine(30), data, opt);
  CHECK_THROWS_AS(tf.resume(dir / "half.ckpt"), ConfigError);
  fs::remove_all(dir);
}

TEST_CASE("Trainer: a resumed run keeps the loss curve and refuses a checkpoint of other data or batches") {
  const index_t H = 4;
  const schedule::Cosine sched(20);
  const auto data = toy_dataset(10, H, 2);
  const auto cfg = testing::tiny_unet_config(H, 2, true);
  const auto dir = testing::scratch_dir("trainer_resume_curve");
  diffusion::TrainerOptions opt;
  opt.batch_size = 4;
  opt.steps = 10;
  opt.lr = 1e-3;
  opt.ema_start = 2;
  opt.log_every = 3;
  opt.seed = 3;
  opt.checkpoint_path = (dir / "run.ckpt").string();
  opt.checkpoint_every = 4;
  auto make_net = [&](std::uint64_t s) {
    Rng r(s);
    return nn::MultiAgentUNet<float>(cfg, 2, r);
  };
  auto net_a = make_net(1);
  diffusion::Trainer ta(net_a, sched, data, opt);
  const auto ha = ta.train();
  CHECK(ha.logged_steps == std::vector<index_t>{3, 6, 9, 10});
  CHECK(ha.total_seconds == ha.seconds);

  // A run of 4 steps (its last checkpoint at step 4), extended to 10 steps by a resume.
  auto net_b = make_net(1);
  auto short_run = opt;
  short_run.steps = 4;
  diffusion::Trainer tb(net_b, sched, data, short_run);
  CHECK(tb.train().logged_steps == std::vector<index_t>{3, 4});
  auto net_c = make_net(2);
  diffusion::Trainer tc(net_c, sched, data, opt);
  CHECK(tc.resume(dir / "run.ckpt").step == 4);
  const auto hc = tc.train();
  CHECK(hc.first_step == 5);
  CHECK(hc.step_loss == std::vector<double>(ha.step_loss.begin() + 4, ha.step_loss.end()));
  CHECK(same_weights(nn::parameters_of<float>(net_c), nn::parameters_of<float>(net_a)));
  // The curve of the first run is kept, its last interval ending at step 4; the interval ending at step 6
  // counts steps 5-6.
  REQUIRE(hc.logged_steps == std::vector<index_t>{3, 4, 6, 9, 10});
  CHECK(hc.logged_loss[0] == ha.logged_loss[0]);
  CHECK(hc.logged_loss[1] == ha.step_loss[3]);
  CHECK(std::abs(hc.logged_loss[2] - (ha.step_loss[4] + ha.step_loss[5]) / 2) < 1e-12);
  CHECK(hc.logged_loss[3] == ha.logged_loss[2]);
  CHECK(hc.logged_loss[4] == ha.logged_loss[3]);
  CHECK(hc.total_seconds >= hc.seconds);

  // Another dataset (one window changed), or another minibatch layout: refused, the model untouched.
  auto other = data;
  other.x(3, 1, 0, 0) += 0.5f;
  auto net_d = make_net(7), untouched = make_net(7);
  diffusion::Trainer td(net_d, sched, other, opt);
  CHECK(td.data_fingerprint() != tc.data_fingerprint());
  CHECK_THROWS_AS(td.resume(dir / "run.ckpt"), ConfigError);
  auto other_batch = opt;
  other_batch.batch_size = 5;
  diffusion::Trainer te(net_d, sched, data, other_batch);
  CHECK_THROWS_AS(te.resume(dir / "run.ckpt"), ConfigError);
  CHECK(same_weights(nn::parameters_of<float>(net_d), nn::parameters_of<float>(untouched)));
  CHECK(te.current_step() == 0);
  fs::remove_all(dir);
}

TEST_CASE("Trainer: bad datasets, options and batches raise coordiff errors") {
  const schedule::Cosine sched(10);
  const auto cfg = testing::tiny_unet_config(4, 2, true);
  Rng r(1);
  nn::MultiAgentUNet<float> net(cfg, 2, r);
  diffusion::TrainerOptions opt;
  opt.steps = 1;
  opt.batch_size = 2;
  const auto good = toy_dataset(4, 4, 3);
  auto make = [&](const diffusion::TrajectoryDataset<float>& d, const diffusion::TrainerOptions& o) {
    diffusion::Trainer t(net, sched, d, o);
    CHECK(t.current_step() == 0);
  };
  CHECK_NOTHROW(make(good, opt));

  auto rank3 = good;
  rank3.x = Tensor<float>({4, 4, 4});
  CHECK_THROWS_AS(make(rank3, opt), ShapeError);
  CHECK_THROWS_AS(make(diffusion::TrajectoryDataset<float>{}, opt), ShapeError);
  auto nan = good;
  nan.x(2, 1, 0, 1) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(make(nan, opt), NumericError);
  auto bad_cond = good;
  bad_cond.condition = Tensor<float>({4, 3});
  CHECK_THROWS_AS(make(bad_cond, opt), ShapeError);
  auto inf_cond = good;
  inf_cond.condition(0, 0) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(make(inf_cond, opt), NumericError);

  auto o = opt;
  o.batch_size = 0;
  CHECK_THROWS_AS(make(good, o), ConfigError);
  o = opt;
  o.checkpoint_every = 10;
  CHECK_THROWS_AS(make(good, o), ConfigError);
  o = opt;
  o.loss.condition_dropout = 1.5;
  CHECK_THROWS_AS(make(good, o), ConfigError);
  o = opt;
  o.loss.history_steps = 4;
  CHECK_THROWS_AS(make(good, o), ConfigError);
  o = opt;
  o.lr = 0;
  CHECK_THROWS_AS(make(good, o), ConfigError);

  // A dataset whose horizon the network does not accept fails at the first step with a ShapeError.
  const auto long_h = toy_dataset(4, 8, 3);
  diffusion::Trainer t(net, sched, long_h, opt);
  CHECK_THROWS_AS(t.step(), ShapeError);
  // A condition-free dataset for a return-conditioned network.
  auto no_cond = good;
  no_cond.condition = {};
  diffusion::Trainer t2(net, sched, no_cond, opt);
  CHECK_THROWS_AS(t2.step(), ConfigError);
  // Not a checkpoint.
  const auto dir = testing::scratch_dir("trainer_bad");
  {
    std::ofstream f(dir / "junk.ckpt", std::ios::binary);
    f << "definitely not a checkpoint file";
  }
  diffusion::Trainer t3(net, sched, good, opt);
  CHECK_THROWS_AS(t3.resume(dir / "junk.ckpt"), FormatError);
  fs::remove_all(dir);

  // Batch-level checks of the loss.
  Rng rng(2);
  auto batch = random_batch<float>(rng, 2, 4, 2, 2, true);
  batch.weight = Tensor<float>({2, 4, 2}, 1.0f);
  batch.weight(1, 1, 1) = -1;
  Rng d(3);
  CHECK_THROWS_AS(diffusion::make_noised_batch(sched, batch, LossOptions{}, d), NumericError);
  batch.weight = Tensor<float>({2, 4, 3}, 1.0f);
  CHECK_THROWS_AS(diffusion::make_noised_batch(sched, batch, LossOptions{}, d), ShapeError);
  batch.weight = {};
  batch.condition.value = Tensor<float>({2, 3});
  CHECK_THROWS_AS(diffusion::make_noised_batch(sched, batch, LossOptions{}, d), ShapeError);
}
