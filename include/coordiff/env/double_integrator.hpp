#pragma once
// Multi-agent double-integrator navigation for paper 001's safety experiments: N planar agents (N >= 2,
// 4-16 in the experiments) drive to their goals among static circular obstacles, B environments at once.
//   state of agent i: position p_i, velocity v_i; action a_i (acceleration, clipped to [-a_max, a_max]^2);
//   exact zero-order-hold step: p <- p + v dt + a dt^2/2, v <- v + a dt  (dt = 0.1).
// Reward r_i = -|g_i - p_i| dt (progress toward the goal). Cost c_i = 1 where agent i is in the dangerous
// set of Definition 3 (safety/safe_set.hpp) with b = a_max (the largest deceleration), kappa_s = two
// agent radii plus a gap and V the closing speed: |p_i - p_j| < V^2/(2 a_max) + kappa_s, or the agent's
// disc overlaps an obstacle.
// Observation of agent i (4 + 2 + 4K + 3J): [p_i, v_i, g_i - p_i, the K nearest other agents' (p_j - p_i,
// v_j - v_i), the J nearest obstacles' (centre - p_i, radius)], K = min(N - 1, 3), J = min(obstacles, 2);
// nearest first.
// Reset draws goals and starts uniformly in the arena [-R, R]^2, R = arena_per_agent * sqrt(N), by
// rejection so that every agent starts safe and no goal lies in an obstacle; from Philox keyed by the seed
// and the environment index, so environment e of a batch is the same whatever the batch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/safety/safe_set.hpp"

namespace coordiff::env {

struct DoubleIntegratorConfig {
  index_t agents = 4;
  index_t obstacles = 4;
  index_t episode_length = 80;
  double dt = 0.1;
  double max_accel = 2.0;         ///< a_max (per axis), also Definition 3's b
  double agent_radius = 0.1;
  double gap = 0.05;              ///< kappa_s = 2 agent_radius + gap
  double obstacle_radius = 0.3;
  double arena_per_agent = 1.0;   ///< arena half-width R = arena_per_agent * sqrt(N)

  void validate() const {
    require<ConfigError>(agents >= 2 && obstacles >= 0 && episode_length >= 1, "DoubleIntegrator: need agents >= 2, "
                         "obstacles >= 0, episode_length >= 1; got ", agents, ", ", obstacles, ", ", episode_length);
    require<ConfigError>(dt > 0 && max_accel > 0 && agent_radius > 0 && gap >= 0 && obstacle_radius > 0 && arena_per_agent > 0,
                         "DoubleIntegrator: dt, max_accel, agent_radius, obstacle_radius, arena_per_agent must be > 0 and "
                         "gap >= 0");
  }
  safety::SafeDistance safe_distance() const { return {max_accel, 2 * agent_radius + gap}; }
  double arena() const { return arena_per_agent * std::sqrt(static_cast<double>(agents)); }
  index_t neighbours() const { return std::min<index_t>(agents - 1, 3); }
  index_t seen_obstacles() const { return std::min<index_t>(obstacles, 2); }
  index_t obs_dim() const { return 6 + 4 * neighbours() + 3 * seen_obstacles(); }
};

class DoubleIntegratorEnv {
 public:
  struct StepResult {
    Tensor<double> obs;     ///< [B, N, obs_dim]
    Tensor<double> reward;  ///< [B, N]
    Tensor<double> cost;    ///< [B, N], 1 = in the dangerous set after the step
    bool done = false;      ///< after episode_length steps
  };

  DoubleIntegratorEnv(index_t batch, DoubleIntegratorConfig cfg)
      : cfg_(cfg), batch_(batch), pos_({batch, cfg.agents, 2}), vel_({batch, cfg.agents, 2}), goal_({batch, cfg.agents, 2}),
        obstacles_({batch, cfg.obstacles, 2}) {
    cfg_.validate();
    require<ConfigError>(batch >= 1, "DoubleIntegrator: batch size must be >= 1, got ", batch);
  }

  const DoubleIntegratorConfig& config() const { return cfg_; }
  index_t batch() const { return batch_; }
  index_t agents() const { return cfg_.agents; }
  index_t steps_taken() const { return steps_; }
  const Tensor<double>& positions() const { return pos_; }
  const Tensor<double>& velocities() const { return vel_; }
  const Tensor<double>& goals() const { return goal_; }
  const Tensor<double>& obstacle_centres() const { return obstacles_; }

  void reset(std::uint64_t seed, std::uint64_t first_env = 0) {
    const index_t N = cfg_.agents, M = cfg_.obstacles;
    const double R = cfg_.arena(), kappa = cfg_.safe_distance().stopped_gap;
    vel_.set_zero();
    for (index_t b = 0; b < batch_; ++b) {
      const Philox gen(seed, first_env + static_cast<std::uint64_t>(b));
      std::uint64_t k = 0;
      const auto draw = [&] { return -R + 2 * R * gen.uniform(k++); };
      const auto place = [&](auto&& ok, double& x, double& y) {
        for (int tries = 0; tries < 10000; ++tries) {
          x = draw(), y = draw();
          if (ok(x, y)) return;
        }
        throw ConfigError(detail::concat("DoubleIntegrator: cannot place agents, goals and obstacles apart in the arena (", N,
                                         " agents, ", M, " obstacles, half-width ", R, "); enlarge arena_per_agent"));
      };
      for (index_t m = 0; m < M; ++m)
        place([&](double, double) { return true; }, obstacles_(b, m, 0), obstacles_(b, m, 1));
      const auto clear_of_obstacles = [&](double x, double y, double extra) {
        for (index_t m = 0; m < M; ++m)
          if (std::hypot(x - obstacles_(b, m, 0), y - obstacles_(b, m, 1)) < cfg_.obstacle_radius + cfg_.agent_radius + extra)
            return false;
        return true;
      };
      for (index_t i = 0; i < N; ++i) {
        place([&](double x, double y) {
          if (!clear_of_obstacles(x, y, cfg_.gap)) return false;
          for (index_t j = 0; j < i; ++j)
            if (std::hypot(x - pos_(b, j, 0), y - pos_(b, j, 1)) < 2 * kappa) return false;
          return true;
        }, pos_(b, i, 0), pos_(b, i, 1));
        place([&](double x, double y) {
          if (!clear_of_obstacles(x, y, cfg_.gap)) return false;
          for (index_t j = 0; j < i; ++j)
            if (std::hypot(x - goal_(b, j, 0), y - goal_(b, j, 1)) < 2 * kappa) return false;
          return true;
        }, goal_(b, i, 0), goal_(b, i, 1));
      }
    }
    steps_ = 0;
    started_ = true;
  }

  /// Sets every environment's state: positions, velocities, goals [B, N, 2] and obstacle centres [B, M, 2].
  void set_state(const Tensor<double>& pos, const Tensor<double>& vel, const Tensor<double>& goals,
                 const Tensor<double>& obstacles) {
    require_shape(pos.shape(), pos_.shape(), "DoubleIntegrator set_state: positions");
    require_shape(vel.shape(), vel_.shape(), "DoubleIntegrator set_state: velocities");
    require_shape(goals.shape(), goal_.shape(), "DoubleIntegrator set_state: goals");
    require_shape(obstacles.shape(), obstacles_.shape(), "DoubleIntegrator set_state: obstacles");
    for (const Tensor<double>* t : {&pos, &vel, &goals, &obstacles}) require_finite(*t, "DoubleIntegrator set_state");
    pos_ = pos, vel_ = vel, goal_ = goals, obstacles_ = obstacles;
    steps_ = 0;
    started_ = true;
  }

  /// actions [B, N, 2] (accelerations; clipped to +-max_accel).
  StepResult step(const Tensor<double>& actions) {
    require<ConfigError>(started_, "DoubleIntegrator: call reset() first");
    require<ConfigError>(steps_ < cfg_.episode_length, "DoubleIntegrator: the episode ended after ", cfg_.episode_length,
                         " steps; call reset()");
    require_shape(actions.shape(), {batch_, cfg_.agents, 2}, "DoubleIntegrator step " + std::to_string(steps_) + ": actions");
    require_finite(actions, "DoubleIntegrator step " + std::to_string(steps_) + ": actions");
    const double dt = cfg_.dt, amax = cfg_.max_accel;
    for (index_t i = 0; i < pos_.size(); ++i) {
      const double a = std::clamp(actions[i], -amax, amax);
      pos_[i] += vel_[i] * dt + 0.5 * a * dt * dt;
      vel_[i] += a * dt;
    }
    ++steps_;
    StepResult r;
    r.obs = observations();
    r.reward = rewards();
    r.cost = costs();
    r.done = steps_ >= cfg_.episode_length;
    return r;
  }

  Tensor<double> rewards() const {
    Tensor<double> r({batch_, cfg_.agents});
    for (index_t b = 0; b < batch_; ++b)
      for (index_t i = 0; i < cfg_.agents; ++i)
        r(b, i) = -std::hypot(goal_(b, i, 0) - pos_(b, i, 0), goal_(b, i, 1) - pos_(b, i, 1)) * cfg_.dt;
    return r;
  }

  /// Definition 3 margins [B, N] (negative = dangerous).
  Tensor<double> margins() const {
    Tensor<double> m({batch_, cfg_.agents});
    const auto rule = cfg_.safe_distance();
    for (index_t b = 0; b < batch_; ++b) {
      std::vector<safety::Hazard> hz;
      for (index_t o = 0; o < cfg_.obstacles; ++o) hz.push_back({obstacles_(b, o, 0), obstacles_(b, o, 1), cfg_.obstacle_radius});
      const double* p = pos_.data() + b * cfg_.agents * 2;
      const double* v = vel_.data() + b * cfg_.agents * 2;
      for (index_t i = 0; i < cfg_.agents; ++i) m(b, i) = safety::agent_margin(p, v, cfg_.agents, i, rule, hz, cfg_.agent_radius);
    }
    return m;
  }
  Tensor<double> costs() const {
    Tensor<double> c = margins();
    for (auto& v : c) v = v < 0 ? 1.0 : 0.0;
    return c;
  }

  Tensor<double> observations() const {
    const index_t N = cfg_.agents, K = cfg_.neighbours(), J = cfg_.seen_obstacles(), D = cfg_.obs_dim();
    Tensor<double> o({batch_, N, D});
    std::vector<index_t> order;
    for (index_t b = 0; b < batch_; ++b)
      for (index_t i = 0; i < N; ++i) {
        double* out = o.data() + (b * N + i) * D;
        const double px = pos_(b, i, 0), py = pos_(b, i, 1);
        *out++ = px, *out++ = py, *out++ = vel_(b, i, 0), *out++ = vel_(b, i, 1);
        *out++ = goal_(b, i, 0) - px, *out++ = goal_(b, i, 1) - py;
        order.resize(static_cast<std::size_t>(N));
        std::iota(order.begin(), order.end(), index_t(0));
        const auto d2 = [&](index_t j) { return std::pow(pos_(b, j, 0) - px, 2) + std::pow(pos_(b, j, 1) - py, 2); };
        std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t c) {
          return a == i ? false : c == i ? true : d2(a) < d2(c);
        });
        for (index_t k = 0; k < K; ++k) {
          const index_t j = order[static_cast<std::size_t>(k)];
          *out++ = pos_(b, j, 0) - px, *out++ = pos_(b, j, 1) - py;
          *out++ = vel_(b, j, 0) - vel_(b, i, 0), *out++ = vel_(b, j, 1) - vel_(b, i, 1);
        }
        order.resize(static_cast<std::size_t>(cfg_.obstacles));
        std::iota(order.begin(), order.end(), index_t(0));
        const auto o2 = [&](index_t m) { return std::pow(obstacles_(b, m, 0) - px, 2) + std::pow(obstacles_(b, m, 1) - py, 2); };
        std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t c) { return o2(a) < o2(c); });
        for (index_t k = 0; k < J; ++k) {
          const index_t m = order[static_cast<std::size_t>(k)];
          *out++ = obstacles_(b, m, 0) - px, *out++ = obstacles_(b, m, 1) - py, *out++ = cfg_.obstacle_radius;
        }
      }
    return o;
  }

 private:
  DoubleIntegratorConfig cfg_;
  index_t batch_ = 1, steps_ = 0;
  bool started_ = false;
  Tensor<double> pos_, vel_, goal_, obstacles_;
};

/// The Definition 3 costs [N, H, A] of observation windows [N, H, A, obs_dim] (raw, not normalised), each
/// agent's from its own observation, as the decentralised CBF sees it: the seen agents' relative positions
/// and velocities and the seen obstacles (centre and radius). The closing speed and the distances are
/// translation-invariant, so this equals the environment's cost when every other agent is seen (N <= 4);
/// with more agents, pairs beyond the 3 nearest are not counted. For windows a model generated, it says
/// whether the agent believes itself safe at each step.
template <class T>
Tensor<T> double_integrator_costs_from_observations(const Tensor<T>& w, const DoubleIntegratorConfig& cfg) {
  cfg.validate();
  const index_t K = cfg.neighbours(), J = cfg.seen_obstacles(), D = cfg.obs_dim();
  require<ShapeError>(w.rank() == 4 && w.dim(2) == cfg.agents && w.dim(3) == D,
                      "double_integrator_costs_from_observations: expected windows [N, H, ", cfg.agents, ", ", D, "], got ",
                      to_string(w.shape()));
  const index_t N = w.dim(0), H = w.dim(1), A = w.dim(2);
  const auto rule = cfg.safe_distance();
  Tensor<T> c({N, H, A});
  std::vector<double> pos(static_cast<std::size_t>(2 * (K + 1)), 0.0), vel(pos.size(), 0.0);  // the agent itself at 0
  std::vector<safety::Hazard> hazards(static_cast<std::size_t>(J));
  for (index_t n = 0; n < N; ++n)
    for (index_t t = 0; t < H; ++t)
      for (index_t i = 0; i < A; ++i) {
        const T* o = w.data() + ((n * H + t) * A + i) * D + 6;  // past p_i, v_i, g_i - p_i
        for (index_t k = 0; k < K; ++k, o += 4) {
          const auto at = static_cast<std::size_t>(2 * (k + 1));
          pos[at] = o[0], pos[at + 1] = o[1], vel[at] = o[2], vel[at + 1] = o[3];
        }
        for (index_t m = 0; m < J; ++m, o += 3) hazards[static_cast<std::size_t>(m)] = {double(o[0]), double(o[1]), double(o[2])};
        c(n, t, i) = safety::agent_margin(pos.data(), vel.data(), K + 1, 0, rule, hazards, cfg.agent_radius) < 0 ? T(1) : T(0);
      }
  return c;
}

/// Continuous-time LQR for one axis of the double integrator (x'' = u, cost integral of q_p x^2 + q_v v^2
/// + r u^2): u = -(k_p x + k_d v) with k_p = sqrt(q_p / r), k_d = sqrt(q_v / r + 2 k_p), the closed-form
/// solution of the algebraic Riccati equation.
struct LqrGains {
  double kp = 0, kd = 0;
};
inline LqrGains double_integrator_lqr(double q_p, double q_v, double r) {
  require<ConfigError>(q_p > 0 && q_v >= 0 && r > 0, "double_integrator_lqr: need q_p > 0, q_v >= 0, r > 0");
  const double kp = std::sqrt(q_p / r);
  return {kp, std::sqrt(q_v / r + 2 * kp)};
}

/// The nominal controller: LQR toward each agent's goal, a = k_p (g - p) - k_d v, clipped to +-a_max. It
/// ignores the other agents and the obstacles, so crossing agents come close: the behaviour data holds
/// both safe and unsafe segments.
inline Tensor<double> nominal_actions(const DoubleIntegratorEnv& env, LqrGains k) {
  const auto& p = env.positions();
  const auto& v = env.velocities();
  const auto& g = env.goals();
  Tensor<double> a(p.shape());
  const double amax = env.config().max_accel;
  for (index_t i = 0; i < a.size(); ++i) a[i] = std::clamp(k.kp * (g[i] - p[i]) - k.kd * v[i], -amax, amax);
  return a;
}

}  // namespace coordiff::env
