#pragma once
// The return side of paper 001's condition (eqs. 13-16): per-agent value functions learned IQL-style
// (Kostrikov et al. 2022) on the transitions inside the CBF's safe region X_{i,h}, from rewards that
// already carry the safety penalty r_p (eq. 13: r - r_p where the agent is in the dangerous set):
//   L_V = E[ L^tau(Q(z, a) - V(z)) ],  L^tau(u) = |tau - 1(u < 0)| u^2     (eq. 15, an expectile of Q)
//   L_Q = E[ (r + gamma V(z') - Q(z, a))^2 ]                             (eq. 16)
// V avoids querying Q at actions outside the data. Its value of a window's first state is the return
// condition the diffusion model is guided toward.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/optim/adam.hpp"
#include "coordiff/nn/optim/polyak.hpp"

namespace coordiff::safety {

/// L^tau(u) and its derivative.
inline double expectile_loss(double u, double tau) { return (u < 0 ? 1 - tau : tau) * u * u; }
inline double expectile_loss_derivative(double u, double tau) { return 2 * (u < 0 ? 1 - tau : tau) * u; }

/// The tau-expectile of values v: the m with sum_i |tau - 1(v_i < m)| (v_i - m) = 0 (bisection).
inline double expectile_of(const std::vector<double>& v, double tau) {
  require<ConfigError>(!v.empty() && tau > 0 && tau < 1, "expectile_of: need values and tau in (0, 1)");
  double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  for (int it = 0; it < 200; ++it) {
    const double m = 0.5 * (lo + hi);
    double g = 0;
    for (double x : v) g += (x < m ? 1 - tau : tau) * (x - m);
    (g > 0 ? lo : hi) = m;
  }
  return 0.5 * (lo + hi);
}

/// Transitions of one agent's view: z [N, F], a [N, U], r [N] (penalised), z' [N, F], done [N].
template <class T>
struct ValueData {
  Tensor<T> z, action, reward, z_next;
  std::vector<std::uint8_t> done;
  index_t size() const { return z.rank() ? z.dim(0) : 0; }
  void validate() const {
    require<ShapeError>(z.rank() == 2 && z.dim(0) > 0 && action.rank() == 2 && action.dim(0) == z.dim(0),
                        "ValueData: need z [N, F] and action [N, U], got ", to_string(z.shape()), ", ", to_string(action.shape()));
    require_shape(reward.shape(), {z.dim(0)}, "ValueData reward");
    require_shape(z_next.shape(), z.shape(), "ValueData z_next");
    require<ShapeError>(static_cast<index_t>(done.size()) == z.dim(0), "ValueData: ", done.size(), " done flags for ", z.dim(0),
                        " rows");
    for (const Tensor<T>* t : {&z, &action, &reward, &z_next}) require_finite(*t, "ValueData");
  }
};

struct ExpectileOptions {
  double tau = 0.7, gamma = 0.99, lr = 3e-4;
  double target_rate = 0.005;  ///< Polyak rate of the target Q that V regresses on (IQL); 1 = no target network
  index_t steps = 5000, batch_size = 256, hidden = 128;
  std::uint64_t seed = 0;
  void validate() const {
    require<ConfigError>(tau > 0 && tau < 1 && gamma >= 0 && gamma <= 1 && lr > 0 && steps >= 0 && batch_size >= 1 && hidden >= 1 &&
                             target_rate > 0 && target_rate <= 1,
                         "ExpectileOptions: need tau in (0, 1), gamma in [0, 1], lr > 0, steps >= 0, batch_size and hidden >= 1, "
                         "target_rate in (0, 1]");
  }
};

/// V(z) and Q(z, a) MLPs (two hidden layers, ReLU) trained jointly with eqs. 15-16.
template <class T>
class ExpectileValue {
 public:
  ExpectileValue() = default;
  ExpectileValue(index_t features, index_t actions, const ExpectileOptions& o, Rng& rng)
      : opt_(o), f_(features), u_(actions), v_({features, o.hidden, o.hidden, 1}, nn::Activation::ReLU, rng),
        q_({features + actions, o.hidden, o.hidden, 1}, nn::Activation::ReLU, rng) {
    o.validate();
  }

  index_t features() const { return f_; }
  /// V's parameters as "<prefix>.v.*" and Q's as "<prefix>.q.*".
  void collect_parameters(nn::ParameterList<T>& out, const std::string& prefix) {
    v_.collect_parameters(out, nn::join_name(prefix, "v"));
    q_.collect_parameters(out, nn::join_name(prefix, "q"));
  }

  Tensor<T> values(const Tensor<T>& z) const {
    require<ShapeError>(z.rank() == 2 && z.dim(1) == f_, "ExpectileValue: expected z [N, ", f_, "], got ", to_string(z.shape()));
    nn::NoGradGuard g;
    return v_.forward(z).reshape({z.dim(0)});
  }
  Tensor<T> q_values(const Tensor<T>& z, const Tensor<T>& a) const {
    nn::NoGradGuard g;
    return q_.forward(concat(z, a)).reshape({z.dim(0)});
  }

  /// Runs opt.steps joint steps (Q toward r + gamma V(z'), V toward the tau-expectile of a Polyak-averaged
  /// target copy of Q, as IQL: without it the two bootstrap each other and can diverge); returns the
  /// (L_V, L_Q) history.
  std::vector<std::pair<double, double>> train(const ValueData<T>& d) {
    d.validate();
    require<ShapeError>(d.z.dim(1) == f_ && d.action.dim(1) == u_, "ExpectileValue::train: data features/actions ",
                        d.z.dim(1), "/", d.action.dim(1), " for a model of ", f_, "/", u_);
    auto pv = nn::parameters_of<T>(v_), pq = nn::parameters_of<T>(q_);
    nn::optim::AdamOptions ao;
    ao.lr = opt_.lr;
    nn::optim::Adam<T> adam_v(pv, ao), adam_q(pq, ao);
    nn::MLP<T> q_target = q_;
    const auto pt = nn::parameters_of<T>(q_target);
    Rng rng(opt_.seed, 0x4951u);  // "IQ"
    const index_t B = opt_.batch_size;
    std::vector<std::pair<double, double>> hist;
    for (index_t s = 0; s < opt_.steps; ++s) {
      std::vector<index_t> idx(static_cast<std::size_t>(B));
      for (auto& i : idx) i = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(d.size())));
      const Tensor<T> z = take_rows(d.z, idx), a = take_rows(d.action, idx), zn = take_rows(d.z_next, idx);
      // Q step: target r + gamma (1 - done) V(z'), V held fixed.
      const Tensor<T> vn = values(zn);
      nn::zero_grad(pq);
      const Tensor<T> q = q_.forward(concat(z, a)).reshape({B});
      Tensor<T> dq({B, 1});
      double lq = 0;
      for (index_t b = 0; b < B; ++b) {
        const auto i = static_cast<std::size_t>(idx[static_cast<std::size_t>(b)]);
        const double target = d.reward[idx[static_cast<std::size_t>(b)]] + opt_.gamma * (d.done[i] ? 0.0 : double(vn[b]));
        const double e = q[b] - target;
        lq += e * e / double(B);
        dq[b] = static_cast<T>(2 * e / double(B));
      }
      q_.backward(dq);
      adam_q.step();
      nn::optim::polyak_update(pq, pt, opt_.target_rate);
      // V step: expectile regression toward the target Q(z, a).
      Tensor<T> qt;
      {
        nn::NoGradGuard g;
        qt = q_target.forward(concat(z, a)).reshape({B});
      }
      nn::zero_grad(pv);
      const Tensor<T> v = v_.forward(z).reshape({B});
      Tensor<T> dv({B, 1});
      double lv = 0;
      for (index_t b = 0; b < B; ++b) {
        const double u = qt[b] - v[b];
        lv += expectile_loss(u, opt_.tau) / double(B);
        dv[b] = static_cast<T>(-expectile_loss_derivative(u, opt_.tau) / double(B));
      }
      v_.backward(dv);
      adam_v.step();
      hist.emplace_back(lv, lq);
    }
    return hist;
  }

 private:
  static Tensor<T> concat(const Tensor<T>& z, const Tensor<T>& a) {
    const index_t N = z.dim(0), F = z.dim(1), U = a.dim(1);
    Tensor<T> x({N, F + U});
    for (index_t n = 0; n < N; ++n) {
      std::copy(z.data() + n * F, z.data() + (n + 1) * F, x.data() + n * (F + U));
      std::copy(a.data() + n * U, a.data() + (n + 1) * U, x.data() + n * (F + U) + F);
    }
    return x;
  }
  ExpectileOptions opt_;
  index_t f_ = 0, u_ = 0;
  mutable nn::MLP<T> v_, q_;
};

}  // namespace coordiff::safety
