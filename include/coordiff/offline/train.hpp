#pragma once
// Training an offline learner on a dataset: every (o, a, r, o', terminal) of the dataset goes into a
// replay buffer once (augmented windows included: they carry their own next observations), the
// observation standardisation is fitted on the dataset, and the learner runs `rounds` update rounds with
// an evaluation every `eval_every` rounds and at the end. Evaluation is the caller's (an MPE rollout for
// the CLI), so the loop knows nothing of environments.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <ostream>
#include <sstream>
#include <vector>

#include "coordiff/core/progress.hpp"
#include "coordiff/data/dataset.hpp"
#include "coordiff/offline/actor_critic.hpp"

namespace coordiff::offline {

/// Every valid transition of d once, episode by episode: the steps up to each episode's length (its first
/// terminal or timeout; generated windows are short episodes padded to T). done = terminals: MPE episodes
/// end by the time limit, which OMAR and CFCQL bootstrap through. Without next_observations, o' is the next
/// step's observation, and an episode's last step is kept only if it is terminal.
inline rl::ReplayBuffer<float> transitions_buffer(const data::OfflineDataset<float>& d) {
  d.validate();
  const index_t E = d.episodes(), T = d.steps(), A = d.agents(), O = d.obs_dim(), U = d.act_dim();
  const bool has_next = !d.next_observations.empty();
  struct Step {
    index_t e, t, length;  // a kept transition and its episode's length
  };
  std::vector<Step> steps;
  for (index_t e = 0; e < E; ++e) {
    const index_t len = d.episode_length(e);
    for (index_t t = 0; t < len; ++t)
      if (has_next || t + 1 < len || d.terminals(e, t) != 0.f) steps.push_back({e, t, len});
  }
  const auto N = static_cast<index_t>(steps.size());
  require<ShapeError>(N > 0, "transitions_buffer: the dataset holds no transition");
  rl::TransitionBatch<float> all{Tensor<float>({N, A, O}), Tensor<float>({N, A, U}), Tensor<float>({N, A}),
                                 Tensor<float>({N, A, O}), Tensor<float>({N})};
  for (index_t n = 0; n < N; ++n) {
    const auto [e, t, len] = steps[static_cast<std::size_t>(n)];
    const index_t row = e * T + t;
    std::copy_n(d.observations.data() + row * A * O, A * O, all.obs.data() + n * A * O);
    std::copy_n(d.actions.data() + row * A * U, A * U, all.actions.data() + n * A * U);
    std::copy_n(d.rewards.data() + row * A, A, all.rewards.data() + n * A);
    const float* next = has_next ? d.next_observations.data() + row * A * O
                                 : d.observations.data() + (t + 1 < len ? row + 1 : row) * A * O;
    std::copy_n(next, A * O, all.next_obs.data() + n * A * O);
    all.done[n] = d.terminals(e, t);
  }
  rl::ReplayBuffer<float> buf(N, A, O, U);
  buf.add(all);
  return buf;
}

struct CurvePoint {
  index_t round = 0;
  double episode_return = 0, normalised = 0;
  double critic_loss = 0, penalty = 0, actor_loss = 0, q_mean = 0;
  double seconds = 0;  ///< since the start of training
};

struct TrainReport {
  std::vector<CurvePoint> curve;
  double final_return = 0, final_normalised = 0, seconds = 0;
};

struct TrainLoopOptions {
  index_t rounds = 2000;
  index_t eval_every = 100;  ///< 0 = only at the end
};

/// evaluate(learner) -> mean episode return; normalise(return) -> normalised return.
template <class Learner>
TrainReport train_offline(Learner& learner, const rl::ReplayBuffer<float>& data, const TrainLoopOptions& opt,
                          const std::function<double(Learner&)>& evaluate, const std::function<double(double)>& normalise,
                          std::ostream* progress = nullptr) {
  require<ConfigError>(opt.rounds >= 1 && opt.eval_every >= 0, "train_offline: rounds must be >= 1 and eval_every >= 0");
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  TrainReport rep;
  UpdateStats st;
  for (index_t r = 1; r <= opt.rounds; ++r) {
    st = learner.update(data);
    require<NumericError>(std::isfinite(st.critic_loss) && std::isfinite(st.actor_loss),
                          "train_offline: loss is not finite at round ", r, " (critic ", st.critic_loss, ", actor ", st.actor_loss, ")");
    if ((opt.eval_every > 0 && r % opt.eval_every == 0) || r == opt.rounds) {
      const double ret = evaluate(learner);
      rep.curve.push_back({r, ret, normalise(ret), st.critic_loss, st.penalty, st.actor_loss, st.q_mean, elapsed()});
      if (progress) {
        std::ostringstream label;
        label.precision(3);
        label << "normalised " << std::fixed << rep.curve.back().normalised << "  critic " << st.critic_loss;
        draw_progress(*progress, label.str(), r, opt.rounds);
      }
    }
  }
  rep.final_return = rep.curve.back().episode_return;
  rep.final_normalised = rep.curve.back().normalised;
  rep.seconds = elapsed();
  return rep;
}

}  // namespace coordiff::offline
