#pragma once
// One offline-learning run on an MPE dataset: the learner with the published settings for the dataset's
// env and quality (from its meta unless given), trained on every transition of the dataset, evaluated by
// deterministic rollouts on the fixed evaluation episodes (mpe::evaluate_policy) and scored by the
// normalised return 100 (R - R_random) / (R_expert - R_random) with the reference returns stored in the
// dataset's meta (or in a behaviour-policies file). `coordiff offline-train` and the Table-1 harness run this.
#include <filesystem>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "coordiff/env/mpe.hpp"
#include "coordiff/env/mpe/behaviour.hpp"
#include "coordiff/offline/learners.hpp"
#include "coordiff/offline/train.hpp"

namespace coordiff::offline {

struct MpeRunSpec {
  Algorithm algorithm = Algorithm::Td3Bc;
  std::filesystem::path dataset;
  std::string env, quality;        ///< empty: from the dataset's meta
  index_t rounds = 0;              ///< 0: the published number for env and quality
  std::uint64_t seed = 0;
  index_t eval_every = 100;
  index_t eval_episodes = 100;
  std::filesystem::path behaviour;  ///< reference returns when the dataset's meta has none
  /// Overrides of the published settings (negative: keep the published value).
  double actor_lr = -1, critic_lr = -1, cql_alpha = -1;
  index_t batch_size = -1;
  std::string critic_inputs;  ///< "fixed" or "batch" (CriticInputs); empty: keep the published choice
};

inline CriticInputs parse_critic_inputs(const std::string& s) {
  if (s == "fixed") return CriticInputs::Fixed;
  if (s == "batch") return CriticInputs::BatchStatistics;
  throw ConfigError("critic inputs must be fixed or batch, got '" + s + "'");
}

namespace detail {
inline nlohmann::json dataset_meta(const data::OfflineDataset<float>& d, const std::string& where) {
  try {
    const auto j = nlohmann::json::parse(d.meta);
    return j.is_object() ? j : nlohmann::json::object();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": meta is not valid JSON: " + e.what());
  }
}

}  // namespace detail

inline nlohmann::json run_offline_mpe(const MpeRunSpec& spec, std::ostream* progress = nullptr) {
  const auto d = data::OfflineDataset<float>::load(spec.dataset);
  const std::string where = spec.dataset.string();
  const nlohmann::json meta = detail::dataset_meta(d, where);
  const std::string env = !spec.env.empty() ? spec.env : meta.value("env", std::string());
  const std::string quality = !spec.quality.empty() ? spec.quality : meta.value("quality", std::string());
  require<ConfigError>(!env.empty(), where, ": no env in the dataset's meta; name it (--env)");
  double random_return = 0, expert_return = 0;
  if (meta.contains("reference") && meta["reference"].contains("random_return") && meta["reference"].contains("expert_return")) {
    random_return = meta["reference"]["random_return"].get<double>();
    expert_return = meta["reference"]["expert_return"].get<double>();
  } else {
    require<ConfigError>(!spec.behaviour.empty(), where, ": no reference returns in the dataset's meta; give a behaviour-policies file");
    const auto p = env::mpe::BehaviourPolicies::load(spec.behaviour);
    random_return = p.random_return, expert_return = p.expert_return;
  }
  require<FormatError>(expert_return != random_return, where, ": expert and random reference returns are equal");
  const auto normalise = [=](double R) { return env::mpe::normalised_return(R, random_return, expert_return); };

  LearnerSettings s = published_settings(spec.algorithm, env, quality);
  if (spec.rounds > 0) s.rounds = spec.rounds;
  if (spec.actor_lr > 0) s.options.actor_lr = spec.actor_lr;
  if (spec.critic_lr > 0) s.options.critic_lr = spec.critic_lr;
  if (spec.cql_alpha >= 0) s.options.cql_alpha = spec.cql_alpha;
  if (spec.batch_size > 0) s.options.batch_size = spec.batch_size;
  if (!spec.critic_inputs.empty()) s.options.critic_inputs = parse_critic_inputs(spec.critic_inputs);
  s.options.seed = spec.seed;
  const rl::ReplayBuffer<float> buffer = transitions_buffer(d);
  const auto [mean, sd] = data::observation_moments(d);

  nlohmann::json out;
  env::mpe::with_scenario(env, [&]<class Env>(const Env&) {
    require<ShapeError>(d.agents() == Env::kLearners && d.obs_dim() == Env::kObsDim && d.act_dim() == 2, where,
                        ": the dataset has ", d.agents(), " agents with ", d.obs_dim(), " observations and ", d.act_dim(),
                        " actions; ", env, " has ", Env::kLearners, ", ", Env::kObsDim, " and 2");
    with_learner<float>(s, d.agents(), d.obs_dim(), d.act_dim(), [&](auto& learner) {
      using L = std::remove_reference_t<decltype(learner)>;
      learner.set_observation_scaling(mean, sd);
      const std::function<double(L&)> evaluate = [&](L& l) {
        return env::mpe::evaluate_policy<Env>(env::mpe::snapshot_policy<Env>(l.actor_state(), 0, 0, s.options.hidden),
                                              spec.eval_episodes);
      };
      const TrainReport rep = train_offline<L>(learner, buffer, {.rounds = s.rounds, .eval_every = spec.eval_every}, evaluate,
                                               normalise, progress);
      nlohmann::json curve = nlohmann::json::array();
      for (const auto& p : rep.curve)
        curve.push_back({{"round", p.round}, {"return", p.episode_return}, {"normalised", p.normalised},
                         {"critic_loss", p.critic_loss}, {"penalty", p.penalty}, {"actor_loss", p.actor_loss},
                         {"q_mean", p.q_mean}, {"seconds", p.seconds}});
      const auto& o = s.options;
      out = {{"algorithm", to_string(spec.algorithm)},
             {"dataset", spec.dataset.string()},
             {"env", env},
             {"quality", quality},
             {"seed", spec.seed},
             {"transitions", buffer.size()},
             {"rounds", s.rounds},
             {"eval_episodes", spec.eval_episodes},
             {"final_return", rep.final_return},
             {"final_normalised", rep.final_normalised},
             {"seconds", rep.seconds},
             {"reference", {{"random_return", random_return}, {"expert_return", expert_return}}},
             {"settings",
              {{"critic", o.critic == CriticLayout::Centralised ? "centralised" : "decentralised"},
               {"critic_inputs", o.critic_inputs == CriticInputs::BatchStatistics ? "batch-statistics" : "fixed"},
               {"hidden", o.hidden}, {"actor_lr", o.actor_lr}, {"critic_lr", o.critic_lr}, {"gamma", o.gamma},
               {"tau", o.tau}, {"batch_size", o.batch_size}, {"grad_clip", o.grad_clip}, {"action_l2", o.action_l2},
               {"target_noise", o.target_noise}, {"policy_delay", o.policy_delay}, {"critic_updates", o.critic_updates},
               {"cql_alpha", o.cql_alpha}, {"cql_samples", o.cql_samples}, {"td3bc_alpha", s.td3bc_alpha},
               {"omar_coefficient", s.omar_coefficient}}},
             {"curve", curve}};
    });
    return 0;
  });
  return out;
}

}  // namespace coordiff::offline
