#pragma once
// A batch of B MPE environments stepped in lockstep (structure of arrays, as JaxMARL's SimpleMPE):
// positions and velocities are Tensor<double> [B, E, 2] with agents first, then landmarks.
//
// Learners and prey. Agents 0..L-1 are the learners (all agents in spread, the adversaries in tag and
// world); agents L..N-1 are prey driven inside the environment, as in OMAR/MADiff where the prey is a
// fixed pretrained policy and is dropped from the agent list (OMAR main.py, MADiff datasets/mpe.py). By default the prey is
// the scripted evader below; set_prey_policy() installs any other policy.
//
// Randomness: environment b of a batch reset with (seed, first_env) draws from the Philox streams keyed
// by (seed, (first_env + b) << 1 | purpose), purpose 0 for the reset and 1 for the scripted prey, with
// counters fixed by (step, prey, candidate). Environment b's episode therefore does not depend on B, on
// thread count, or on the other environments.
//
// Global state: the observations of all N agents (learners, then prey), each zero-padded to the largest
// observation size, concatenated: [B, N * max_obs_dim] (spread 54, tag 64, world 96; og-marl stores the
// OMAR world state the same way, 4 x 24 = 96).
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/env/mpe/physics.hpp"

namespace coordiff::env::mpe {

/// The scripted evader (JaxMARL's FACMAC-style prey): sample `candidates`
/// displacements d uniformly in the unit disc; drop those whose straight path p -> p + d (checked at
/// `waypoints` evenly spaced points) overlaps an obstacle or whose end point leaves the arena
/// [-arena, arena]^2 (our addition, so the prey does not simply run off to infinity); among the rest
/// take the d whose end point is farthest from the nearest adversary (first one on ties). The action
/// is d itself (inside [-1,1]^2). If every candidate is dropped the prey stands still (action 0).
struct ScriptedPrey {
  int candidates = 100;
  int waypoints = 5;
  double arena = 1.0;
};

template <class Scenario>
class BatchedEnv {
 public:
  static constexpr index_t kAgents = Scenario::kAgents;
  static constexpr index_t kLearners = Scenario::kLearners;
  static constexpr index_t kPrey = kAgents - kLearners;
  static constexpr index_t kEntities = Scenario::kEntities;
  static constexpr index_t kObsDim = Scenario::obs_dim(0);   ///< learners' observation size
  static constexpr index_t kMaxObsDim = Scenario::kMaxObsDim;
  static constexpr index_t kStateDim = kAgents * kMaxObsDim;

  /// Writes the prey actions [B, kPrey, 2] (zero-initialised) for the environment's current state.
  using PreyPolicy = std::function<void(const BatchedEnv&, Tensor<double>&)>;

  struct StepResult {
    Tensor<double> obs;          ///< learners' observations after the step [B, L, kObsDim]
    Tensor<double> reward;       ///< learners' rewards [B, L]
    Tensor<double> reward_all;   ///< every agent's reward, prey last [B, N]
    std::vector<std::uint8_t> done;  ///< per environment; all 1 after exactly kEpisodeLength steps
    Tensor<double> cost;         ///< learners' safety costs [B, L] (scenarios with costs, e.g. SafeSpread; else empty)
  };

  /// Whether the scenario defines per-agent safety costs (Scenario::costs).
  static constexpr bool kHasCosts = requires(const double* p, double* c) { Scenario::costs(p, p, c); };

  explicit BatchedEnv(index_t batch, ScriptedPrey prey = {})
      : batch_(batch), prey_(prey), pos_({batch, kEntities, 2}), vel_({batch, kEntities, 2}),
        last_actions_({batch, kAgents, 2}) {
    require<ConfigError>(batch >= 1, "mpe ", Scenario::kName, ": batch size must be >= 1, got ", batch);
    require<ConfigError>(prey.candidates >= 1 && prey.waypoints >= 1 && prey.arena > 0, "mpe ", Scenario::kName,
                         ": scripted prey needs candidates >= 1, waypoints >= 1, arena > 0");
  }

  static constexpr const std::array<EntitySpec, static_cast<std::size_t>(kEntities)>& entities() { return kSpec; }
  static constexpr const char* name() { return Scenario::kName; }

  /// Replaces the scripted prey (no effect in scenarios without prey). An empty function restores it.
  void set_prey_policy(PreyPolicy policy) { policy_ = std::move(policy); }

  /// New episodes: environment b is seeded by (seed, first_env + b); zero velocities (openai L39-54).
  void reset(std::uint64_t seed, std::uint64_t first_env = 0) {
    seed_ = seed;
    first_env_ = first_env;
    vel_.set_zero();
    for (index_t b = 0; b < batch_; ++b) {
      const Philox gen(seed, (first_env + static_cast<std::uint64_t>(b)) << 1);
      double* p = pos_.data() + b * kEntities * 2;
      for (index_t e = 0; e < kEntities; ++e) {
        const double r = e < kAgents ? 1.0 : Scenario::kLandmarkRange;
        for (index_t c = 0; c < 2; ++c)
          p[2 * e + c] = -r + 2.0 * r * gen.uniform(static_cast<std::uint64_t>(2 * e + c));
      }
    }
    start_episode();
  }

  /// Starts an episode from given positions and velocities [B, E, 2] (tests, replaying data). Immovable
  /// entities must have zero velocity. The scripted prey then draws with (seed, first_env).
  void set_state(const Tensor<double>& pos, const Tensor<double>& vel, std::uint64_t seed = 0,
                 std::uint64_t first_env = 0) {
    const std::string where = std::string("mpe ") + Scenario::kName + " set_state: ";
    require_shape(pos.shape(), {batch_, kEntities, 2}, where + "positions");
    require_shape(vel.shape(), {batch_, kEntities, 2}, where + "velocities");
    require_finite(pos, where + "positions");
    require_finite(vel, where + "velocities");
    for (index_t b = 0; b < batch_; ++b)
      for (index_t e = 0; e < kEntities; ++e)
        require<ConfigError>(kSpec[static_cast<std::size_t>(e)].movable || (vel(b, e, 0) == 0 && vel(b, e, 1) == 0),
                             where, "entity ", e, " of environment ", b, " is immovable but has a velocity");
    pos_ = pos;
    vel_ = vel;
    seed_ = seed;
    first_env_ = first_env;
    start_episode();
  }

  /// Advances every environment by one step with the learners' actions [B, L, 2] (not clipped, as OMAR).
  StepResult step(const Tensor<double>& actions) {
    const std::string where = std::string("mpe ") + Scenario::kName + " step " + std::to_string(steps_);
    require<ConfigError>(started_, where, ": call reset() or set_state() first");
    require<ConfigError>(steps_ < kEpisodeLength, where, ": the episode ended after ", kEpisodeLength,
                         " steps; call reset()");
    require_shape(actions.shape(), {batch_, kLearners, 2}, where + ": actions");
    check_actions(actions, 0, kLearners, where);
    last_actions_.set_zero();
    for (index_t b = 0; b < batch_; ++b)
      for (index_t i = 0; i < kLearners; ++i)
        for (index_t c = 0; c < 2; ++c) last_actions_(b, i, c) = actions(b, i, c);
    if constexpr (kPrey > 0) {
      Tensor<double> prey({batch_, kPrey, 2});
      if (policy_) {
        policy_(*this, prey);
        require_shape(prey.shape(), {batch_, kPrey, 2}, where + ": prey policy actions");
        check_actions(prey, kLearners, kAgents, where + " (prey policy)");
      } else {
        scripted_prey_actions(prey);
      }
      for (index_t b = 0; b < batch_; ++b)
        for (index_t i = 0; i < kPrey; ++i)
          for (index_t c = 0; c < 2; ++c) last_actions_(b, kLearners + i, c) = prey(b, i, c);
    }
#pragma omp parallel for schedule(static) if (batch_ >= 256)
    for (index_t b = 0; b < batch_; ++b)
      step_physics(kSpec, kAgents, pos_.data() + b * kEntities * 2, vel_.data() + b * kEntities * 2,
                   last_actions_.data() + b * kAgents * 2);
    ++steps_;
    StepResult r;
    r.obs = observations();
    r.reward_all = rewards();
    r.reward = Tensor<double>({batch_, kLearners});
    for (index_t b = 0; b < batch_; ++b)
      for (index_t i = 0; i < kLearners; ++i) r.reward(b, i) = r.reward_all(b, i);
    r.done.assign(static_cast<std::size_t>(batch_), steps_ >= kEpisodeLength ? 1 : 0);
    if constexpr (kHasCosts) {
      const Tensor<double> c = costs();
      r.cost = Tensor<double>({batch_, kLearners});
      for (index_t b = 0; b < batch_; ++b)
        for (index_t i = 0; i < kLearners; ++i) r.cost(b, i) = c(b, i);
    }
    return r;
  }

  /// Every agent's safety cost in the current state [B, N] (scenarios with costs).
  Tensor<double> costs() const
    requires kHasCosts
  {
    Tensor<double> c({batch_, kAgents});
    for (index_t b = 0; b < batch_; ++b) Scenario::costs(env_pos(b), env_vel(b), c.data() + b * kAgents);
    return c;
  }

  /// Learners' observations [B, L, kObsDim] of the current state.
  Tensor<double> observations() const {
    Tensor<double> o({batch_, kLearners, kObsDim});
    for (index_t b = 0; b < batch_; ++b)
      for (index_t i = 0; i < kLearners; ++i)
        Scenario::observe(env_pos(b), env_vel(b), i, o.data() + (b * kLearners + i) * kObsDim);
    return o;
  }
  /// Observations of agent `agent` (learner or prey) [B, obs_dim(agent)].
  Tensor<double> agent_observations(index_t agent) const {
    require<ConfigError>(agent >= 0 && agent < kAgents, "mpe ", Scenario::kName, ": agent ", agent,
                         " out of range [0, ", kAgents, ")");
    const index_t d = Scenario::obs_dim(agent);
    Tensor<double> o({batch_, d});
    for (index_t b = 0; b < batch_; ++b) Scenario::observe(env_pos(b), env_vel(b), agent, o.data() + b * d);
    return o;
  }
  /// Every agent's observation zero-padded to kMaxObsDim: [B, N, kMaxObsDim].
  Tensor<double> all_observations() const {
    Tensor<double> o({batch_, kAgents, kMaxObsDim});
    for (index_t b = 0; b < batch_; ++b)
      for (index_t i = 0; i < kAgents; ++i)
        Scenario::observe(env_pos(b), env_vel(b), i, o.data() + (b * kAgents + i) * kMaxObsDim);
    return o;
  }
  /// Global state [B, N * kMaxObsDim] (see the header comment).
  Tensor<double> state() const { return all_observations().reshape({batch_, kStateDim}); }
  /// Every agent's reward on the current state [B, N] (rewards are functions of the post-step state).
  Tensor<double> rewards() const {
    Tensor<double> r({batch_, kAgents});
    for (index_t b = 0; b < batch_; ++b) Scenario::rewards(env_pos(b), env_vel(b), r.data() + b * kAgents);
    return r;
  }

  const Tensor<double>& positions() const { return pos_; }
  const Tensor<double>& velocities() const { return vel_; }
  /// Actions of the last step for every agent, prey included [B, N, 2].
  const Tensor<double>& last_actions() const { return last_actions_; }
  index_t batch() const { return batch_; }
  index_t steps_taken() const { return steps_; }
  bool done() const { return steps_ >= kEpisodeLength; }
  std::uint64_t seed() const { return seed_; }
  std::uint64_t first_env() const { return first_env_; }

 private:
  static constexpr std::array<EntitySpec, static_cast<std::size_t>(kEntities)> kSpec = Scenario::entities();

  const double* env_pos(index_t b) const { return pos_.data() + b * kEntities * 2; }
  const double* env_vel(index_t b) const { return vel_.data() + b * kEntities * 2; }

  void start_episode() {
    steps_ = 0;
    started_ = true;
    last_actions_.set_zero();
  }

  void check_actions(const Tensor<double>& a, index_t agent0, index_t agent1, const std::string& where) const {
    for (index_t b = 0; b < batch_; ++b)
      for (index_t i = agent0; i < agent1; ++i)
        for (index_t c = 0; c < 2; ++c) {
          const double v = a(b, i - agent0, c);
          if (!std::isfinite(v))
            throw NumericError(detail::concat(where, ": action of environment ", b, ", agent ", i, ", component ", c,
                                              " is not finite (", v, ")"));
        }
  }

  void scripted_prey_actions(Tensor<double>& out) const {
    const auto K = static_cast<std::uint64_t>(prey_.candidates);
#pragma omp parallel for schedule(static) if (batch_ >= 64)
    for (index_t b = 0; b < batch_; ++b) {
      const Philox gen(seed_, ((first_env_ + static_cast<std::uint64_t>(b)) << 1) | 1u);
      const double* p = env_pos(b);
      for (index_t q = 0; q < kPrey; ++q) {
        const index_t self = kLearners + q;
        const double* ps = p + 2 * self;
        const double rs = kSpec[static_cast<std::size_t>(self)].size;
        double best = -std::numeric_limits<double>::infinity(), ax = 0.0, ay = 0.0;
        const std::uint64_t base = (static_cast<std::uint64_t>(steps_) * kPrey + static_cast<std::uint64_t>(q)) * K * 2;
        for (std::uint64_t k = 0; k < K; ++k) {
          const double len = std::sqrt(gen.uniform(base + 2 * k));
          const double ang = 6.283185307179586 * gen.uniform(base + 2 * k + 1);
          const double dx = len * std::cos(ang), dy = len * std::sin(ang);
          const double tx = ps[0] + dx, ty = ps[1] + dy;
          if (std::abs(tx) > prey_.arena || std::abs(ty) > prey_.arena) continue;
          bool blocked = false;
          for (index_t e = kAgents; e < kEntities && !blocked; ++e) {
            const auto& s = kSpec[static_cast<std::size_t>(e)];
            if (!s.collide) continue;
            for (int w = 1; w <= prey_.waypoints && !blocked; ++w) {
              const double f = static_cast<double>(w) / prey_.waypoints;
              const double wp[2] = {ps[0] + f * dx, ps[1] + f * dy};
              blocked = is_collision(wp, p + 2 * e, rs, s.size);
            }
          }
          if (blocked) continue;
          double nearest = std::numeric_limits<double>::infinity();
          const double t[2] = {tx, ty};
          for (index_t a = 0; a < kLearners; ++a) nearest = std::min(nearest, distance(t, p + 2 * a));
          if (nearest > best) best = nearest, ax = dx, ay = dy;
        }
        out(b, q, 0) = ax;
        out(b, q, 1) = ay;
      }
    }
  }

  index_t batch_;
  ScriptedPrey prey_;
  Tensor<double> pos_, vel_, last_actions_;
  PreyPolicy policy_;
  std::uint64_t seed_ = 0, first_env_ = 0;
  index_t steps_ = 0;
  bool started_ = false;
};

}  // namespace coordiff::env::mpe
