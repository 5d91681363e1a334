#pragma once
// Finite-difference gradient checking (double precision) for tests.
//
// Usage: build a scalar loss L = sum(output * upstream) with a fixed random `upstream`, run the
// module's backward(upstream) to get analytic gradients, then compare each analytic gradient
// with central differences of L obtained by perturbing the corresponding tensor in place.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "coordiff/core/tensor.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::testing {

struct GradTarget {
  std::string name;
  Tensor<double>* value;           // perturbed in place
  const Tensor<double>* analytic;  // gradient from backward()
};

/// sum(a * b) over all elements (shapes must agree).
inline double dot(const Tensor<double>& a, const Tensor<double>& b) {
  REQUIRE(a.shape() == b.shape());
  double s = 0;
  for (index_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// Norm-wise relative error ||analytic - numeric|| / max(||analytic||, ||numeric||) of each target,
/// CHECKed against `tol`; returns the largest. Gradients that are exactly zero in theory (e.g. a bias
/// added to every attention key, which softmax cancels) pass when the absolute error is at the
/// finite-difference noise floor (1e-9 per element). `loss` must recompute the forward pass.
/// max_elements > 0 checks an evenly spread subset of each tensor (large networks).
inline double check_gradients(const std::function<double()>& loss, const std::vector<GradTarget>& targets,
                              double tol = 1e-6, double eps = 1e-5, index_t max_elements = 0) {
  double worst = 0;
  for (const auto& t : targets) {
    REQUIRE_MESSAGE(t.value->shape() == t.analytic->shape(), "gradient shape mismatch for ", t.name);
    double diff2 = 0, a2 = 0, n2 = 0;
    const index_t n = t.value->size();
    const index_t stride = (max_elements > 0 && n > max_elements) ? (n + max_elements - 1) / max_elements : 1;
    index_t checked = 0;
    for (index_t i = (stride > 1 ? (n / max_elements) % stride : 0); i < n; i += stride) {
      ++checked;
      const double orig = (*t.value)[i];
      (*t.value)[i] = orig + eps;
      const double lp = loss();
      (*t.value)[i] = orig - eps;
      const double lm = loss();
      (*t.value)[i] = orig;
      const double num = (lp - lm) / (2 * eps);
      const double ana = (*t.analytic)[i];
      diff2 += (num - ana) * (num - ana);
      a2 += ana * ana;
      n2 += num * num;
    }
    const double abs_err = std::sqrt(diff2);
    double rel = abs_err / std::max({std::sqrt(a2), std::sqrt(n2), 1e-300});
    if (abs_err < 1e-9 * std::sqrt(static_cast<double>(checked))) rel = std::min(rel, 0.0);
    CHECK_MESSAGE(rel < tol, "gradient of ", t.name, ": relative error ", rel, " (|analytic|=", std::sqrt(a2),
                  ", |numeric|=", std::sqrt(n2), ")");
    worst = std::max(worst, rel);
  }
  return worst;
}

/// One target per parameter: its value, perturbed in place, against its accumulated gradient.
inline std::vector<GradTarget> parameter_targets(const nn::ParameterList<double>& params) {
  std::vector<GradTarget> t;
  for (auto& p : params) t.push_back({p.name, &p.param->value, &p.param->grad});
  return t;
}

/// Checks every parameter gradient and both input gradients of a module y = m.forward(x, e) whose
/// backward(up) returns {dx, de}, for the loss sum(y * up); parameter gradients are zeroed first.
template <class Module>
void check_two_input_module(Module& m, Tensor<double> x, Tensor<double> e, const Tensor<double>& up) {
  auto params = nn::parameters_of<double>(m);
  nn::zero_grad(params);
  m.forward(x, e);
  auto [dx, de] = m.backward(up);
  auto targets = parameter_targets(params);
  targets.push_back({"x", &x, &dx});
  targets.push_back({"emb", &e, &de});
  check_gradients(
      [&] {
        nn::NoGradGuard g;
        return dot(m.forward(x, e), up);
      },
      targets);
}

}  // namespace coordiff::testing
