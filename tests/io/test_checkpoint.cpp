#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>

#include "coordiff/core/philox.hpp"
#include "coordiff/nn/checkpoint.hpp"
#include "coordiff/nn/linear.hpp"
#include "support/scratch.hpp"

using namespace coordiff;
namespace fs = std::filesystem;

namespace {
// Two Linear layers named like a small PyTorch Sequential ("net.0.weight", ...).
template <class T>
struct TwoLayer {
  nn::Linear<T> a, b;
  TwoLayer(index_t in, index_t hidden, index_t out, Rng& rng) : a(in, hidden, rng), b(hidden, out, rng) {}
  void collect_parameters(nn::ParameterList<T>& out, const std::string& prefix) {
    a.collect_parameters(out, nn::join_name(prefix, "0"));
    b.collect_parameters(out, nn::join_name(prefix, "1"));
  }
};

template <class T>
std::vector<std::vector<T>> snapshot(const nn::ParameterList<T>& params) {
  std::vector<std::vector<T>> s;
  for (const auto& p : params) s.push_back(p.param->value.storage());
  return s;
}

}  // namespace

TEST_CASE("checkpoint: double model, metadata and extras round-trip bit-exactly") {
  const auto dir = testing::scratch_dir("ckpt_io_roundtrip");
  Rng rng(11);
  TwoLayer<double> net(3, 5, 2, rng);
  const auto params = nn::parameters_of<double>(net, "net");
  Tensor<double> ema = rng.normal<double>({7});
  Tensor<double> moment = rng.normal<double>({5, 3});
  nn::CheckpointMeta meta{"TwoLayer(3,5,2)", 123456789012ULL, {{"lr", "0.0002"}, {"note", "ünïcode; with = signs"}}};
  nn::save_checkpoint(dir / "m.ckpt", params, meta, {{"ema", &ema}, {"adam.m.net.0.weight", &moment}});

  Rng rng2(99);
  TwoLayer<double> copy(3, 5, 2, rng2);
  const auto cparams = nn::parameters_of<double>(copy, "net");
  Tensor<double> ema2({7}), moment2({5, 3});
  // Extras are looked up by name, in any order.
  const auto got = nn::load_checkpoint(dir / "m.ckpt", cparams, {{"adam.m.net.0.weight", &moment2}, {"ema", &ema2}});
  CHECK(got.architecture == meta.architecture);
  CHECK(got.step == meta.step);
  CHECK(got.metadata == meta.metadata);
  CHECK(snapshot(cparams) == snapshot(params));
  CHECK(ema2.storage() == ema.storage());
  CHECK(moment2.storage() == moment.storage());
  // The model alone can be restored without its extras.
  CHECK_NOTHROW(nn::load_checkpoint(dir / "m.ckpt", cparams));
  // Saving again overwrites atomically and leaves no temporary file behind.
  nn::save_checkpoint(dir / "m.ckpt", params, meta);
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  CHECK(files == 1);
}

TEST_CASE("checkpoint: a header check sees the metadata first and, by throwing, leaves the model untouched") {
  const auto dir = testing::scratch_dir("ckpt_io_header_check");
  Rng rng(21);
  TwoLayer<double> net(3, 4, 2, rng);
  Tensor<double> ema = rng.normal<double>({3});
  nn::save_checkpoint(dir / "h.ckpt", nn::parameters_of<double>(net, "net"), {"TwoLayer", 42, {{"data", "abc"}}},
                      {{"ema", &ema}});
  Rng rng2(22);
  TwoLayer<double> other(3, 4, 2, rng2);
  const auto params = nn::parameters_of<double>(other, "net");
  const auto before = snapshot(params);
  Tensor<double> ema2({3});
  std::string seen;
  const auto refuse = [&](const nn::CheckpointMeta& m) {
    seen = m.architecture + " " + std::to_string(m.step) + " " + m.metadata.at("data");
    throw ConfigError("other data");
  };
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "h.ckpt", params, {{"ema", &ema2}}, refuse), doctest::Contains("other data"), ConfigError);
  CHECK(seen == "TwoLayer 42 abc");
  CHECK(snapshot(params) == before);
  CHECK(ema2.storage() == std::vector<double>(3, 0.0));
  // A check that accepts lets the load go on.
  nn::load_checkpoint(dir / "h.ckpt", params, {{"ema", &ema2}}, [](const nn::CheckpointMeta&) {});
  CHECK(snapshot(params) == snapshot(nn::parameters_of<double>(net, "net")));
  CHECK(ema2.storage() == ema.storage());
}

TEST_CASE("checkpoint: double checkpoint into a float model rounds each value") {
  const auto dir = testing::scratch_dir("ckpt_io_convert");
  Rng rng(5);
  nn::Linear<double> d(4, 2, rng);
  nn::save_checkpoint(dir / "d.ckpt", nn::parameters_of<double>(d, "l"), {"Linear", 0, {}});
  nn::Linear<float> f(4, 2, rng);
  nn::load_checkpoint(dir / "d.ckpt", nn::parameters_of<float>(f, "l"));
  for (index_t i = 0; i < d.weight().value.size(); ++i)
    CHECK(f.weight().value[i] == static_cast<float>(d.weight().value[i]));
}

TEST_CASE("checkpoint: another architecture is rejected naming the first differing tensor, model untouched") {
  const auto dir = testing::scratch_dir("ckpt_io_arch");
  Rng rng(7);
  TwoLayer<float> net(3, 5, 2, rng);
  Tensor<float> ema = rng.normal<float>({4});
  nn::save_checkpoint(dir / "n.ckpt", nn::parameters_of<float>(net, "net"), {"TwoLayer", 1, {}}, {{"ema", &ema}});

  SUBCASE("a different hidden width: the first weight differs in shape") {
    TwoLayer<float> other(3, 6, 2, rng);
    const auto p = nn::parameters_of<float>(other, "net");
    const auto before = snapshot(p);
    CHECK_THROWS_AS(nn::load_checkpoint(dir / "n.ckpt", p), ShapeError);
    const auto msg = testing::message_of<Error>([&] { nn::load_checkpoint(dir / "n.ckpt", p); });
    CHECK(msg.find("net.0.weight") != std::string::npos);
    CHECK(msg.find("[5,3]") != std::string::npos);
    CHECK(msg.find("[6,3]") != std::string::npos);
    CHECK(snapshot(p) == before);
  }
  SUBCASE("a model with fewer tensors: the checkpoint's extra tensor is named") {
    nn::Linear<float> one(3, 5, rng);
    const auto p = nn::parameters_of<float>(one, "net.0");
    const auto before = snapshot(p);
    const auto msg = testing::message_of<Error>([&] { nn::load_checkpoint(dir / "n.ckpt", p); });
    CHECK(msg.find("net.1.weight") != std::string::npos);
    CHECK(snapshot(p) == before);
  }
  SUBCASE("a model with more tensors: the missing one is named") {
    struct Three {
      TwoLayer<float> two;
      nn::Linear<float> c;
      void collect_parameters(nn::ParameterList<float>& out, const std::string& prefix) {
        two.collect_parameters(out, prefix);
        c.collect_parameters(out, nn::join_name(prefix, "2"));
      }
    } three{TwoLayer<float>(3, 5, 2, rng), nn::Linear<float>(2, 2, rng)};
    const auto p = nn::parameters_of<float>(three, "net");
    const auto before = snapshot(p);
    const auto msg = testing::message_of<Error>([&] { nn::load_checkpoint(dir / "n.ckpt", p); });
    CHECK(msg.find("net.2.weight") != std::string::npos);
    CHECK(snapshot(p) == before);
  }
  SUBCASE("renamed parameters") {
    TwoLayer<float> same(3, 5, 2, rng);
    const auto p = nn::parameters_of<float>(same, "model");
    const auto msg = testing::message_of<Error>([&] { nn::load_checkpoint(dir / "n.ckpt", p); });
    CHECK(msg.find("model.0.weight") != std::string::npos);
    CHECK(msg.find("net.0.weight") != std::string::npos);
  }
  SUBCASE("a missing or misshapen extra fails before the model is written") {
    TwoLayer<float> same(3, 5, 2, rng);
    const auto p = nn::parameters_of<float>(same, "net");
    const auto before = snapshot(p);
    Tensor<float> wrong({5});
    CHECK_THROWS_AS(nn::load_checkpoint(dir / "n.ckpt", p, {{"ema", &wrong}}), ShapeError);
    Tensor<float> absent({4});
    CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "n.ckpt", p, {{"adam.v", &absent}}), doctest::Contains("adam.v"),
                         FormatError);
    CHECK(snapshot(p) == before);
  }
}

TEST_CASE("checkpoint: bad magic, truncation at every length and flipped bytes raise FormatError naming the file") {
  const auto dir = testing::scratch_dir("ckpt_io_damage");
  Rng rng(13);
  nn::Linear<float> net(3, 2, rng);
  const auto params = nn::parameters_of<float>(net, "l");
  nn::save_checkpoint(dir / "ok.ckpt", params, {"Linear(3,2)", 4, {{"k", "v"}}});
  const auto bytes = io::read_file(dir / "ok.ckpt");
  REQUIRE(std::memcmp(bytes.data(), "CDIFFCKP", 8) == 0);
  const auto before = snapshot(params);

  auto bad_magic = bytes;
  bad_magic[0] = 'X';
  io::write_file_atomic(dir / "magic.ckpt", bad_magic);
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "magic.ckpt", params), doctest::Contains("magic.ckpt"), FormatError);
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(dir / "magic.ckpt", params), doctest::Contains("bad magic"), FormatError);

  // Every proper prefix of the file is rejected cleanly (runs under ASan in CI).
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    io::write_file_atomic(dir / "cut.ckpt", bytes.data(), n);
    CHECK_THROWS_AS(nn::load_checkpoint(dir / "cut.ckpt", params), FormatError);
  }
  // Any single flipped bit after the magic is caught (version check, size check or CRC32).
  for (std::size_t i = 8; i < bytes.size(); ++i) {
    auto flipped = bytes;
    flipped[i] ^= 0x10;
    io::write_file_atomic(dir / "flip.ckpt", flipped);
    CHECK_THROWS_AS(nn::load_checkpoint(dir / "flip.ckpt", params), FormatError);
  }
  CHECK(snapshot(params) == before);
}
