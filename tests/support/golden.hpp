#pragma once
// Loading PyTorch golden fixtures (tools/golden/*.py) and comparing float32 results against them.
#include <algorithm>
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "coordiff/core/tensor.hpp"
#include "coordiff/io/npz.hpp"
#include "coordiff/nn/parameter.hpp"
#include "coordiff/nn/state_dict.hpp"

namespace coordiff::testing {

inline std::string fixture_path(const std::string& relative) {
  return std::string(COORDIFF_TEST_FIXTURES) + "/" + relative;
}

/// tests/fixtures/golden/<name>.npz
inline io::NpzFile load_golden(const std::string& name) { return io::NpzFile::load(fixture_path("golden/" + name + ".npz")); }

/// Elementwise |a - e| <= rtol * (|e| + rms(e)) + atol: relative where values are large, scaled by the
/// tensor's typical magnitude where they cancel to near zero, and an absolute floor for gradients that
/// vanish in exact arithmetic (e.g. a conv bias followed by a normalisation, or a bias added to every
/// attention key), where float32 leaves ~1e-7 noise. Returns the worst ratio error/tolerance (<= 1 passes).
template <class A>
double check_close(const Tensor<A>& actual, const Tensor<double>& expected, const std::string& what,
                   double rtol = 1e-4, double atol = 1e-5) {
  REQUIRE_MESSAGE(actual.shape() == expected.shape(), what, ": shape ", to_string(actual.shape()), " vs expected ",
                  to_string(expected.shape()));
  double ss = 0;
  for (index_t i = 0; i < expected.size(); ++i) ss += expected[i] * expected[i];
  const double rms = expected.size() ? std::sqrt(ss / static_cast<double>(expected.size())) : 0.0;
  double worst = 0;
  index_t worst_i = 0;
  for (index_t i = 0; i < expected.size(); ++i) {
    const double a = static_cast<double>(actual[i]), e = expected[i];
    const double tol = rtol * (std::abs(e) + rms) + atol + 1e-300;
    const double r = std::isfinite(a) ? std::abs(a - e) / tol : 1e30;
    if (r > worst) {
      worst = r;
      worst_i = i;
    }
  }
  CHECK_MESSAGE(worst <= 1.0, what, ": worst element ", worst_i, " got ",
                (actual.size() ? static_cast<double>(actual[worst_i]) : 0.0), " expected ",
                (expected.size() ? expected[worst_i] : 0.0), " (", worst, "x the tolerance rtol=", rtol, ")");
  return worst;
}

/// Loads every parameter of `params` from the fixture's "param.<name>" arrays (strict).
template <class T>
void load_golden_params(const nn::ParameterList<T>& params, const io::NpzFile& npz) {
  nn::load_state_dict(params, npz, "param.");
}

}  // namespace coordiff::testing
