#pragma once
// MATD3 (Ackermann et al. 2019): TD3 (Fujimoto et al. 2018) per agent with decentralised actors
// pi_i(o_i) and twin centralised critics Q_i(s, a_1..a_N), s = (o_1..o_N): clipped double-Q targets,
// target-policy smoothing, delayed actor and target updates. Network and optimiser settings follow the
// OMAR MPE setup (64-64 ReLU MLPs, tanh actions, last actor layer U(-3e-3, 3e-3), gamma 0.95, tau 0.01,
// gradient-norm clip 0.5, 1e-3 action L2 in the actor loss). This is the behaviour-policy learner that
// produces the offline datasets (OMAR protocol).
//
// Two input conditionings, both off by default: a fixed per-dimension observation standardisation
// (o - mean) / std in front of every actor and critic (what OMAR's BatchNorm on the input converges to,
// without its train/eval mismatch), and a reward scale applied in the critic targets (keeps Q in a range
// the 1e-3 learning rate can follow; it does not change the optimal policy).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/optim/adam.hpp"
#include "coordiff/nn/optim/grad_clip.hpp"
#include "coordiff/nn/optim/polyak.hpp"
#include "coordiff/rl/observation_scaling.hpp"
#include "coordiff/rl/replay_buffer.hpp"

namespace coordiff::rl {

struct Matd3Options {
  index_t hidden = 64;
  double actor_lr = 1e-3, critic_lr = 1e-3;
  double gamma = 0.95, tau = 0.01;
  double policy_noise = 0.2, noise_clip = 0.5;  ///< target-policy smoothing
  index_t policy_delay = 2;
  double exploration_noise = 0.1;  ///< a = clip(pi(o) + N(0, sd), -1, 1) while collecting
  double grad_clip = 0.5;
  double action_l2 = 1e-3;
  double reward_scale = 1.0;  ///< critic targets use reward_scale * r
  index_t batch_size = 1024;
  std::uint64_t seed = 0;
};

struct Matd3Stats {
  double critic_loss = 0;  ///< mean over agents of the last update's twin-critic MSE
  double actor_loss = 0;   ///< of the last actor update
  index_t updates = 0;
};

template <class T = float>
class Matd3 {
 public:
  Matd3(index_t agents, index_t obs_dim, index_t act_dim, Matd3Options opt = {})
      : A_(agents), O_(obs_dim), U_(act_dim), opt_(opt) {
    require<ConfigError>(agents >= 1 && obs_dim >= 1 && act_dim >= 1 && opt.hidden >= 1 && opt.batch_size >= 1 &&
                             opt.policy_delay >= 1 && opt.gamma >= 0 && opt.gamma <= 1 && opt.tau > 0 && opt.tau <= 1 &&
                             opt.reward_scale > 0,
                         "Matd3: invalid sizes or options");
    Rng rng(opt.seed, 0);
    const index_t in_critic = A_ * (O_ + U_), h = opt.hidden;
    for (index_t i = 0; i < A_; ++i) {
      auto n = std::make_unique<Nets>();
      n->actor = make_deterministic_actor<T>(O_, h, U_, rng);
      n->critic1 = nn::MLP<T>({in_critic, h, h, 1}, nn::Activation::ReLU, rng);
      n->critic2 = nn::MLP<T>({in_critic, h, h, 1}, nn::Activation::ReLU, rng);
      n->actor_target = n->actor, n->critic1_target = n->critic1, n->critic2_target = n->critic2;
      n->actor_params = nn::parameters_of<T>(n->actor);
      n->critic_params = nn::parameters_of<T>(n->critic1);
      for (auto& p : nn::parameters_of<T>(n->critic2)) n->critic_params.push_back(p);
      n->actor_opt = std::make_unique<nn::optim::Adam<T>>(n->actor_params, nn::optim::AdamOptions{.lr = opt.actor_lr});
      n->critic_opt = std::make_unique<nn::optim::Adam<T>>(n->critic_params, nn::optim::AdamOptions{.lr = opt.critic_lr});
      agents_.push_back(std::move(n));
    }
  }

  index_t agents() const { return A_; }

  /// Standardise every observation dimension k as (o_k - mean_k) / std_k before the networks see it.
  void set_observation_scaling(const Tensor<T>& mean, const Tensor<T>& std) {
    scaling_.set(mean, std, "Matd3::set_observation_scaling");
  }

  /// Actions [B, A, U] for observations [B, A, O]; with explore, Gaussian noise from Philox(seed, draw).
  Tensor<T> act(const Tensor<T>& obs, bool explore = false, std::uint64_t draw = 0) {
    require_shape(obs.shape(), {obs.dim(0), A_, O_}, "Matd3::act obs");
    require_finite(obs, "Matd3::act obs");
    const Philox gen(opt_.seed ^ 0x6578706c6f7265ull, draw);  // exploration stream
    return policy_actions(standardised(obs), /*target=*/false, [&](index_t b, index_t i, index_t u, double v) {
      if (!explore) return v;
      return std::clamp(v + opt_.exploration_noise * gen.normal(static_cast<std::uint64_t>((b * A_ + i) * U_ + u)), -1.0, 1.0);
    });
  }

  /// One update round: every agent's critics, and (every policy_delay rounds) its actor and the targets.
  Matd3Stats update(const ReplayBuffer<T>& buffer) {
    const std::uint64_t round = static_cast<std::uint64_t>(updates_++);
    TransitionBatch<T> s = buffer.sample(opt_.batch_size, opt_.seed, round);
    s.obs = standardised(s.obs), s.next_obs = standardised(s.next_obs);
    const index_t B = s.obs.dim(0);
    const Tensor<T> next_actions = target_actions(s.next_obs, round);
    const Tensor<T> q_in = critic_input(s.obs, s.actions), q_next_in = critic_input(s.next_obs, next_actions);
    const bool actor_round = round % static_cast<std::uint64_t>(opt_.policy_delay) == 0;
    Matd3Stats st;
    for (index_t i = 0; i < A_; ++i) {
      Nets& n = *agents_[static_cast<std::size_t>(i)];
      Tensor<T> y({B, 1});
      {
        nn::NoGradGuard no_grad;
        const Tensor<T> q1 = n.critic1_target.forward(q_next_in), q2 = n.critic2_target.forward(q_next_in);
        for (index_t b = 0; b < B; ++b)  // clipped double-Q target (TD3 eq. 10)
          y[b] = static_cast<T>(opt_.reward_scale * s.rewards(b, i) + opt_.gamma * (1 - s.done[b]) * std::min(q1[b], q2[b]));
      }
      double loss = 0;
      for (nn::MLP<T>* c : {&n.critic1, &n.critic2}) {
        const Tensor<T> q = c->forward(q_in);
        Tensor<T> dq({B, 1});
        for (index_t b = 0; b < B; ++b) {
          loss += static_cast<double>((q[b] - y[b]) * (q[b] - y[b])) / static_cast<double>(B);
          dq[b] = static_cast<T>(2 * (q[b] - y[b]) / static_cast<T>(B));
        }
        c->backward(dq);
      }
      if (opt_.grad_clip > 0) nn::optim::clip_grad_norm(n.critic_params, opt_.grad_clip);
      n.critic_opt->step();
      nn::zero_grad(n.critic_params);
      st.critic_loss += loss / static_cast<double>(A_);
      if (actor_round) st.actor_loss += actor_step(n, i, s.obs, s.actions) / static_cast<double>(A_);
    }
    if (actor_round)
      for (auto& n : agents_) {
        soft_update(n->actor, n->actor_target);
        soft_update(n->critic1, n->critic1_target);
        soft_update(n->critic2, n->critic2_target);
      }
    st.updates = updates_;
    return st;
  }

  /// A policy snapshot: copies of every agent's actor weights, then the observation mean and std.
  std::vector<Tensor<T>> actor_state() {
    std::vector<Tensor<T>> out;
    for (auto& n : agents_)
      for (auto& p : n->actor_params) out.push_back(p.param->value);
    out.push_back(scaling_.mean());
    out.push_back(scaling_.std());
    return out;
  }
  void set_actor_state(const std::vector<Tensor<T>>& state) {
    const std::size_t expected = static_cast<std::size_t>(A_) * agents_.front()->actor_params.size() + 2;
    require<ShapeError>(state.size() == expected, "Matd3::set_actor_state: ", state.size(), " tensors, expected ", expected);
    std::size_t k = 0;
    for (auto& n : agents_)
      for (auto& p : n->actor_params) {
        require_shape(state[k].shape(), p.param->shape(), "Matd3::set_actor_state '" + p.name + "'");
        p.param->value = state[k++];
      }
    set_observation_scaling(state[k], state[k + 1]);
  }

  /// Parameters under "actor.<i>.*", "critic1.<i>.*", "critic2.<i>.*" (for checkpoints).
  nn::ParameterList<T> parameters() {
    nn::ParameterList<T> out;
    for (index_t i = 0; i < A_; ++i) {
      Nets& n = *agents_[static_cast<std::size_t>(i)];
      n.actor.collect_parameters(out, "actor." + std::to_string(i));
      n.critic1.collect_parameters(out, "critic1." + std::to_string(i));
      n.critic2.collect_parameters(out, "critic2." + std::to_string(i));
    }
    return out;
  }

 private:
  struct Nets {
    nn::MLP<T> actor, critic1, critic2, actor_target, critic1_target, critic2_target;
    nn::ParameterList<T> actor_params, critic_params;
    std::unique_ptr<nn::optim::Adam<T>> actor_opt, critic_opt;
  };

  Tensor<T> standardised(Tensor<T> obs) const { return scaling_(std::move(obs)); }
  Tensor<T> agent_obs(const Tensor<T>& obs, index_t i) const {
    const index_t B = obs.dim(0);
    Tensor<T> o({B, O_});
    for (index_t b = 0; b < B; ++b)
      for (index_t k = 0; k < O_; ++k) o(b, k) = obs(b, i, k);
    return o;
  }
  static Tensor<T> tanh_of(Tensor<T> z) {
    for (auto& v : z) v = std::tanh(v);
    return z;
  }
  /// [B, A*O + A*U]: all observations, then all actions.
  Tensor<T> critic_input(const Tensor<T>& obs, const Tensor<T>& act) const {
    const index_t B = obs.dim(0), W = A_ * (O_ + U_);
    Tensor<T> x({B, W});
    for (index_t b = 0; b < B; ++b) {
      std::copy(obs.data() + b * A_ * O_, obs.data() + (b + 1) * A_ * O_, x.data() + b * W);
      std::copy(act.data() + b * A_ * U_, act.data() + (b + 1) * A_ * U_, x.data() + b * W + A_ * O_);
    }
    return x;
  }
  /// Target-policy smoothing (TD3 eq. 14): clip(pi'(o') + clip(N(0, sd), -c, c), -1, 1).
  Tensor<T> target_actions(const Tensor<T>& next_obs, std::uint64_t round) {
    const Philox gen(opt_.seed ^ 0x736d6f6f7468ull, round);  // smoothing stream
    return policy_actions(next_obs, /*target=*/true, [&](index_t b, index_t i, index_t u, double v) {
      const double eps = std::clamp(opt_.policy_noise * gen.normal(static_cast<std::uint64_t>((b * A_ + i) * U_ + u)),
                                    -opt_.noise_clip, opt_.noise_clip);
      return std::clamp(v + eps, -1.0, 1.0);
    });
  }
  /// tanh(actor_i(o_i)) of every agent (or its target copy), each entry passed through noise(b, i, u, value).
  template <class Noise>
  Tensor<T> policy_actions(const Tensor<T>& obs, bool target, Noise noise) {
    nn::NoGradGuard no_grad;
    const index_t B = obs.dim(0);
    Tensor<T> a({B, A_, U_});
    for (index_t i = 0; i < A_; ++i) {
      Nets& n = *agents_[static_cast<std::size_t>(i)];
      const Tensor<T> ai = tanh_of((target ? n.actor_target : n.actor).forward(agent_obs(obs, i)));
      for (index_t b = 0; b < B; ++b)
        for (index_t u = 0; u < U_; ++u) a(b, i, u) = static_cast<T>(noise(b, i, u, static_cast<double>(ai(b, u))));
    }
    return a;
  }
  /// Deterministic policy gradient through Q1: loss = -mean Q1(s, a with a_i = pi_i(o_i)) + l2 mean pi_i^2.
  double actor_step(Nets& n, index_t i, const Tensor<T>& obs, const Tensor<T>& actions) {
    const index_t B = obs.dim(0);
    const Tensor<T> z = n.actor.forward(agent_obs(obs, i));
    const Tensor<T> t = tanh_of(z);
    Tensor<T> a = actions;
    for (index_t b = 0; b < B; ++b)
      for (index_t u = 0; u < U_; ++u) a(b, i, u) = t(b, u);
    const Tensor<T> q = n.critic1.forward(critic_input(obs, a));
    double loss = 0;
    for (index_t b = 0; b < B; ++b) loss -= static_cast<double>(q[b]) / static_cast<double>(B);
    const Tensor<T> dx = n.critic1.backward(Tensor<T>({B, 1}, static_cast<T>(-1.0 / static_cast<double>(B))));
    nn::zero_grad(n.critic_params);  // the critic is only differentiated through, not updated here
    Tensor<T> dz({B, U_});
    const index_t W = A_ * (O_ + U_), col = A_ * O_ + i * U_;
    for (index_t b = 0; b < B; ++b)
      for (index_t u = 0; u < U_; ++u) {
        const double tv = t(b, u);
        loss += opt_.action_l2 * tv * tv / static_cast<double>(B * U_);
        const double dt = dx[b * W + col + u] + 2 * opt_.action_l2 * tv / static_cast<double>(B * U_);
        dz(b, u) = static_cast<T>(dt * (1 - tv * tv));
      }
    n.actor.backward(dz);
    if (opt_.grad_clip > 0) nn::optim::clip_grad_norm(n.actor_params, opt_.grad_clip);
    n.actor_opt->step();
    nn::zero_grad(n.actor_params);
    return loss;
  }
  void soft_update(nn::MLP<T>& source, nn::MLP<T>& target) {
    nn::optim::polyak_update(nn::parameters_of<T>(source), nn::parameters_of<T>(target), opt_.tau);
  }

  index_t A_, O_, U_;
  Matd3Options opt_;
  ObservationScaling<T> scaling_{O_};
  std::vector<std::unique_ptr<Nets>> agents_;
  index_t updates_ = 0;
};

}  // namespace coordiff::rl
