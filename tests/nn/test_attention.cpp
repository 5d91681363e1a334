// Attention modules: gradient checks beyond tests/nn/test_unet.cpp and test_optim_checkpoint.cpp
// (MADiff widths, single agent / single step, no bias, key padding masks, 3-D and 5-D inputs), a direct
// loop reference for MADiff's rearranges, invariants, errors, and PyTorch goldens made by
// tools/golden/gen_attention.py.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordiff/nn/agent_attention.hpp"
#include "coordiff/nn/multihead_attention.hpp"
#include "support/golden.hpp"
#include "support/gradcheck.hpp"

using namespace coordiff;

namespace {

/// Moves every parameter off its initial value (zero biases would hide bias-gradient bugs).
void randomize(const nn::ParameterList<double>& params, Rng& rng, double sd) {
  for (auto& p : params) p.param->value = rng.normal<double>(p.param->shape(), 0.0, sd);
}

std::map<std::string, const Tensor<double>*> by_name(const nn::ParameterList<double>& params) {
  std::map<std::string, const Tensor<double>*> m;
  for (auto& p : params) m[p.name] = &p.param->value;
  return m;
}

void check_gradcheck_agent(nn::AgentSelfAttention<double>& attn, const Tensor<double>& x, const Tensor<double>& e, Rng& rng) {
  const auto up = rng.normal<double>(x.shape());
  testing::check_two_input_module(attn, x, e, up);
}

void check_gradcheck_mhsa(nn::MultiheadSelfAttention<double>& mha, Tensor<double> x, index_t axis, Rng& rng,
                          const Tensor<std::uint8_t>* mask = nullptr) {
  auto up = rng.normal<double>(x.shape());
  auto params = nn::parameters_of<double>(mha);
  nn::zero_grad(params);
  mha.forward(x, axis, mask);
  auto dx = mha.backward(up);
  auto targets = testing::parameter_targets(params);
  targets.push_back({"x", &x, &dx});
  testing::check_gradients(
      [&] {
        nn::NoGradGuard g;
        return testing::dot(mha.forward(x, axis, mask), up);
      },
      targets);
}

double mish(double v) { return v * std::tanh(std::log1p(std::exp(v))); }

/// MADiff's TemporalSelfAttention written as plain loops over its rearranges, from the parameters.
Tensor<double> agent_attention_reference(const std::map<std::string, const Tensor<double>*>& p, const Tensor<double>& x,
                                         const Tensor<double>& emb, index_t qk, index_t v, index_t heads, double gamma,
                                         bool residual) {
  const index_t B = x.dim(0), A = x.dim(1), C = x.dim(2), L = x.dim(3), E = emb.dim(2);
  // proj(name, width) -> [B, A, width, L]: 1x1 conv of x plus Linear(Mish(emb)) broadcast over time.
  auto proj = [&](const std::string& name, index_t width) {
    const auto &w = *p.at(name + "_layer.weight"), &b = *p.at(name + "_layer.bias");
    const auto &tw = *p.at(name + "_time_mlp.1.weight"), &tb = *p.at(name + "_time_mlp.1.bias");
    Tensor<double> out({B, A, width, L});
    for (index_t bi = 0; bi < B; ++bi)
      for (index_t a = 0; a < A; ++a)
        for (index_t o = 0; o < width; ++o) {
          double t = tb[o];
          for (index_t j = 0; j < E; ++j) t += tw[o * E + j] * mish(emb[(bi * A + a) * E + j]);
          for (index_t l = 0; l < L; ++l) {
            double s = b[o] + t;
            for (index_t c = 0; c < C; ++c) s += w[o * C + c] * x[((bi * A + a) * C + c) * L + l];
            out[((bi * A + a) * width + o) * L + l] = s;
          }
        }
    return out;
  };
  const auto q = proj("query", qk * heads), k = proj("key", qk * heads), val = proj("value", v * heads);
  // "(b a) (h d) t -> h b a (d t)": feature f = d * L + t of head h is channel h * dh + d at time t.
  auto feat = [&](const Tensor<double>& z, index_t dh, index_t h, index_t bi, index_t a, index_t f) {
    return z[((bi * A + a) * dh * heads + h * dh + f / L) * L + f % L];
  };
  std::vector<double> flat(static_cast<std::size_t>(B * A * heads * v * L));  // "h b a f -> b a (h f)"
  for (index_t h = 0; h < heads; ++h)
    for (index_t bi = 0; bi < B; ++bi)
      for (index_t i = 0; i < A; ++i) {
        std::vector<double> w(static_cast<std::size_t>(A));
        for (index_t j = 0; j < A; ++j) {
          double s = 0;
          for (index_t f = 0; f < qk * L; ++f) s += feat(q, qk, h, bi, i, f) * feat(k, qk, h, bi, j, f);
          w[static_cast<std::size_t>(j)] = s / std::sqrt(static_cast<double>(qk * L));
        }
        const double m = *std::max_element(w.begin(), w.end());
        double z = 0;
        for (auto& wj : w) z += (wj = std::exp(wj - m));
        for (index_t f = 0; f < v * L; ++f) {
          double s = 0;
          for (index_t j = 0; j < A; ++j) s += w[static_cast<std::size_t>(j)] / z * feat(val, v, h, bi, j, f);
          flat[static_cast<std::size_t>((bi * A + i) * heads * v * L + h * v * L + f)] = s;
        }
      }
  Tensor<double> y(x.shape());  // out.reshape(x.shape): a plain reshape of the (h, d, t)-ordered features
  for (index_t i = 0; i < y.size(); ++i)
    y[i] = residual ? x[i] + gamma * flat[static_cast<std::size_t>(i)] : flat[static_cast<std::size_t>(i)];
  return y;
}

/// Transposes axes a and b of a tensor.
Tensor<double> swap_axes(const Tensor<double>& t, std::size_t a, std::size_t b) {
  std::vector<std::size_t> perm(t.rank());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::swap(perm[a], perm[b]);
  return t.view().permute(perm).contiguous();
}

void check_same(const Tensor<double>& a, const Tensor<double>& b, const char* what) {
  REQUIRE(a.shape() == b.shape());
  double worst = 0;
  for (index_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  CHECK_MESSAGE(worst < 1e-12, what, ": max abs difference ", worst);
}

}  // namespace

TEST_CASE("gradcheck: AgentSelfAttention at MADiff widths (qk = C/16, v = C/4), one step and one agent") {
  Rng rng(41);
  for (bool residual : {true, false}) {
    nn::AgentSelfAttention<double> attn(16, 1, 4, 6, rng, 4, residual);
    auto params = nn::parameters_of<double>(attn);
    randomize(params, rng, 0.5);
    attn.gamma().value[0] = 0.7;
    check_gradcheck_agent(attn, rng.normal<double>({2, 3, 16, 1}), rng.normal<double>({2, 3, 6}), rng);  // L = 1
    // A = 1: softmax over a single agent is constant, so query/key gradients vanish exactly.
    check_gradcheck_agent(attn, rng.normal<double>({1, 1, 16, 3}), rng.normal<double>({1, 1, 6}), rng);
  }
}

TEST_CASE("gradcheck: MultiheadSelfAttention over time") {
  Rng rng(42);
  nn::MultiheadSelfAttention<double> mha(8, 2, rng);
  randomize(nn::parameters_of<double>(mha), rng, 0.5);
  check_gradcheck_mhsa(mha, rng.normal<double>({2, 4, 3, 8}), 1, rng);  // [B, T, A, E]
}

TEST_CASE("gradcheck: MultiheadSelfAttention over agents") {
  Rng rng(43);
  nn::MultiheadSelfAttention<double> mha(8, 4, rng);
  randomize(nn::parameters_of<double>(mha), rng, 0.5);
  check_gradcheck_mhsa(mha, rng.normal<double>({2, 4, 3, 8}), -2, rng);  // negative axis = agents
}

TEST_CASE("gradcheck: MultiheadSelfAttention without bias, 3-D and 5-D inputs, key padding mask") {
  Rng rng(44);
  nn::MultiheadSelfAttention<double> nobias(6, 3, rng, false);
  randomize(nn::parameters_of<double>(nobias), rng, 0.5);
  check_gradcheck_mhsa(nobias, rng.normal<double>({5, 2, 6}), 0, rng);            // sequence-first
  check_gradcheck_mhsa(nobias, rng.normal<double>({2, 2, 3, 2, 6}), 2, rng);      // three batch axes

  nn::MultiheadSelfAttention<double> mha(6, 2, rng);
  randomize(nn::parameters_of<double>(mha), rng, 0.5);
  Tensor<std::uint8_t> mask({2, 4, 3}, {0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1,  //
                                        0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0});
  check_gradcheck_mhsa(mha, rng.normal<double>({2, 4, 3, 6}), 2, rng, &mask);
}

TEST_CASE("AgentSelfAttention: matches a direct loop over MADiff's rearranges") {
  Rng rng(45);
  for (bool residual : {true, false}) {
    // qk != v and L > 1, so a wrong (h, d, t) split or output reshape cannot go unnoticed.
    nn::AgentSelfAttention<double> attn(12, 2, 4, 5, rng, 3, residual);
    auto params = nn::parameters_of<double>(attn);
    randomize(params, rng, 0.6);
    attn.gamma().value[0] = -0.6;
    auto x = rng.normal<double>({2, 4, 12, 3}), e = rng.normal<double>({2, 4, 5});
    const auto y = attn.forward(x, e);
    check_same(y, agent_attention_reference(by_name(params), x, e, 2, 4, 3, -0.6, residual), "agent attention");
    const auto& w = attn.attention_weights();
    REQUIRE(w.shape() == Shape{2, 3, 4, 4});
    for (index_t r = 0; r < 2 * 3 * 4; ++r) {
      double s = 0;
      for (index_t j = 0; j < 4; ++j) s += w[r * 4 + j];
      CHECK(s == doctest::Approx(1.0).epsilon(1e-12));
    }
  }
}

TEST_CASE("AgentSelfAttention: parameter names, configuration and shape errors") {
  Rng rng(46);
  nn::AgentSelfAttention<double> attn(8, 1, 2, 3, rng);
  std::vector<std::string> names;
  for (auto& p : nn::parameters_of<double>(attn)) names.push_back(p.name);
  const std::vector<std::string> expected{
      "query_layer.weight", "query_layer.bias", "key_layer.weight", "key_layer.bias", "value_layer.weight",
      "value_layer.bias", "query_time_mlp.1.weight", "query_time_mlp.1.bias", "key_time_mlp.1.weight",
      "key_time_mlp.1.bias", "value_time_mlp.1.weight", "value_time_mlp.1.bias", "gamma"};
  CHECK(names == expected);
  CHECK(attn.gamma().value[0] == 0.0);  // MADiff initialises the gate to zero
  nn::AgentSelfAttention<double> plain(8, 1, 2, 3, rng, 4, false);
  CHECK(nn::parameters_of<double>(plain).size() == expected.size() - 1);  // no gamma without residual

  CHECK_THROWS_AS(nn::AgentSelfAttention<double>(8, 1, 3, 3, rng), ConfigError);  // v * heads != C
  CHECK_THROWS_AS(nn::AgentSelfAttention<double>(8, 0, 2, 3, rng), ConfigError);
  CHECK_THROWS_AS(nn::AgentSelfAttention<double>(8, 1, 2, 0, rng), ConfigError);
  CHECK_THROWS_AS(nn::AgentSelfAttention<double>(8, 1, 8, 3, rng, 0), ConfigError);

  auto x = rng.normal<double>({1, 2, 8, 3}), e = rng.normal<double>({1, 2, 3});
  CHECK_THROWS_AS(attn.forward(rng.normal<double>({2, 8, 3}), e), ShapeError);     // rank
  CHECK_THROWS_AS(attn.forward(rng.normal<double>({1, 2, 7, 3}), e), ShapeError);  // channels
  CHECK_THROWS_AS(attn.forward(x, rng.normal<double>({1, 3, 3})), ShapeError);     // agents differ
  CHECK_THROWS_AS(attn.forward(x, rng.normal<double>({1, 2, 4})), ShapeError);     // embedding width
  CHECK_THROWS_AS(attn.forward(rng.normal<double>({1, 2, 8, 0}), e), ShapeError);  // empty horizon
  attn.forward(x, e);
  CHECK_THROWS_AS(attn.backward(rng.normal<double>({1, 2, 8, 4})), ShapeError);
  {
    nn::NoGradGuard g;
    attn.forward(x, e);
  }
  CHECK_THROWS_AS(attn.backward(rng.normal<double>(x.shape())), ShapeError);  // cache dropped without grad
}

TEST_CASE("MultiheadSelfAttention: attending over an axis equals attending over the transposed tensor") {
  Rng rng(47);
  nn::MultiheadSelfAttention<double> mha(8, 2, rng);
  auto params = nn::parameters_of<double>(mha);
  randomize(params, rng, 0.5);
  const auto x = rng.normal<double>({2, 5, 3, 8}), up = rng.normal<double>(x.shape());
  // (axis on x, swapped pair, axis on the swapped tensor)
  struct Case {
    index_t axis;
    std::size_t a, b;
    index_t swapped_axis;
  };
  for (Case c : {Case{1, 1, 2, 2}, Case{2, 1, 2, 1}, Case{0, 0, 2, 2}}) {
    nn::zero_grad(params);
    const auto y = mha.forward(x, c.axis);
    const auto dx = mha.backward(up);
    std::vector<Tensor<double>> g;
    for (auto& p : params) g.push_back(p.param->grad);
    nn::zero_grad(params);
    const auto ys = swap_axes(mha.forward(swap_axes(x, c.a, c.b), c.swapped_axis), c.a, c.b);
    const auto dxs = swap_axes(mha.backward(swap_axes(up, c.a, c.b)), c.a, c.b);
    check_same(y, ys, "output");
    check_same(dx, dxs, "grad x");
    for (std::size_t i = 0; i < params.size(); ++i) check_same(g[i], params[i].param->grad, params[i].name.c_str());
  }
}

TEST_CASE("MultiheadSelfAttention: a hidden key gets zero weight and equals dropping it") {
  Rng rng(48);
  nn::MultiheadSelfAttention<double> mha(8, 2, rng);
  randomize(nn::parameters_of<double>(mha), rng, 0.5);
  const auto x = rng.normal<double>({2, 5, 8});
  Tensor<std::uint8_t> mask({2, 5}, {0, 0, 0, 1, 1, 0, 0, 0, 1, 1});  // the last two steps are padding
  const auto y = mha.forward(x, 1, &mask);
  const auto& w = mha.attention_weights();  // [2, heads, 5, 5]
  for (index_t r = 0; r < 2 * 2 * 5; ++r) {
    CHECK(w[r * 5 + 3] == 0.0);
    CHECK(w[r * 5 + 4] == 0.0);
    CHECK(w[r * 5 + 0] + w[r * 5 + 1] + w[r * 5 + 2] == doctest::Approx(1.0).epsilon(1e-12));
  }
  Tensor<double> head({2, 3, 8});  // the unpadded prefix alone
  for (index_t b = 0; b < 2; ++b)
    for (index_t i = 0; i < 3 * 8; ++i) head[b * 24 + i] = x[b * 40 + i];
  const auto yh = mha.forward(head, 1);
  double worst = 0;
  for (index_t b = 0; b < 2; ++b)
    for (index_t i = 0; i < 3 * 8; ++i) worst = std::max(worst, std::abs(y[b * 40 + i] - yh[b * 24 + i]));
  CHECK(worst < 1e-12);
}

TEST_CASE("MultiheadSelfAttention: configuration, shape, mask and cache errors") {
  Rng rng(49);
  CHECK_THROWS_AS(nn::MultiheadSelfAttention<double>(8, 3, rng), ConfigError);
  CHECK_THROWS_AS(nn::MultiheadSelfAttention<double>(0, 1, rng), ConfigError);
  nn::MultiheadSelfAttention<double> nobias(8, 2, rng, false);
  std::vector<std::string> names;
  for (auto& p : nn::parameters_of<double>(nobias)) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"in_proj_weight", "out_proj.weight"});

  nn::MultiheadSelfAttention<double> mha(8, 2, rng);
  CHECK(nn::parameters_of<double>(mha).size() == 4);
  const auto x = rng.normal<double>({2, 3, 8});
  CHECK_THROWS_AS(mha.backward(x), ShapeError);  // no forward yet
  CHECK_THROWS_AS(mha.forward(rng.normal<double>({2, 3, 7}), 1), ShapeError);
  CHECK_THROWS_AS(mha.forward(rng.normal<double>({8}), 0), ShapeError);
  CHECK_THROWS_AS(mha.forward(x, 2), ShapeError);   // the feature axis
  CHECK_THROWS_AS(mha.forward(x, -1), ShapeError);  // likewise
  CHECK_THROWS_AS(mha.forward(x, 3), ShapeError);
  Tensor<std::uint8_t> bad({3, 2}), all({2, 3}, {0, 0, 0, 1, 1, 1});
  CHECK_THROWS_AS(mha.forward(x, 1, &bad), ShapeError);
  CHECK_THROWS_AS(mha.forward(x, 1, &all), NumericError);  // batch 1 has no visible key
  mha.forward(x, 1);
  CHECK_THROWS_AS(mha.backward(rng.normal<double>({2, 3, 7})), ShapeError);
  {
    nn::NoGradGuard g;
    mha.forward(x, 0);
  }
  CHECK_THROWS_AS(mha.backward(x), ShapeError);  // the grad-enabled cache is stale after that forward
}

namespace {
/// Loads "param.<prefix><name>" into `module`, runs forward / backward, compares every output and gradient.
template <class M, class Fwd, class Bwd>
void golden_attention(const std::string& fixture, M& module, const std::string& prefix, Fwd forward, Bwd backward) {
  auto npz = testing::load_golden(fixture);
  auto params = nn::parameters_of<float>(module);
  nn::load_state_dict(params, npz, "param." + prefix);
  nn::zero_grad(params);
  testing::check_close(forward(npz), npz.tensor<double>("output.y"), fixture + " output");
  backward(npz, npz.tensor<float>("upstream.y"));
  for (auto& p : params)
    testing::check_close(p.param->grad, npz.tensor<double>("grad.param." + prefix + p.name), fixture + " grad " + p.name);
}

void golden_agent(const std::string& fixture, nn::AgentSelfAttention<float>& attn) {
  golden_attention(
      fixture, attn, "",
      [&](const io::NpzFile& f) { return attn.forward(f.tensor<float>("input.x"), f.tensor<float>("input.emb")); },
      [&](const io::NpzFile& f, const Tensor<float>& up) {
        auto [dx, de] = attn.backward(up);
        testing::check_close(dx, f.tensor<double>("grad.input.x"), f.path().stem().string() + " grad x");
        testing::check_close(de, f.tensor<double>("grad.input.emb"), f.path().stem().string() + " grad emb");
      });
}
}  // namespace

TEST_CASE("golden: AgentSelfAttention without residual (2 heads, odd qk width)") {
  Rng rng(0);
  nn::AgentSelfAttention<float> attn(16, 3, 8, 8, rng, 2, false);
  golden_agent("attn_agent_noresidual", attn);
}

TEST_CASE("golden: AgentSelfAttention at MADiff widths (C=48, qk=C/16, v=C/4, gamma=-0.8)") {
  Rng rng(0);
  nn::AgentSelfAttention<float> attn(48, 3, 12, 12, rng, 4, true);
  golden_agent("attn_agent_madiff", attn);
}

TEST_CASE("golden: MultiheadSelfAttention without bias, sequence-first [S, N, E]") {
  Rng rng(0);
  nn::MultiheadSelfAttention<float> mha(12, 3, rng, false);
  golden_attention(
      "attn_mhsa_nobias_seq0", mha, "m.", [&](const io::NpzFile& f) { return mha.forward(f.tensor<float>("input.x"), 0); },
      [&](const io::NpzFile& f, const Tensor<float>& up) {
        testing::check_close(mha.backward(up), f.tensor<double>("grad.input.x"), "attn_mhsa_nobias_seq0 grad x");
      });
}

TEST_CASE("golden: MultiheadSelfAttention over agents with a key padding mask") {
  Rng rng(0);
  nn::MultiheadSelfAttention<float> mha(16, 4, rng);
  Tensor<std::uint8_t> mask;
  golden_attention(
      "attn_mhsa_mask_agents", mha, "m.",
      [&](const io::NpzFile& f) {
        mask = f.tensor<std::uint8_t>("input.mask");
        return mha.forward(f.tensor<float>("input.x"), 2, &mask);
      },
      [&](const io::NpzFile& f, const Tensor<float>& up) {
        testing::check_close(mha.backward(up), f.tensor<double>("grad.input.x"), "attn_mhsa_mask_agents grad x");
      });
}
