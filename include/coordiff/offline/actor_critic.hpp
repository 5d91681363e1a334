#pragma once
// Offline multi-agent actor-critic: decentralised actors pi_i(o_i) (64-64 ReLU, tanh) and twin critics
// with clipped double-Q targets, trained from a fixed buffer of transitions. Three choices make the
// published learners (learners.hpp):
//   * critic layout: one Q_i(o_i, a_i) per agent (OMAR, MA-TD3+BC) or one centralised Q(s, a_1..a_N)
//     shared by all agents, s = (o_1..o_N) (CFCQL);
//   * a conservative penalty on the critics (cql_alpha > 0; counterfactual over each agent the critic
//     sees, conservative.hpp);
//   * the actor objective, a compile-time policy (objective/).
// Settings default to OMAR's MPE setup (Pan et al. 2022): lr 0.01, gamma 0.95, tau 0.01, batch 1024,
// gradient-norm clip 0.5, 1e-3 action L2 in the actor loss, last actor layer U(-3e-3, 3e-3). The
// reference networks' BatchNorm on their inputs is replaced by a fixed standardisation of the
// observations computed from the dataset (what BatchNorm converges to, without its train/eval mismatch).
// CriticInputs::BatchStatistics adds what that replacement loses for the critics: as the reference's
// training-mode BatchNorm1d does, every critic call (TD target, data rows, penalty rows, actor rows)
// standardises each input column, actions included, over the rows of that call, and the actor's gradient
// flows through those statistics. A pure policy-gradient actor needs it (CFCQL): the batch statistics
// remove the part of dQ/dpi shared by the whole batch and the part that only spreads the actions
// outwards, which otherwise drive every actor into a saturated corner within a few rounds.
//
// The actor state (actor_state) has the layout of rl::Matd3's, so mpe::snapshot_policy evaluates it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "coordiff/core/philox.hpp"
#include "coordiff/nn/batch_norm.hpp"
#include "coordiff/nn/mlp.hpp"
#include "coordiff/nn/optim/adam.hpp"
#include "coordiff/nn/optim/grad_clip.hpp"
#include "coordiff/nn/optim/polyak.hpp"
#include "coordiff/offline/conservative.hpp"
#include "coordiff/offline/counterfactual_pass.hpp"
#include "coordiff/offline/objective/objective.hpp"
#include "coordiff/rl/observation_scaling.hpp"
#include "coordiff/rl/replay_buffer.hpp"

namespace coordiff::offline {

enum class CriticLayout { Decentralised, Centralised };
/// How a critic's inputs are scaled: Fixed (observations standardised with the dataset's moments, actions
/// as they are) or BatchStatistics (in addition, every column standardised over each call's rows).
enum class CriticInputs { Fixed, BatchStatistics };

struct ActorCriticOptions {
  index_t hidden = 64;
  double actor_lr = 1e-2, critic_lr = 1e-2;
  double gamma = 0.95, tau = 0.01;
  index_t batch_size = 1024;
  double grad_clip = 0.5;     ///< gradient-norm clip of every update (0 = off)
  double action_l2 = 1e-3;    ///< weight of mean pi^2 in the actor loss
  CriticLayout critic = CriticLayout::Decentralised;
  CriticInputs critic_inputs = CriticInputs::Fixed;
  double target_noise = 0;    ///< sd of the Gaussian added to target actions (TD3 smoothing; 0 = off)
  double target_noise_clip = std::numeric_limits<double>::infinity();
  index_t policy_delay = 1;   ///< actor and target updates every policy_delay rounds
  index_t critic_updates = 1; ///< critic updates (fresh batches) per round; CFCQL's ca_ratio
  double cql_alpha = 0;       ///< conservative penalty weight; 0 = off
  index_t cql_samples = 10;   ///< uniform actions per agent and row
  double cql_temperature = 1;
  std::uint64_t seed = 0;
};

struct UpdateStats {
  double critic_loss = 0;  ///< TD loss (sum of both heads' MSE), mean over critics, last critic update
  double penalty = 0;      ///< conservative penalty, mean over critics and heads
  double actor_loss = 0;   ///< mean over agents, last actor round
  double q_mean = 0;       ///< mean Q1 at the data actions
  index_t rounds = 0;
};

template <class T, class Objective>
class ActorCritic {
  static_assert(objective::check_actor_objective<Objective, T>());

 public:
  ActorCritic(index_t agents, index_t obs_dim, index_t act_dim, ActorCriticOptions opt = {}, Objective objective = {})
      : A_(agents), O_(obs_dim), U_(act_dim), opt_(opt), objective_(objective) {
    require<ConfigError>(agents >= 1 && obs_dim >= 1 && act_dim >= 1 && opt.hidden >= 1 && opt.batch_size >= 1 &&
                             opt.policy_delay >= 1 && opt.critic_updates >= 1 && opt.gamma >= 0 && opt.gamma <= 1 &&
                             opt.tau > 0 && opt.tau <= 1 && opt.cql_alpha >= 0 && opt.cql_samples >= 1 &&
                             opt.target_noise >= 0 && opt.actor_lr > 0 && opt.critic_lr > 0,
                         "offline::ActorCritic: invalid sizes or options");
    Rng rng(opt.seed, 0);
    const index_t h = opt.hidden;
    for (index_t i = 0; i < A_; ++i) {
      auto a = std::make_unique<Actor>();
      a->net = rl::make_deterministic_actor<T>(O_, h, U_, rng);
      a->target = a->net;
      a->params = nn::parameters_of<T>(a->net);
      a->opt = std::make_unique<nn::optim::Adam<T>>(a->params, nn::optim::AdamOptions{.lr = opt.actor_lr});
      actors_.push_back(std::move(a));
    }
    for (index_t c = 0; c < critic_count(); ++c) {
      auto q = std::make_unique<Critic>();
      q->head1 = nn::MLP<T>({critic_width(), h, h, 1}, nn::Activation::ReLU, rng);
      q->head2 = nn::MLP<T>({critic_width(), h, h, 1}, nn::Activation::ReLU, rng);
      q->target1 = q->head1, q->target2 = q->head2;
      q->norm = nn::BatchNorm1d<T>(critic_width());
      q->params = nn::parameters_of<T>(q->head1);
      for (auto& p : nn::parameters_of<T>(q->head2)) q->params.push_back(p);
      q->opt = std::make_unique<nn::optim::Adam<T>>(q->params, nn::optim::AdamOptions{.lr = opt.critic_lr});
      critics_.push_back(std::move(q));
    }
  }

  index_t agents() const { return A_; }
  const ActorCriticOptions& options() const { return opt_; }
  const Objective& objective() const { return objective_; }

  /// Standardise observation dimension k as (o_k - mean_k) / std_k before any network sees it.
  void set_observation_scaling(const Tensor<T>& mean, const Tensor<T>& std) {
    scaling_.set(mean, std, "ActorCritic::set_observation_scaling");
  }

  /// Deterministic actions [B, A, U] for observations [B, A, O].
  Tensor<T> act(const Tensor<T>& obs) {
    require_shape(obs.shape(), {obs.dim(0), A_, O_}, "ActorCritic::act obs");
    require_finite(obs, "ActorCritic::act obs");
    return policy_actions(standardised(obs), /*target=*/false, 0);
  }

  /// Critic head 1 of critic c at raw observations [B, A, O] and actions [B, A, U] -> [B].
  Tensor<T> q_value(index_t c, const Tensor<T>& obs, const Tensor<T>& actions) {
    require<ConfigError>(c >= 0 && c < critic_count(), "ActorCritic::q_value: critic ", c, " of ", critic_count());
    require_shape(obs.shape(), {obs.dim(0), A_, O_}, "ActorCritic::q_value obs");
    require_shape(actions.shape(), {obs.dim(0), A_, U_}, "ActorCritic::q_value actions");
    nn::NoGradGuard no_grad;
    Critic& q = *critics_[static_cast<std::size_t>(c)];
    Tensor<T> x = critic_input(c, standardised(obs), actions);
    if (batch_statistics()) nn::normalise_with(x, q.norm.running_moments(), q.norm.eps());  // evaluation mode
    return q.head1.forward(x).reshape({obs.dim(0)});
  }
  index_t critic_count() const { return opt_.critic == CriticLayout::Centralised ? 1 : A_; }

  /// One round: critic_updates critic steps on fresh batches, then (every policy_delay rounds) one actor
  /// step per agent on the last batch and the Polyak update of all targets.
  UpdateStats update(const rl::ReplayBuffer<T>& data) {
    const auto round = static_cast<std::uint64_t>(rounds_++);
    UpdateStats st;
    rl::TransitionBatch<T> s;
    for (index_t k = 0; k < opt_.critic_updates; ++k) {
      const std::uint64_t draw = round * static_cast<std::uint64_t>(opt_.critic_updates) + static_cast<std::uint64_t>(k);
      s = data.sample(opt_.batch_size, opt_.seed, draw);
      s.obs = standardised(s.obs), s.next_obs = standardised(s.next_obs);
      st = batch_statistics() ? critic_step_batch_statistics(s, draw) : critic_step(s, draw);
    }
    if (round % static_cast<std::uint64_t>(opt_.policy_delay) == 0) {
      if (batch_statistics())
        st.actor_loss = actor_round_batch_statistics(s, round);
      else
        for (index_t i = 0; i < A_; ++i) st.actor_loss += actor_step(i, s, round) / static_cast<double>(A_);
      for (auto& a : actors_) polyak(a->net, a->target);
      for (auto& q : critics_) polyak(q->head1, q->target1), polyak(q->head2, q->target2);
      last_actor_loss_ = st.actor_loss;
    }
    st.actor_loss = last_actor_loss_;
    st.rounds = rounds_;
    return st;
  }
  index_t rounds() const { return rounds_; }

  /// Every agent's actor weights, then the observation mean and std (rl::Matd3::actor_state's layout).
  std::vector<Tensor<T>> actor_state() {
    std::vector<Tensor<T>> out;
    for (auto& a : actors_)
      for (auto& p : a->params) out.push_back(p.param->value);
    out.push_back(scaling_.mean());
    out.push_back(scaling_.std());
    return out;
  }

  /// Parameters "actor.<i>.*", "critic.<c>.head1.*", "critic.<c>.head2.*" (checkpoints).
  nn::ParameterList<T> parameters() {
    nn::ParameterList<T> out;
    for (index_t i = 0; i < A_; ++i) actors_[static_cast<std::size_t>(i)]->net.collect_parameters(out, "actor." + std::to_string(i));
    for (index_t c = 0; c < critic_count(); ++c) {
      Critic& q = *critics_[static_cast<std::size_t>(c)];
      q.head1.collect_parameters(out, "critic." + std::to_string(c) + ".head1");
      q.head2.collect_parameters(out, "critic." + std::to_string(c) + ".head2");
    }
    return out;
  }

 private:
  struct Actor {
    nn::MLP<T> net, target;
    nn::ParameterList<T> params;
    std::unique_ptr<nn::optim::Adam<T>> opt;
  };
  struct Critic {
    nn::MLP<T> head1, head2, target1, target2;
    nn::BatchNorm1d<T> norm;  ///< shared by both heads and their targets (BatchStatistics only)
    nn::ParameterList<T> params;
    std::unique_ptr<nn::optim::Adam<T>> opt;
  };

  bool centralised() const { return opt_.critic == CriticLayout::Centralised; }
  bool batch_statistics() const { return opt_.critic_inputs == CriticInputs::BatchStatistics; }
  index_t critic_width() const { return centralised() ? A_ * (O_ + U_) : O_ + U_; }
  index_t critic_of(index_t agent) const { return centralised() ? 0 : agent; }
  /// Agents whose actions critic c sees.
  index_t first_agent(index_t c) const { return centralised() ? 0 : c; }
  index_t seen_agents() const { return centralised() ? A_ : 1; }
  /// Column of agent i's first action entry in critic c's input.
  index_t action_column(index_t i) const { return centralised() ? A_ * O_ + i * U_ : O_; }

  Tensor<T> standardised(Tensor<T> obs) const { return scaling_(std::move(obs)); }
  /// Critic c's input [B, W]: (o_c, a_c) or (o_1..o_N, a_1..a_N).
  Tensor<T> critic_input(index_t c, const Tensor<T>& obs, const Tensor<T>& act) const {
    const index_t B = obs.dim(0), W = critic_width();
    Tensor<T> x({B, W});
    for (index_t b = 0; b < B; ++b) {
      if (centralised()) {
        std::copy(obs.data() + b * A_ * O_, obs.data() + (b + 1) * A_ * O_, x.data() + b * W);
        std::copy(act.data() + b * A_ * U_, act.data() + (b + 1) * A_ * U_, x.data() + b * W + A_ * O_);
      } else {
        std::copy(obs.data() + (b * A_ + c) * O_, obs.data() + (b * A_ + c + 1) * O_, x.data() + b * W);
        std::copy(act.data() + (b * A_ + c) * U_, act.data() + (b * A_ + c + 1) * U_, x.data() + b * W + O_);
      }
    }
    return x;
  }
  Tensor<T> agent_obs(const Tensor<T>& obs, index_t i) const {
    const index_t B = obs.dim(0);
    Tensor<T> o({B, O_});
    for (index_t b = 0; b < B; ++b) std::copy(obs.data() + (b * A_ + i) * O_, obs.data() + (b * A_ + i + 1) * O_, o.data() + b * O_);
    return o;
  }
  /// tanh(actor_i(o_i)) of every agent (or of its target copy), plus clipped Gaussian smoothing noise
  /// with sd target_noise when draw_noise is set.
  Tensor<T> policy_actions(const Tensor<T>& obs, bool target, std::uint64_t round, bool draw_noise = false) {
    nn::NoGradGuard no_grad;
    const index_t B = obs.dim(0);
    const Philox gen(opt_.seed ^ 0x736d6f6f7468ull, round);  // smoothing stream
    Tensor<T> a({B, A_, U_});
    for (index_t i = 0; i < A_; ++i) {
      Actor& n = *actors_[static_cast<std::size_t>(i)];
      const Tensor<T> z = (target ? n.target : n.net).forward(agent_obs(obs, i));
      for (index_t b = 0; b < B; ++b)
        for (index_t u = 0; u < U_; ++u) {
          double v = std::tanh(static_cast<double>(z(b, u)));
          if (draw_noise && opt_.target_noise > 0) {
            const double eps = opt_.target_noise * gen.normal(static_cast<std::uint64_t>((b * A_ + i) * U_ + u));
            v = std::clamp(v + std::clamp(eps, -opt_.target_noise_clip, opt_.target_noise_clip), -1.0, 1.0);
          }
          a(b, i, u) = static_cast<T>(v);
        }
    }
    return a;
  }

  UpdateStats critic_step(const rl::TransitionBatch<T>& s, std::uint64_t draw) {
    const index_t B = s.obs.dim(0), G = seen_agents(), S = opt_.cql_samples;
    const Tensor<T> next_actions = policy_actions(s.next_obs, /*target=*/true, draw, /*draw_noise=*/true);
    const Philox proposal(opt_.seed ^ 0x63716c00ull, draw);  // conservative-penalty samples
    UpdateStats st;
    for (index_t c = 0; c < critic_count(); ++c) {
      Critic& q = *critics_[static_cast<std::size_t>(c)];
      const Tensor<T> y = td_targets(c, s, critic_input(c, s.next_obs, next_actions));
      // Data rows first, then for each seen agent g and sample k the rows with g's action resampled.
      const Tensor<T> x = critic_input(c, s.obs, s.actions);
      const auto [columns, cand] = penalty_samples(c, B, proposal);
      for (nn::MLP<T>* head : {&q.head1, &q.head2}) {
        CounterfactualPass<T> pass;
        const Tensor<T> out = pass.forward(*head, x, columns, cand);
        Tensor<T> dq(out.shape(), T(0));
        const double td = td_error(out, y, dq);
        if (head == &q.head1)
          for (index_t b = 0; b < B; ++b) st.q_mean += static_cast<double>(out[b]) / static_cast<double>(B * critic_count());
        if (opt_.cql_alpha > 0) {
          Tensor<T> q_sampled({G, S, B}), q_data({B});
          std::copy(out.data() + B, out.data() + out.size(), q_sampled.data());
          std::copy(out.data(), out.data() + B, q_data.data());
          const ConservativePenalty<T> pen = conservative_penalty(q_sampled, q_data, penalty_options());
          for (index_t b = 0; b < B; ++b) dq[b] += pen.d_data[b];
          for (index_t r = 0; r < G * S * B; ++r) dq[B + r] += pen.d_sampled[r];
          st.penalty += pen.value / static_cast<double>(2 * critic_count());
        }
        pass.backward(dq);
        st.critic_loss += td / static_cast<double>(critic_count());
      }
      descend(q.params, *q.opt);
    }
    return st;
  }

  double actor_step(index_t i, const rl::TransitionBatch<T>& s, std::uint64_t round) {
    const index_t B = s.obs.dim(0), c = critic_of(i), W = critic_width(), col = action_column(i);
    Actor& a = *actors_[static_cast<std::size_t>(i)];
    Critic& q = *critics_[static_cast<std::size_t>(c)];
    const Tensor<T> z = a.net.forward(agent_obs(s.obs, i));
    Tensor<T> pi(z.shape()), data({B, U_});
    Tensor<T> acts = s.actions;
    for (index_t b = 0; b < B; ++b)
      for (index_t u = 0; u < U_; ++u) {
        pi(b, u) = std::tanh(z(b, u));
        data(b, u) = s.actions(b, i, u);
        acts(b, i, u) = pi(b, u);  // the other agents keep their dataset actions (CFCQL's cf_pol)
      }
    const Tensor<T> x = critic_input(c, s.obs, acts);
    const Tensor<T> q_pi = q.head1.forward(x).reshape({B});
    const objective::ActorStep<T> step{
        pi, data, q_pi,
        [&](const Tensor<T>& candidates) {
          nn::NoGradGuard no_grad;  // keeps head1's cached activations of the forward above
          const index_t S = candidates.dim(0);
          const Tensor<T> all = CounterfactualPass<T>().forward(q.head1, x, {col}, candidates.reshape({1, S, B, U_}));
          Tensor<T> out({S, B});
          std::copy(all.data() + B, all.data() + all.size(), out.data());
          return out;
        },
        Philox(opt_.seed ^ 0x6163746f72ull, round * static_cast<std::uint64_t>(A_) + static_cast<std::uint64_t>(i))};
    const objective::ActorTerms<T> terms = objective_.terms(step);
    require<ShapeError>(terms.bc_weight == 0 || terms.anchor.shape() == pi.shape(),
                        "ActorCritic: the actor objective's anchor must be [B, U]");
    const Tensor<T> dx = q.head1.backward(Tensor<T>({B, 1}, static_cast<T>(-terms.q_weight / static_cast<double>(B))));
    nn::zero_grad(q.params);  // the critic is differentiated through, not updated, here
    return actor_descent(a, pi, q_pi, terms, static_cast<double>(B), [&](index_t b, index_t u) { return static_cast<double>(dx[b * W + col + u]); });
  }

  /// The conservative penalty's samples for critic c: the first action column of every agent it sees and
  /// S uniform actions per agent and row [G, S, B, U] (none without a penalty).
  std::pair<std::vector<index_t>, Tensor<T>> penalty_samples(index_t c, index_t B, const Philox& proposal) const {
    const index_t G = seen_agents(), S = opt_.cql_samples;
    std::vector<index_t> columns;
    Tensor<T> cand;
    if (opt_.cql_alpha > 0) {
      for (index_t g = 0; g < G; ++g) columns.push_back(action_column(first_agent(c) + g));
      cand = Tensor<T>({G, S, B, U_});
      proposal.fill_uniform(cand, T(-1), T(1), static_cast<std::uint64_t>(c * G * S * B * U_));
    }
    return {std::move(columns), std::move(cand)};
  }
  ConservativePenaltyOptions penalty_options() const {
    return {.alpha = opt_.cql_alpha, .temperature = opt_.cql_temperature, .log_density = static_cast<double>(U_) * std::log(0.5)};
  }

  /// Clipped double-Q targets y_b = r_b + gamma (1 - done_b) min(Q1', Q2')(next_b) of critic c at its next
  /// rows (as the critic sees them).
  Tensor<T> td_targets(index_t c, const rl::TransitionBatch<T>& s, const Tensor<T>& next_rows) {
    nn::NoGradGuard no_grad;
    Critic& q = *critics_[static_cast<std::size_t>(c)];
    const index_t B = next_rows.dim(0);
    const Tensor<T> q1 = q.target1.forward(next_rows), q2 = q.target2.forward(next_rows);
    const index_t rewarded = centralised() ? 0 : c;  // CFCQL learns the team reward of agent 0
    Tensor<T> y({B});
    for (index_t b = 0; b < B; ++b)
      y[b] = static_cast<T>(s.rewards(b, rewarded) + opt_.gamma * (1 - s.done[b]) * std::min(q1[b], q2[b]));
    return y;
  }
  /// Mean squared TD error of the first B outputs against y; writes its gradient into dq[0..B).
  static double td_error(const Tensor<T>& out, const Tensor<T>& y, Tensor<T>& dq) {
    const index_t B = y.dim(0);
    double td = 0;
    for (index_t b = 0; b < B; ++b) {
      const double e = static_cast<double>(out[b]) - static_cast<double>(y[b]);
      td += e * e / static_cast<double>(B);
      dq[b] = static_cast<T>(2 * e / static_cast<double>(B));
    }
    return td;
  }
  /// One actor step from its loss -q_weight sum_b Q_b / rows + bc_weight mean (pi - anchor)^2 + l2 mean pi^2;
  /// dq_dpi(b, u) is the Q term's gradient with respect to pi (b, u), already weighted. Returns the loss.
  template <class DqDpi>
  double actor_descent(Actor& a, const Tensor<T>& pi, const Tensor<T>& q_pi, const objective::ActorTerms<T>& terms, double rows,
                       DqDpi&& dq_dpi) {
    const index_t B = pi.dim(0);
    double loss = 0;
    const double per = 1.0 / static_cast<double>(B * U_);
    Tensor<T> dz({B, U_});
    for (index_t b = 0; b < B; ++b) {
      loss -= terms.q_weight * static_cast<double>(q_pi[b]) / rows;
      for (index_t u = 0; u < U_; ++u) {
        const double p = pi(b, u), d = terms.bc_weight != 0 ? p - static_cast<double>(terms.anchor(b, u)) : 0.0;
        loss += (terms.bc_weight * d * d + opt_.action_l2 * p * p) * per;
        const double dp = dq_dpi(b, u) + 2 * (terms.bc_weight * d + opt_.action_l2 * p) * per;
        dz(b, u) = static_cast<T>(dp * (1 - p * p));
      }
    }
    a.net.backward(dz);
    descend(a.params, *a.opt);
    return loss;
  }
  /// Gradient-norm clip, optimiser step, zeroed gradients.
  void descend(const nn::ParameterList<T>& params, nn::optim::Adam<T>& opt) {
    if (opt_.grad_clip > 0) nn::optim::clip_grad_norm(params, opt_.grad_clip);
    opt.step();
    nn::zero_grad(params);
  }

  /// critic_step with every critic call standardised over its own rows (CriticInputs::BatchStatistics):
  /// the TD target's next rows, the data rows (whose moments also feed the running statistics used by
  /// q_value) and the penalty's G S B counterfactual rows, whose moments follow from the data rows and the
  /// candidates. The two calls of a head run one after the other, each forward then backward.
  UpdateStats critic_step_batch_statistics(const rl::TransitionBatch<T>& s, std::uint64_t draw) {
    const index_t B = s.obs.dim(0), G = seen_agents(), S = opt_.cql_samples;
    const Tensor<T> next_actions = policy_actions(s.next_obs, /*target=*/true, draw, /*draw_noise=*/true);
    const Philox proposal(opt_.seed ^ 0x63716c00ull, draw);  // conservative-penalty samples
    const ConservativePenaltyOptions pen_opt = penalty_options();
    UpdateStats st;
    for (index_t c = 0; c < critic_count(); ++c) {
      Critic& q = *critics_[static_cast<std::size_t>(c)];
      const double eps = q.norm.eps();
      Tensor<T> next_rows = critic_input(c, s.next_obs, next_actions);
      nn::normalise_with(next_rows, nn::moments_of(next_rows), eps);
      const Tensor<T> y = td_targets(c, s, next_rows);
      Tensor<T> x = critic_input(c, s.obs, s.actions), xp;
      auto [columns, cand] = penalty_samples(c, B, proposal);
      if (opt_.cql_alpha > 0) {
        const nn::ColumnMoments mp = counterfactual_moments(x, columns, cand);
        xp = x;
        nn::normalise_with(xp, mp, eps);
        for (index_t g = 0; g < G; ++g) {
          Tensor<T> block({S, B, U_});
          std::copy(&cand(g, 0, 0, 0), &cand(g, 0, 0, 0) + S * B * U_, block.data());
          nn::normalise_with(block, mp, eps, columns[static_cast<std::size_t>(g)]);
          std::copy(block.data(), block.data() + block.size(), &cand(g, 0, 0, 0));
        }
      }
      const nn::ColumnMoments md = nn::moments_of(x);
      q.norm.track(md);
      nn::normalise_with(x, md, eps);
      for (nn::MLP<T>* head : {&q.head1, &q.head2}) {
        Tensor<T> q_sampled;
        if (opt_.cql_alpha > 0) {
          CounterfactualPass<T> pen_pass;
          const Tensor<T> out = pen_pass.forward(*head, xp, columns, cand);
          q_sampled = Tensor<T>({G, S, B});
          std::copy(out.data() + B, out.data() + out.size(), q_sampled.data());
          // The penalty's gradient at the samples does not depend on Q at the data rows.
          const ConservativePenalty<T> pen = conservative_penalty(q_sampled, Tensor<T>({B}, T(0)), pen_opt);
          Tensor<T> dq(out.shape(), T(0));
          std::copy(pen.d_sampled.data(), pen.d_sampled.data() + pen.d_sampled.size(), dq.data() + B);
          pen_pass.backward(dq);
        }
        CounterfactualPass<T> pass;
        const Tensor<T> out = pass.forward(*head, x, {}, Tensor<T>());
        Tensor<T> dq(out.shape(), T(0));
        const double td = td_error(out, y, dq);
        if (head == &q.head1)
          for (index_t b = 0; b < B; ++b) st.q_mean += static_cast<double>(out[b]) / static_cast<double>(B * critic_count());
        if (opt_.cql_alpha > 0) {
          const ConservativePenalty<T> pen = conservative_penalty(q_sampled, out, pen_opt);
          for (index_t b = 0; b < B; ++b) dq[b] += pen.d_data[b];
          st.penalty += pen.value / static_cast<double>(2 * critic_count());
        }
        pass.backward(dq);
        st.critic_loss += td / static_cast<double>(critic_count());
      }
      descend(q.params, *q.opt);
    }
    return st;
  }

  /// The actor steps of one round under CriticInputs::BatchStatistics, with one critic call per critic as
  /// the reference code makes it: a centralised critic sees every agent's block of B rows at once (block i
  /// holds pi_i(o_i) with the other agents' dataset actions, CFCQL's cf_pol), a decentralised one its
  /// agent's B rows. The call's rows are standardised with their own moments; the Q term is -q_weight
  /// times Q1's mean over the call's rows, and its gradient flows through the moments. A zeroth-order
  /// search's candidates are scored as a call of their own (S B rows). Returns the mean over agents of each
  /// agent's share of its call's loss (its Q rows' part of the call's mean, plus its own action terms).
  double actor_round_batch_statistics(const rl::TransitionBatch<T>& s, std::uint64_t round) {
    const index_t B = s.obs.dim(0), W = critic_width(), K = seen_agents();
    double total = 0;
    for (index_t c = 0; c < critic_count(); ++c) {
      Critic& q = *critics_[static_cast<std::size_t>(c)];
      const double eps = q.norm.eps();
      const index_t R = K * B;
      std::vector<Tensor<T>> pi, data;
      Tensor<T> x({R, W});
      for (index_t k = 0; k < K; ++k) {
        const index_t i = first_agent(c) + k;
        const Tensor<T> z = actors_[static_cast<std::size_t>(i)]->net.forward(agent_obs(s.obs, i));
        pi.emplace_back(z.shape()), data.emplace_back(Shape{B, U_});
        Tensor<T> acts = s.actions;
        for (index_t b = 0; b < B; ++b)
          for (index_t u = 0; u < U_; ++u) {
            pi.back()(b, u) = std::tanh(z(b, u));
            data.back()(b, u) = s.actions(b, i, u);
            acts(b, i, u) = pi.back()(b, u);
          }
        const Tensor<T> rows = critic_input(c, s.obs, acts);
        std::copy(rows.data(), rows.data() + B * W, x.data() + k * B * W);
      }
      const nn::ColumnMoments m = nn::moments_of(x);
      Tensor<T> xhat = x;
      nn::normalise_with(xhat, m, eps);
      const Tensor<T> q_all = q.head1.forward(xhat).reshape({R});
      std::vector<objective::ActorTerms<T>> terms;
      std::vector<Tensor<T>> q_pi;
      Tensor<T> dq({R, 1});
      for (index_t k = 0; k < K; ++k) {
        const index_t i = first_agent(c) + k, col = action_column(i);
        q_pi.emplace_back(Shape{B});
        std::copy(q_all.data() + k * B, q_all.data() + (k + 1) * B, q_pi.back().data());
        Tensor<T> block({B, W});
        std::copy(x.data() + k * B * W, x.data() + (k + 1) * B * W, block.data());
        const objective::ActorStep<T> step{
            pi[static_cast<std::size_t>(k)], data[static_cast<std::size_t>(k)], q_pi.back(),
            [&, block, col](const Tensor<T>& candidates) {
              nn::NoGradGuard no_grad;  // keeps head1's cached activations of the forward above
              const index_t S = candidates.dim(0);
              Tensor<T> cand = candidates.reshape({1, S, B, U_});
              const nn::ColumnMoments mc = counterfactual_moments(block, {col}, cand);
              Tensor<T> base = block;
              nn::normalise_with(base, mc, eps);
              nn::normalise_with(cand, mc, eps, col);
              const Tensor<T> all = CounterfactualPass<T>().forward(q.head1, base, {col}, cand);
              Tensor<T> out({S, B});
              std::copy(all.data() + B, all.data() + all.size(), out.data());
              return out;
            },
            Philox(opt_.seed ^ 0x6163746f72ull, round * static_cast<std::uint64_t>(A_) + static_cast<std::uint64_t>(i))};
        terms.push_back(objective_.terms(step));
        require<ShapeError>(terms.back().bc_weight == 0 || terms.back().anchor.shape() == pi[static_cast<std::size_t>(k)].shape(),
                            "ActorCritic: the actor objective's anchor must be [B, U]");
        for (index_t b = 0; b < B; ++b) dq[k * B + b] = static_cast<T>(-terms.back().q_weight / static_cast<double>(R));
      }
      const Tensor<T> dxhat = q.head1.backward(dq);
      nn::zero_grad(q.params);  // the critic is differentiated through, not updated, here
      const Tensor<T> dx = nn::BatchNorm1d<T>::batch_standardise_backward(dxhat, xhat, nn::inverse_std(m, eps));
      for (index_t k = 0; k < K; ++k) {
        const index_t i = first_agent(c) + k, col = action_column(i);
        total += actor_descent(*actors_[static_cast<std::size_t>(i)], pi[static_cast<std::size_t>(k)], q_pi[static_cast<std::size_t>(k)],
                               terms[static_cast<std::size_t>(k)], static_cast<double>(R),
                               [&](index_t b, index_t u) { return static_cast<double>(dx[(k * B + b) * W + col + u]); }) /
                 static_cast<double>(A_);
      }
    }
    return total;
  }
  void polyak(nn::MLP<T>& source, nn::MLP<T>& target) {
    nn::optim::polyak_update(nn::parameters_of<T>(source), nn::parameters_of<T>(target), opt_.tau);
  }

  index_t A_, O_, U_;
  ActorCriticOptions opt_;
  Objective objective_;
  rl::ObservationScaling<T> scaling_{O_};
  std::vector<std::unique_ptr<Actor>> actors_;
  std::vector<std::unique_ptr<Critic>> critics_;
  index_t rounds_ = 0;
  double last_actor_loss_ = 0;
};

}  // namespace coordiff::offline
