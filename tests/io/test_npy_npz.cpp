#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "coordiff/io/npz.hpp"
#include "coordiff/io/xtensor_interop.hpp"
#include "coordiff/nn/linear.hpp"
#include "coordiff/nn/state_dict.hpp"
#include "support/golden.hpp"
#include "support/scratch.hpp"

using namespace coordiff;
namespace fs = std::filesystem;

namespace {
std::string npz_fixture(const std::string& name) { return testing::fixture_path("npz/" + name); }

void check_numpy_arrays(const io::NpzFile& f) {
  auto f32 = f.tensor<float>("f32", {3, 4});
  for (index_t i = 0; i < 12; ++i) CHECK(f32[i] == static_cast<float>(i) / 4);
  CHECK(f.array("f32").dtype == io::DType::Float32);
  auto f64 = f.tensor<double>("f64");
  CHECK(f64.shape() == Shape{2, 3});
  CHECK(f64(1, 2) == -7.5);
  CHECK(f.tensor<std::int32_t>("i32").storage() == std::vector<std::int32_t>{-3, -2, -1, 0, 1, 2});
  CHECK(f.tensor<std::int64_t>("i64")[4] == 4'000'000'000'000LL);
  CHECK(f.tensor<std::uint8_t>("u8").storage() == std::vector<std::uint8_t>{250, 251, 252, 253, 254, 255});
  CHECK(f.array("b").dtype == io::DType::Bool);
  CHECK(f.tensor<float>("b").storage() == std::vector<float>{1, 0, 1});
  auto fo = f.tensor<double>("fortran");  // arange(24).reshape(2,3,4) regardless of storage order
  REQUIRE(fo.shape() == Shape{2, 3, 4});
  for (index_t i = 0; i < 24; ++i) CHECK(fo[i] == static_cast<double>(i));
  auto sc = f.tensor<double>("scalar");
  CHECK(sc.rank() == 0);
  CHECK(sc[0] == 3.25);
  CHECK(f.tensor<float>("empty").shape() == Shape{0, 3});
  CHECK(f.strings("meta") == std::vector<std::string>{"{\"env\": \"spread\"}", "ünïcode"});
  CHECK(f.tensor<float>("big").storage() == std::vector<float>{0, 1, 2, 3});  // big-endian converted
}
}  // namespace

TEST_CASE("npz: reads np.savez archives written by NumPy (all dtypes, Fortran order, ZIP64 records)") {
  check_numpy_arrays(io::NpzFile::load(npz_fixture("numpy_savez.npz")));
}

TEST_CASE("npz: reads np.savez_compressed archives written by NumPy") {
  check_numpy_arrays(io::NpzFile::load(npz_fixture("numpy_savez_compressed.npz")));
}

TEST_CASE("npy: reads NumPy .npy files, C and Fortran order") {
  auto f64 = io::load_npy<double>(npz_fixture("numpy_f64.npy"));
  CHECK(f64.storage() == std::vector<double>{0, -1.5, -3, -4.5, -6, -7.5});
  auto fo = io::load_npy<float>(npz_fixture("numpy_fortran.npy"));
  CHECK(fo(1, 2, 3) == 23.0f);
  CHECK(fo(0, 1, 2) == 6.0f);
}

TEST_CASE("npz: C++ write then read round-trips every dtype, compressed and stored") {
  const auto dir = testing::scratch_dir("npz_roundtrip");
  Rng rng(5);
  auto a = rng.normal<float>({4, 3, 2});
  auto b = rng.normal<double>({7});
  Tensor<std::int64_t> c({2, 2}, {1, -2, 3, 1LL << 40});
  Tensor<std::uint8_t> d({3}, {0, 128, 255});
  auto e = io::NpyArray::as_bool(Tensor<std::uint8_t>({2}, {1, 0}));
  for (bool compressed : {true, false}) {
    const auto path = dir / (compressed ? "c.npz" : "s.npz");
    io::NpzWriter().add("a", a).add("b", b).add("c", c).add("d", d).add("e", e).add_strings("meta", {"x", "αβ"}).save(path, compressed);
    auto f = io::NpzFile::load(path);
    CHECK(f.keys().size() == 6);
    CHECK(f.tensor<float>("a").storage() == a.storage());
    CHECK(f.tensor<double>("b").storage() == b.storage());
    CHECK(f.tensor<std::int64_t>("c").storage() == c.storage());
    CHECK(f.tensor<std::uint8_t>("d").storage() == d.storage());
    CHECK(f.array("e").dtype == io::DType::Bool);
    CHECK(f.tensor<int>("e").storage() == std::vector<int>{1, 0});
    CHECK(f.strings("meta") == std::vector<std::string>{"x", "αβ"});
  }
  io::save_npy(dir / "x.npy", a);
  CHECK(io::load_npy<float>(dir / "x.npy").storage() == a.storage());
  CHECK(io::load_npy<float>(dir / "x.npy").shape() == a.shape());
}

TEST_CASE("npz: bytes written by coordiff match NumPy's own serialisation of the header") {
  // NumPy pads the v1.0 header to 64 bytes: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
  auto bytes = io::serialize_npy(io::NpyArray::from_tensor(Tensor<float>({3, 4})));
  const std::string header(bytes.begin() + 10, bytes.begin() + 10 + bytes[8]);
  CHECK((10 + header.size()) % 64 == 0);
  CHECK(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 0) == 0);
  CHECK(header.back() == '\n');
  auto one = io::serialize_npy(io::NpyArray::from_tensor(Tensor<double>({5})));
  CHECK(std::string(one.begin() + 10, one.end()).find("'shape': (5,)") != std::string::npos);
}

TEST_CASE("npz: missing keys, wrong shapes and wrong kinds name the file and the key") {
  auto f = io::NpzFile::load(npz_fixture("numpy_savez.npz"));
  auto msg = testing::message_of<FormatError>([&] { f.tensor<float>("observations"); });
  CHECK(msg.find("numpy_savez.npz") != std::string::npos);
  CHECK(msg.find("'observations'") != std::string::npos);
  CHECK(msg.find("f32") != std::string::npos);  // lists what is available
  auto smsg = testing::message_of<ShapeError>([&] { f.tensor<float>("f32", {4, 3}); });
  CHECK(smsg.find("f32") != std::string::npos);
  CHECK_THROWS_AS(f.tensor<float>("meta"), FormatError);
  CHECK_THROWS_AS(f.strings("f32"), FormatError);
}

TEST_CASE("npz: malformed files raise FormatError/IoError, never crash") {
  auto truncated = testing::message_of<FormatError>([] { io::NpzFile::load(npz_fixture("bad_truncated.npz")); });
  CHECK(truncated.find("bad_truncated.npz") != std::string::npos);
  auto crc = testing::message_of<FormatError>([] { io::NpzFile::load(npz_fixture("bad_corrupt_data.npz")); });
  CHECK(crc.find("f32.npy") != std::string::npos);
  CHECK(testing::message_of<FormatError>([] { io::load_npy<float>(npz_fixture("bad_short_data.npy")); }).find("truncated data") !=
        std::string::npos);
  CHECK(testing::message_of<FormatError>([] { io::load_npy<float>(npz_fixture("bad_header.npy")); }).find("bad_header.npy") !=
        std::string::npos);
  CHECK(testing::message_of<FormatError>([] { io::load_npy<float>(npz_fixture("bad_dtype.npy")); }).find("<c8") != std::string::npos);
  CHECK_THROWS_AS(io::NpzFile::load(npz_fixture("does_not_exist.npz")), IoError);
  CHECK_THROWS_AS(io::NpzFile::load(npz_fixture("numpy_f64.npy")), FormatError);  // not a zip
  // Every prefix of a valid archive is rejected cleanly (exercises each bounds check).
  const auto good = io::read_file(npz_fixture("numpy_savez_compressed.npz"));
  for (std::size_t n = 0; n < good.size(); n += 37)
    CHECK_THROWS_AS(io::NpzFile::from_bytes(good.data(), n, "prefix"), FormatError);
  // Single flipped bytes anywhere either still parse to valid arrays or raise a coordiff error.
  for (std::size_t i = 0; i < good.size(); i += 11) {
    auto bad = good;
    bad[i] ^= 0x5A;
    try {
      io::NpzFile::from_bytes(bad.data(), bad.size(), "flipped");
    } catch (const Error&) {
    }
  }
}

TEST_CASE("atomic write: a failed write leaves no temporary file and keeps the old target") {
  const auto dir = testing::scratch_dir("atomic");
  const auto target = dir / "keep.npz";
  io::NpzWriter().add("x", Tensor<float>({2}, {1, 2})).save(target);
  CHECK_THROWS_AS(io::NpzWriter().add("x", Tensor<float>({1})).save(dir / "missing_dir" / "y.npz"), IoError);
  // Writing over a directory fails at rename: the temporary must be cleaned up.
  fs::create_directories(dir / "a_directory" / "inner");
  CHECK_THROWS_AS(io::NpzWriter().add("x", Tensor<float>({1})).save(dir / "a_directory"), IoError);
  int entries = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 2);  // keep.npz and a_directory, no leftovers
  CHECK(io::NpzFile::load(target).tensor<float>("x").storage() == std::vector<float>{1, 2});
  CHECK_THROWS_AS(io::NpzWriter().add("x", Tensor<float>({1})).add("x", Tensor<float>({1})), ConfigError);
}

TEST_CASE("state_dict: save/load by PyTorch names - missing, misshapen and unexpected keys are named") {
  const auto dir = testing::scratch_dir("state_dict");
  Rng rng(9);
  nn::Linear<float> a(3, 2, rng), b(3, 2, rng);
  auto pa = nn::parameters_of<float>(a, "net.0"), pb = nn::parameters_of<float>(b, "net.0");
  nn::save_state_dict(dir / "w.npz", pa);
  nn::load_state_dict(pb, io::NpzFile::load(dir / "w.npz"));
  CHECK(b.weight().value.storage() == a.weight().value.storage());
  CHECK(b.bias().value.storage() == a.bias().value.storage());
  nn::Linear<float> wrong(4, 2, rng);
  const auto before = wrong.bias().value.storage();
  auto msg = testing::message_of<ShapeError>(
      [&] { nn::load_state_dict(nn::parameters_of<float>(wrong, "net.0"), io::NpzFile::load(dir / "w.npz")); });
  CHECK(msg.find("net.0.weight") != std::string::npos);
  CHECK(wrong.bias().value.storage() == before);  // nothing written on failure
  CHECK_THROWS_AS(nn::load_state_dict(nn::parameters_of<float>(a, "net.1"), io::NpzFile::load(dir / "w.npz")), FormatError);
  nn::Linear<float> nobias(3, 2, rng, false);
  auto extra = testing::message_of<FormatError>(
      [&] { nn::load_state_dict(nn::parameters_of<float>(nobias, "net.0"), io::NpzFile::load(dir / "w.npz")); });
  CHECK(extra.find("net.0.bias") != std::string::npos);
}

TEST_CASE("xtensor interop: tensors convert to and from xt::xarray") {
  Tensor<double> t({2, 3}, {1, 2, 3, 4, 5, 6});
  auto x = io::to_xarray(t);
  CHECK(x.dimension() == 2);
  CHECK(x(1, 2) == 6.0);
  auto back = io::from_xarray<double>(x * 2.0);
  CHECK(back.shape() == Shape{2, 3});
  CHECK(back(1, 0) == 8.0);
}
