#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "coordiff/nn/checkpoint.hpp"
#include "coordiff/nn/linear.hpp"
#include "coordiff/nn/multihead_attention.hpp"
#include "coordiff/nn/optim/optim.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"
#include "support/scratch.hpp"

using namespace coordiff;
namespace fs = std::filesystem;
using nn::optim::Adam;
using nn::optim::AdamOptions;

namespace {
// Two free parameters shaped like the PyTorch fixture's.
template <class T>
struct TwoParams {
  nn::Parameter<T> a{Shape{3, 4}}, b{Shape{5}};
  nn::ParameterList<T> list() { return {{"a", &a}, {"b", &b}}; }
};

template <class T, template <class> class Optimizer = Adam>
void replay(const std::string& name, AdamOptions opt, double rtol) {
  auto f = testing::load_golden("optim_adam");
  TwoParams<T> p;
  p.a.value = f.tensor<T>("init.0");
  p.b.value = f.tensor<T>("init.1");
  Optimizer<T> adam(p.list(), opt);
  for (int s = 0; s < 6; ++s) {
    p.a.grad = f.tensor<T>("grad." + std::to_string(s) + ".0");
    p.b.grad = f.tensor<T>("grad." + std::to_string(s) + ".1");
    adam.step();
    testing::check_close(p.a.value, f.tensor<double>(name + "." + std::to_string(s) + ".0"), name + " step " + std::to_string(s), rtol, 0.0);
    testing::check_close(p.b.value, f.tensor<double>(name + "." + std::to_string(s) + ".1"), name + " step " + std::to_string(s), rtol, 0.0);
  }
}
AdamOptions adam_l2() {
  AdamOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  return o;
}
AdamOptions adam_ams() {
  AdamOptions o;
  o.lr = 3e-2;
  o.beta1 = 0.8;
  o.beta2 = 0.99;
  o.amsgrad = true;
  return o;
}
}  // namespace

TEST_CASE("golden: Adam, AdamW and AMSGrad over 6 steps match torch.optim (double and float)") {
  replay<double>("adam", adam_l2(), 1e-10);
  replay<double>("adamw", nn::optim::adamw_options(1e-2, 0.05), 1e-10);
  replay<double>("amsgrad", adam_ams(), 1e-10);
  replay<float>("adam", adam_l2(), 1e-5);
  replay<float>("adamw", nn::optim::adamw_options(1e-2, 0.05), 1e-5);
  // AdamW forces decoupled decay even when given plain Adam options.
  AdamOptions coupled = nn::optim::adamw_options(1e-2, 0.05);
  coupled.decoupled_weight_decay = false;
  replay<double, nn::optim::AdamW>("adamw", coupled, 1e-10);
}

TEST_CASE("golden: clip_grad_norm matches torch.nn.utils.clip_grad_norm_") {
  auto f = testing::load_golden("optim_adam");
  TwoParams<double> p;
  p.a.grad = f.tensor<double>("grad.0.0");
  p.b.grad = f.tensor<double>("grad.0.1");
  const double total = nn::optim::clip_grad_norm(p.list(), 0.5);
  CHECK(total == doctest::Approx(f.tensor<double>("clip.total_norm")[0]).epsilon(1e-12));
  testing::check_close(p.a.grad, f.tensor<double>("clip.grad.0"), "clipped a", 1e-10, 0.0);
  testing::check_close(p.b.grad, f.tensor<double>("clip.grad.1"), "clipped b", 1e-10, 0.0);
  double n2 = 0;
  for (double g : p.a.grad) n2 += g * g;
  for (double g : p.b.grad) n2 += g * g;
  CHECK(std::sqrt(n2) == doctest::Approx(0.5).epsilon(1e-5));
}

TEST_CASE("Adam: the first step moves each weight by lr * sign(gradient)") {
  TwoParams<double> p;
  Rng rng(1);
  p.a.grad = rng.normal<double>({3, 4});
  p.b.grad = rng.normal<double>({5});
  AdamOptions o;
  o.lr = 0.01;
  o.eps = 0;
  Adam<double> adam(p.list(), o);
  adam.step();
  for (index_t i = 0; i < 12; ++i) CHECK(p.a.value[i] == doctest::Approx(-0.01 * (p.a.grad[i] > 0 ? 1 : -1)).epsilon(1e-12));
}

TEST_CASE("Adam: a NaN gradient raises NumericError and leaves the weights untouched - bad options are ConfigErrors") {
  TwoParams<float> p;
  p.b.grad[2] = std::numeric_limits<float>::quiet_NaN();
  Adam<float> adam(p.list());
  const auto before = p.a.value.storage();
  CHECK_THROWS_AS(adam.step(), NumericError);
  CHECK(p.a.value.storage() == before);
  CHECK(adam.step_count() == 0);
  AdamOptions bad;
  bad.beta1 = 1.0;
  CHECK_THROWS_AS(Adam<float>(p.list(), bad), ConfigError);
  bad = AdamOptions{};
  bad.lr = -1;
  CHECK_THROWS_AS(Adam<float>(p.list(), bad), ConfigError);
}

TEST_CASE("EMA: copies before start_step, then follows the geometric average every update_every steps") {
  nn::Parameter<double> w(Shape{2});
  nn::ParameterList<double> list{{"w", &w}};
  nn::optim::Ema<double> ema(list, 0.9, /*start_step=*/20, /*update_every=*/10);
  w.value.fill(1.0);
  ema.update(10);  // before start: reset to the weights
  w.value.fill(3.0);
  ema.update(15);  // not a multiple of 10: ignored
  ema.update(20);  // 0.9 * 1 + 0.1 * 3
  ema.update(30);  // 0.9 * 1.2 + 0.1 * 3
  nn::Parameter<double> eval(Shape{2});
  ema.copy_to({{"w", &eval}});
  CHECK(eval.value[0] == doctest::Approx(0.9 * (0.9 * 1 + 0.3) + 0.3).epsilon(1e-14));
}

TEST_CASE("learning-rate schedules: linear warm-up and cosine decay closed forms") {
  nn::optim::LinearWarmup warm{100};
  CHECK(warm.factor(1) == doctest::Approx(0.01));
  CHECK(warm.factor(50) == doctest::Approx(0.5));
  CHECK(warm.factor(100) == 1.0);
  CHECK(warm.factor(5000) == 1.0);
  nn::optim::CosineWithWarmup cos{10, 110, 0.1};
  CHECK(cos.factor(10) == doctest::Approx(1.0));
  CHECK(cos.factor(60) == doctest::Approx(0.1 + 0.9 * 0.5));
  CHECK(cos.factor(110) == doctest::Approx(0.1));
  TwoParams<float> p;
  Adam<float> adam(p.list());
  nn::optim::apply_schedule(adam, warm, 2e-4, 25);
  CHECK(adam.lr() == doctest::Approx(5e-5));
}

TEST_CASE("gradcheck: MultiheadSelfAttention over time and over agents") {
  Rng rng(31);
  nn::MultiheadSelfAttention<double> mha(8, 2, rng);
  auto params = nn::parameters_of<double>(mha);
  for (auto& p : params) p.param->value = rng.normal<double>(p.param->shape(), 0.0, 0.4);
  for (index_t axis : {1, 2}) {
    auto x = rng.normal<double>({2, 4, 3, 8});
    auto up = rng.normal<double>(x.shape());
    nn::zero_grad(params);
    mha.forward(x, axis);
    auto dx = mha.backward(up);
    std::vector<testing::GradTarget> targets{{"x", &x, &dx}};
    for (auto& p : params) targets.push_back({p.name, &p.param->value, &p.param->grad});
    testing::check_gradients(
        [&] {
          nn::NoGradGuard g;
          return testing::dot(mha.forward(x, axis), up);
        },
        targets);
  }
}

TEST_CASE("checkpoint: round trip with optimizer state - damaged and foreign files are rejected by name") {
  const fs::path dir = testing::scratch_dir("ckpt");
  Rng rng(3);
  nn::Linear<float> net(4, 3, rng);
  auto params = nn::parameters_of<float>(net, "model");
  for (auto& p : params) p.param->grad = rng.normal<float>(p.param->shape());
  Adam<float> adam(params);
  adam.step();
  nn::CheckpointMeta meta{"Linear(4,3)", 1, {{"seed", "3"}}};
  nn::save_checkpoint(dir / "a.ckpt", params, meta, adam.state());

  nn::Linear<float> other(4, 3, rng);
  auto oparams = nn::parameters_of<float>(other, "model");
  Adam<float> oadam(oparams);
  auto loaded = nn::load_checkpoint(dir / "a.ckpt", oparams, oadam.state());
  CHECK(loaded.architecture == "Linear(4,3)");
  CHECK(loaded.step == 1);
  CHECK(loaded.metadata.at("seed") == "3");
  CHECK(other.weight().value.storage() == net.weight().value.storage());
  CHECK(oadam.state()[0].second->storage() == adam.state()[0].second->storage());
  // float checkpoint into a double model converts
  nn::Linear<double> dnet(4, 3, rng);
  nn::load_checkpoint(dir / "a.ckpt", nn::parameters_of<double>(dnet, "model"),
                      nn::NamedTensors<double>{});
  CHECK(dnet.weight().value[0] == static_cast<double>(net.weight().value[0]));

  // A different architecture: the first differing tensor is named; the model is untouched.
  nn::Linear<float> wide(5, 3, rng);
  const auto before = wide.weight().value.storage();
  try {
    nn::load_checkpoint(dir / "a.ckpt", nn::parameters_of<float>(wide, "model"));
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("model.weight") != std::string::npos);
  }
  CHECK(wide.weight().value.storage() == before);
  // Damaged files
  auto bytes = io::read_file(dir / "a.ckpt");
  auto flipped = bytes;
  flipped[flipped.size() / 2] ^= 1;
  io::write_file_atomic(dir / "flipped.ckpt", flipped);
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "flipped.ckpt", oparams), doctest::Contains("CRC32"), FormatError);
  io::write_file_atomic(dir / "short.ckpt", bytes.data(), bytes.size() - 7);
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "short.ckpt", oparams), doctest::Contains("truncated"), FormatError);
  auto newer = bytes;
  newer[8] = 99;
  io::write_file_atomic(dir / "newer.ckpt", newer);
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "newer.ckpt", oparams), doctest::Contains("newer"), FormatError);
  CHECK_THROWS_AS(nn::load_checkpoint(dir / "missing.ckpt", oparams), IoError);
}
