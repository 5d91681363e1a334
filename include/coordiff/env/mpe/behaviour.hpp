#pragma once
// Behaviour policies for the offline datasets, following the OMAR protocol (Pan et al. 2022, sec. 5.1):
// MATD3 is trained online in the batched simulator; the final policy is the expert; the first snapshot
// whose evaluation return reaches halfway between the random policy's and the expert's (normalised
// return 50) is the medium policy; the episodes collected during training up to that snapshot are the
// medium-replay data. Datasets are collected with N(0, 0.1) added to the policy's actions, "adding noises
// to MATD3 to increase diversity following D4RL" (OMAR's exploration default).
//
// Evaluation (OMAR): deterministic actions on a fixed set of evaluation episodes; the return is
// sum_t mean_i r_i in spread and sum_t r_0 in tag and world (episode_returns).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/io/npz.hpp"
#include "coordiff/rl/matd3.hpp"

namespace coordiff::env::mpe {

/// The normalised return (D4RL, OMAR): 100 (R - R_random) / (R_expert - R_random).
inline double normalised_return(double R, double random_return, double expert_return) {
  return 100.0 * (R - random_return) / (expert_return - random_return);
}

/// Episodes that evaluation and the reference returns are measured on: Philox seed of the resets.
inline constexpr std::uint64_t kEvaluationSeed = 0x6576616cull;

struct BehaviourOptions {
  index_t rounds = 800;         ///< training rounds of `parallel` episodes each
  index_t parallel = 8;         ///< environments stepped together; one MATD3 update per batched step
  index_t warmup_rounds = 20;   ///< first rounds act uniformly at random (TD3's start steps); they also
                                ///< fix the observation standardisation
  index_t eval_every = 50;      ///< rounds between policy snapshots
  index_t eval_episodes = 64;   ///< evaluation episodes per snapshot
  double data_noise = 0.1;      ///< sd of the Gaussian noise added to the actions when collecting datasets
  std::uint64_t seed = 0;
  rl::Matd3Options matd3 = default_matd3();

  static rl::Matd3Options default_matd3() {
    rl::Matd3Options o;
    o.actor_lr = o.critic_lr = 3e-3;
    o.reward_scale = 0.1;  // MPE returns reach several hundred; Q of O(10) trains faster and steadier
    return o;
  }
};

/// The result of a behaviour training run.
struct BehaviourRun {
  double random_return = 0;                        ///< evaluation return of uniform random actions
  std::vector<double> eval_returns;                ///< per snapshot
  std::vector<index_t> snapshot_rounds;            ///< training rounds completed at each snapshot
  std::vector<std::vector<Tensor<float>>> actors;  ///< Matd3::actor_state() per snapshot
  data::OfflineDataset<float> training_episodes;   ///< every training episode, in collection order
  index_t parallel = 0;

  std::size_t expert() const { return actors.size() - 1; }
  /// First snapshot whose return reaches random + 0.5 (expert - random).
  std::size_t medium() const {
    const double target = random_return + 0.5 * (eval_returns.back() - random_return);
    for (std::size_t k = 0; k < eval_returns.size(); ++k)
      if (eval_returns[k] >= target) return k;
    return expert();
  }
};

/// A policy from a snapshot: deterministic actions, plus N(0, noise) clipped to [-1, 1] when noise > 0,
/// the noise keyed by (seed, episode, step) so a dataset does not depend on how episodes are batched.
template <class Env>
BehaviourPolicy snapshot_policy(const std::vector<Tensor<float>>& actor, double noise, std::uint64_t seed,
                                index_t hidden = rl::Matd3Options{}.hidden) {
  rl::Matd3Options shape;
  shape.hidden = hidden;
  auto m = std::make_shared<rl::Matd3<float>>(Env::kLearners, Env::kObsDim, 2, shape);
  m->set_actor_state(actor);
  return [m, noise, seed](const Tensor<double>& obs, std::uint64_t first_episode, index_t step) {
    Tensor<double> a = m->act(obs.cast<float>()).template cast<double>();
    if (noise > 0) {
      const index_t B = a.dim(0), per = a.size() / B;
      for (index_t b = 0; b < B; ++b) {
        const Philox gen(seed ^ 0x6e6f697365ull, first_episode + static_cast<std::uint64_t>(b));
        for (index_t j = 0; j < per; ++j)
          a[b * per + j] = std::clamp(a[b * per + j] + noise * gen.normal(static_cast<std::uint64_t>(step * per + j)), -1.0, 1.0);
      }
    }
    return a;
  };
}

/// Mean evaluation return of a policy over `episodes` episodes reset from kEvaluationSeed.
template <class Env>
double evaluate_policy(const BehaviourPolicy& policy, index_t episodes, index_t parallel = 64) {
  const auto d = collect_episodes<Env>(episodes, kEvaluationSeed, policy, parallel);
  const auto r = episode_returns(d, Env::kLearners == Env::kAgents);
  double m = 0;
  for (double v : r) m += v / static_cast<double>(r.size());
  return m;
}


/// Trains MATD3 on scenario Env. `stop_after_round` > 0 ends the run early (to replay a run up to its
/// medium snapshot); progress, if given, gets one line per snapshot.
template <class Env>
BehaviourRun train_behaviour(const BehaviourOptions& opt, std::ostream* progress = nullptr, index_t stop_after_round = 0) {
  require<ConfigError>(opt.rounds >= 1 && opt.parallel >= 1 && opt.eval_every >= 1 && opt.eval_episodes >= 1 &&
                           opt.warmup_rounds >= 1 && opt.warmup_rounds < opt.rounds,
                       "train_behaviour: rounds, parallel, eval_every, eval_episodes must be >= 1 and "
                       "1 <= warmup_rounds < rounds");
  constexpr index_t T = kEpisodeLength, L = Env::kLearners, O = Env::kObsDim;
  rl::Matd3Options mo = opt.matd3;
  mo.seed = opt.seed;
  rl::Matd3<float> learner(L, O, 2, mo);
  const index_t P = opt.parallel, rounds = stop_after_round > 0 ? std::min(stop_after_round, opt.rounds) : opt.rounds;
  rl::ReplayBuffer<float> buffer(rounds * P * T, L, O, 2);
  BehaviourRun run;
  run.parallel = P;
  run.random_return = evaluate_policy<Env>(uniform_random_policy(opt.seed), opt.eval_episodes);
  run.training_episodes = detail::allocate_episodes<Env>(rounds * P);
  const auto random = uniform_random_policy(opt.seed + 1);
  const Tensor<float> not_terminal({P}, 0.0f);  // OMAR bootstraps through the time limit
  std::uint64_t draw = 0;
  for (index_t round = 0; round < rounds; ++round) {
    const bool warmup = round < opt.warmup_rounds;
    Env env(P);
    env.reset(opt.seed + 1, static_cast<std::uint64_t>(round * P));
    Tensor<double> obs = env.observations();
    for (index_t t = 0; t < T; ++t) {
      const Tensor<double> state = env.state();
      const Tensor<double> a = warmup ? random(obs, static_cast<std::uint64_t>(round * P), t)
                                      : learner.act(obs.cast<float>(), /*explore=*/true, draw++).template cast<double>();
      const auto r = env.step(a);
      detail::record_step<Env>(run.training_episodes, round * P, t, obs, state, a, r);
      buffer.add({obs.template cast<float>(), a.template cast<float>(), r.reward.template cast<float>(),
                  r.obs.template cast<float>(), not_terminal});
      obs = r.obs;
      if (!warmup) learner.update(buffer);
    }
    if (round + 1 == opt.warmup_rounds) {
      const auto [mean, sd] = data::observation_moments(run.training_episodes, opt.warmup_rounds * P);
      learner.set_observation_scaling(mean, sd);
    }
    if ((round + 1) % opt.eval_every == 0 || round + 1 == rounds) {
      run.actors.push_back(learner.actor_state());
      run.snapshot_rounds.push_back(round + 1);
      run.eval_returns.push_back(
          evaluate_policy<Env>(snapshot_policy<Env>(run.actors.back(), 0, 0, mo.hidden), opt.eval_episodes));
      if (progress)
        *progress << Env::name() << " round " << round + 1 << "/" << rounds << "  episodes " << (round + 1) * P
                  << "  eval return " << run.eval_returns.back() << " (random " << run.random_return << ")" << std::endl;
    }
  }
  return run;
}

/// What `coordiff train-behaviour` writes and `coordiff gen-data` reads: the medium and expert snapshots,
/// the options that reproduce the run, the learning curve and the reference returns.
struct BehaviourPolicies {
  std::string env;
  BehaviourOptions options;
  std::vector<Tensor<float>> medium, expert;
  index_t medium_round = 0;  ///< training rounds completed at the medium snapshot
  std::vector<double> eval_returns;
  std::vector<index_t> snapshot_rounds;
  double random_return = 0, medium_return = 0, expert_return = 0;  ///< measured on reference_episodes
  index_t reference_episodes = 0;

  /// 100 (R - R_random) / (R_expert - R_random).
  double normalised(double R) const { return normalised_return(R, random_return, expert_return); }

  void save(const std::filesystem::path& path) const {
    io::NpzWriter w;
    const auto scalar = [&](const std::string& k, double v) { w.add("scalars/" + k, Tensor<double>({1}, v)); };
    for (const auto& [name, snap] : {std::pair{"medium", &medium}, std::pair{"expert", &expert}})
      for (std::size_t k = 0; k < snap->size(); ++k) w.add(std::string("actor/") + name + "/" + std::to_string(k), (*snap)[k]);
    Tensor<double> curve({static_cast<index_t>(eval_returns.size())}), when({static_cast<index_t>(eval_returns.size())});
    for (std::size_t k = 0; k < eval_returns.size(); ++k)
      curve[static_cast<index_t>(k)] = eval_returns[k], when[static_cast<index_t>(k)] = static_cast<double>(snapshot_rounds[k]);
    w.add("eval_returns", curve).add("snapshot_rounds", when);
    scalar("rounds", static_cast<double>(options.rounds));
    scalar("parallel", static_cast<double>(options.parallel));
    scalar("warmup_rounds", static_cast<double>(options.warmup_rounds));
    scalar("eval_every", static_cast<double>(options.eval_every));
    scalar("eval_episodes", static_cast<double>(options.eval_episodes));
    scalar("data_noise", options.data_noise);
    scalar("seed", static_cast<double>(options.seed));
    scalar("hidden", static_cast<double>(options.matd3.hidden));
    scalar("actor_lr", options.matd3.actor_lr);
    scalar("critic_lr", options.matd3.critic_lr);
    scalar("reward_scale", options.matd3.reward_scale);
    scalar("batch_size", static_cast<double>(options.matd3.batch_size));
    scalar("medium_round", static_cast<double>(medium_round));
    scalar("random_return", random_return);
    scalar("medium_return", medium_return);
    scalar("expert_return", expert_return);
    scalar("reference_episodes", static_cast<double>(reference_episodes));
    w.add_strings("env", {env});
    w.save(path);
  }

  static BehaviourPolicies load(const std::filesystem::path& path) {
    const auto f = io::NpzFile::load(path);
    const auto scalar = [&](const std::string& k) { return f.tensor<double>("scalars/" + k, {1})[0]; };
    const auto count = [&](const std::string& k) {
      const double v = scalar(k);
      require<FormatError>(v >= 0 && v == std::floor(v), path.string(), ": scalars/", k, " must be a count, got ", v);
      return static_cast<index_t>(v);
    };
    BehaviourPolicies p;
    const auto env = f.strings("env");
    require<FormatError>(env.size() == 1, path.string(), ": env must hold one string");
    p.env = env.front();
    for (auto [name, snap] : {std::pair{"medium", &p.medium}, std::pair{"expert", &p.expert}})
      for (std::size_t k = 0; f.contains(std::string("actor/") + name + "/" + std::to_string(k)); ++k)
        snap->push_back(f.tensor<float>(std::string("actor/") + name + "/" + std::to_string(k)));
    const auto curve = f.tensor<double>("eval_returns"), when = f.tensor<double>("snapshot_rounds");
    require<FormatError>(curve.rank() == 1 && when.shape() == curve.shape(), path.string(),
                         ": eval_returns and snapshot_rounds must be vectors of one length");
    for (index_t k = 0; k < curve.size(); ++k)
      p.eval_returns.push_back(curve[k]), p.snapshot_rounds.push_back(static_cast<index_t>(when[k]));
    p.options.rounds = count("rounds");
    p.options.parallel = count("parallel");
    p.options.warmup_rounds = count("warmup_rounds");
    p.options.eval_every = count("eval_every");
    p.options.eval_episodes = count("eval_episodes");
    p.options.data_noise = scalar("data_noise");
    p.options.seed = static_cast<std::uint64_t>(count("seed"));
    p.options.matd3.hidden = count("hidden");
    p.options.matd3.actor_lr = scalar("actor_lr");
    p.options.matd3.critic_lr = scalar("critic_lr");
    p.options.matd3.reward_scale = scalar("reward_scale");
    p.options.matd3.batch_size = count("batch_size");
    p.medium_round = count("medium_round");
    p.random_return = scalar("random_return");
    p.medium_return = scalar("medium_return");
    p.expert_return = scalar("expert_return");
    p.reference_episodes = count("reference_episodes");
    require<FormatError>(!p.medium.empty() && !p.expert.empty(), path.string(), ": no actor/medium or actor/expert snapshot");
    require<FormatError>(p.expert_return != p.random_return, path.string(),
                         ": expert and random returns are equal; normalised returns would be undefined");
    return p;
  }
};

/// Trains, picks the medium and expert snapshots and measures the reference returns on
/// `reference_episodes` evaluation episodes (deterministic actions).
template <class Env>
BehaviourPolicies make_behaviour_policies(const BehaviourOptions& opt, index_t reference_episodes,
                                          std::ostream* progress = nullptr, BehaviourRun* run_out = nullptr) {
  BehaviourRun run = train_behaviour<Env>(opt, progress);
  BehaviourPolicies p;
  p.env = Env::name();
  p.options = opt;
  const std::size_t med = run.medium();
  p.medium = run.actors[med], p.expert = run.actors[run.expert()];
  p.medium_round = run.snapshot_rounds[med];
  p.eval_returns = run.eval_returns, p.snapshot_rounds = run.snapshot_rounds;
  p.reference_episodes = reference_episodes;
  p.random_return = evaluate_policy<Env>(uniform_random_policy(opt.seed), reference_episodes);
  p.medium_return = evaluate_policy<Env>(snapshot_policy<Env>(p.medium, 0, 0, opt.matd3.hidden), reference_episodes);
  p.expert_return = evaluate_policy<Env>(snapshot_policy<Env>(p.expert, 0, 0, opt.matd3.hidden), reference_episodes);
  if (run_out) *run_out = std::move(run);
  return p;
}

/// The medium-replay data of a behaviour run: its first medium_round * parallel training episodes,
/// replayed from the recorded options (bitwise the same at the same thread count).
template <class Env>
data::OfflineDataset<float> medium_replay_episodes(const BehaviourPolicies& p, std::ostream* progress = nullptr) {
  BehaviourRun run = train_behaviour<Env>(p.options, progress, p.medium_round);
  return std::move(run.training_episodes);
}

}  // namespace coordiff::env::mpe
