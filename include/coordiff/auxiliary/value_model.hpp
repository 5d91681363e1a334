#pragma once
// Per-agent state value V(o^i), shared by all agents, learned by TD(0) on the dataset's own transitions
// (MASTARS eq. 12, "SARSA-style": only observed transitions, so no extrapolation to unseen actions):
//   minimise (V(o^i) - (r^i + gamma (1 - done) V'(o'^i)))^2,
// with V' a Polyak-averaged target copy. MASTARS reads subgoals g^i = argmax_t V(o^i_t) and the
// last-observation-value order (eq. 7) from it.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <vector>

#include "coordiff/auxiliary/regressor.hpp"
#include "coordiff/nn/optim/polyak.hpp"
#include "coordiff/auxiliary/transitions.hpp"

namespace coordiff::auxiliary {

struct ValueFitOptions {
  FitOptions fit{};
  double gamma = 0.99;
  double tau = 0.005;  ///< target network Polyak rate per step
};

/// Held-out TD errors after fitting. relative_td_error = RMS TD error / mean |V| (the "normalised TD
/// error" MASTARS reports converging to about 1 %).
struct ValueFitReport {
  double heldout_td_mse = 0, relative_td_error = 0, mean_abs_value = 0, seconds = 0;
  index_t train_rows = 0, heldout_rows = 0, steps = 0;
};

template <class T = float>
class ValueModel {
 public:
  ValueModel() = default;
  ValueModel(index_t obs_dim, index_t hidden = 256, std::uint64_t seed = 0) : O_(obs_dim), net_(obs_dim, 1, hidden, seed) {}

  ValueFitReport fit(const Transitions<T>& t, const ValueFitOptions& opt, std::ostream* log = nullptr) {
    opt.fit.validate("ValueModel::fit");
    require<ConfigError>(opt.gamma >= 0 && opt.gamma < 1 && opt.tau > 0 && opt.tau <= 1,
                         "ValueModel::fit: need 0 <= gamma < 1 and 0 < tau <= 1");
    const index_t N = t.size(), A = t.agents();
    require_shape(t.obs.shape(), {N, A, O_}, "ValueModel::fit observations");
    require_finite(t.rewards, "ValueModel::fit rewards");
    const auto start = std::chrono::steady_clock::now();
    // Rows are (transition, agent) pairs; the split is by transition so no held-out step is trained on.
    const auto [train, held] = detail::split_rows(N, opt.fit.heldout_fraction, opt.fit.seed);
    Regressor<T> target = net_;
    auto target_params = target.parameters();
    const Philox gen(opt.fit.seed ^ 0x74646d62ull, 0);
    const index_t Bt = opt.fit.batch_size;
    std::vector<index_t> pick(static_cast<std::size_t>(Bt));
    for (index_t s = 0; s < opt.fit.steps; ++s) {
      for (index_t k = 0; k < Bt; ++k)
        pick[static_cast<std::size_t>(k)] = train[gen.bits(static_cast<std::uint64_t>(s * Bt + k)) % train.size()];
      Tensor<T> o, y;
      td_batch(t, pick, target, opt.gamma, o, y);
      const double loss = net_.train_step(o, y, opt.fit.lr);
      nn::optim::polyak_update(net_.parameters(), target_params, opt.tau);
      if (log && opt.fit.log_every > 0 && (s + 1) % opt.fit.log_every == 0)
        *log << "value model step " << s + 1 << "/" << opt.fit.steps << "  TD loss " << loss << std::endl;
    }
    ValueFitReport r;
    r.steps = opt.fit.steps;
    r.train_rows = static_cast<index_t>(train.size()) * A, r.heldout_rows = static_cast<index_t>(held.size()) * A;
    const std::vector<index_t>& probe = held.empty() ? train : held;
    Tensor<T> o, y;
    td_batch(t, probe, net_, opt.gamma, o, y);  // TD error of the final network against itself
    const Tensor<T> v = net_(o);
    double se = 0, av = 0;
    for (index_t i = 0; i < v.size(); ++i) se += (static_cast<double>(v[i]) - y[i]) * (static_cast<double>(v[i]) - y[i]), av += std::abs(v[i]);
    r.heldout_td_mse = se / static_cast<double>(v.size());
    r.mean_abs_value = av / static_cast<double>(v.size());
    r.relative_td_error = r.mean_abs_value > 0 ? std::sqrt(r.heldout_td_mse) / r.mean_abs_value : 0.0;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
  }

  /// Values [N] of observations [N, O].
  Tensor<T> operator()(const Tensor<T>& obs) { return net_(obs).reshape({obs.dim(0)}); }

  /// Values of windows [B, H, A, O]: [B, H, A] (Batch::values for subgoals and the LOV order).
  Tensor<T> values(const Tensor<T>& windows) {
    require<ShapeError>(windows.rank() == 4 && windows.dim(3) == O_, "ValueModel::values: windows must be [B, H, A, ", O_,
                        "], got ", to_string(windows.shape()));
    return net_(windows.reshape({-1, O_})).reshape({windows.dim(0), windows.dim(1), windows.dim(2)});
  }

  index_t obs_dim() const { return O_; }
  nn::ParameterList<T> parameters() { return net_.parameters(); }

 private:
  /// Inputs o^i and TD targets r^i + gamma (1 - done) V'(o'^i) for transitions `rows`, all agents.
  void td_batch(const Transitions<T>& t, const std::vector<index_t>& rows, Regressor<T>& target, double gamma, Tensor<T>& o,
                Tensor<T>& y) const {
    const index_t A = t.agents(), n = static_cast<index_t>(rows.size()) * A;
    o = Tensor<T>({n, O_});
    Tensor<T> next({n, O_});
    for (std::size_t k = 0; k < rows.size(); ++k)
      for (index_t a = 0; a < A; ++a) {
        const index_t row = static_cast<index_t>(k) * A + a;
        std::copy(&t.obs(rows[k], a, 0), &t.obs(rows[k], a, 0) + O_, o.data() + row * O_);
        std::copy(&t.next_obs(rows[k], a, 0), &t.next_obs(rows[k], a, 0) + O_, next.data() + row * O_);
      }
    const Tensor<T> v_next = target(next);
    y = Tensor<T>({n, 1});
    for (std::size_t k = 0; k < rows.size(); ++k)
      for (index_t a = 0; a < A; ++a) {
        const index_t row = static_cast<index_t>(k) * A + a;
        y[row] = static_cast<T>(t.rewards(rows[k], a) + gamma * (1 - static_cast<double>(t.done[rows[k]])) * v_next[row]);
      }
  }
  index_t O_ = 0;
  Regressor<T> net_;
};

}  // namespace coordiff::auxiliary
