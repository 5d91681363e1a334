#pragma once
// The three offline MARL learners of paper 000's Table 1 as compositions of ActorCritic, with the
// published MPE settings (OMAR's and CFCQL's configs; facts in docs/offline.md):
//   MA-TD3+BC  decentralised twin critics, TD3 target smoothing (0.2, clip 0.5) and delay 2, actor
//              objective::BehaviourCloned with alpha 2.5 (Fujimoto & Gu 2021), no conservative penalty;
//   OMAR       decentralised critics with MA-CQL (cql_alpha per dataset), no smoothing or delay, actor
//              objective::Rectified (omar_coe per dataset; search mu 0, sigma 2, 3 x 10 samples);
//   CFCQL      one centralised critic on agent 0's (team) reward with counterfactual CQL (cql_alpha per
//              dataset), target noise N(0, 0.05), 5 critic updates per round (ca_ratio), actor
//              objective::PolicyGradient with the other agents' dataset actions, and the critic's inputs
//              standardised with each call's batch statistics (the reference critic's training-mode
//              BatchNorm, which its pure policy-gradient actor needs; CriticInputs in actor_critic.hpp).
#include <map>
#include <string>

#include "coordiff/core/error.hpp"
#include "coordiff/offline/actor_critic.hpp"
#include "coordiff/offline/objective/behaviour_cloned.hpp"
#include "coordiff/offline/objective/policy_gradient.hpp"
#include "coordiff/offline/objective/rectified.hpp"

namespace coordiff::offline {

template <class T = float>
using Td3Bc = ActorCritic<T, objective::BehaviourCloned>;
template <class T = float>
using Omar = ActorCritic<T, objective::Rectified>;
template <class T = float>
using Cfcql = ActorCritic<T, objective::PolicyGradient>;

enum class Algorithm { Td3Bc, Omar, Cfcql };

inline Algorithm parse_algorithm(const std::string& s) {
  if (s == "td3bc") return Algorithm::Td3Bc;
  if (s == "omar") return Algorithm::Omar;
  if (s == "cfcql") return Algorithm::Cfcql;
  throw ConfigError("algorithm must be td3bc, omar or cfcql, got '" + s + "'");
}
inline std::string to_string(Algorithm a) {
  return a == Algorithm::Td3Bc ? "td3bc" : a == Algorithm::Omar ? "omar" : "cfcql";
}

namespace detail {
/// Per-dataset value from a {env: {quality: value}} table; fallback when either is not listed.
inline double dataset_value(const std::map<std::string, std::map<std::string, double>>& table, const std::string& env,
                            const std::string& quality, double fallback) {
  const auto e = table.find(env);
  if (e == table.end()) return fallback;
  const auto q = e->second.find(quality);
  return q == e->second.end() ? fallback : q->second;
}
}  // namespace detail

/// Everything that configures one learner; defaults via published_settings().
struct LearnerSettings {
  Algorithm algorithm = Algorithm::Td3Bc;
  ActorCriticOptions options;
  double td3bc_alpha = 2.5;
  double omar_coefficient = 1.0;
  ZerothOrderOptions omar_search;
  index_t rounds = 2000;  ///< gradient rounds of the published runs
};

/// The published settings for an MPE env (spread|tag|world) and dataset quality
/// (random|medium-replay|medium|expert); unknown pairs get the spread medium-replay values.
inline LearnerSettings published_settings(Algorithm algo, const std::string& env, const std::string& quality) {
  LearnerSettings s;
  s.algorithm = algo;
  ActorCriticOptions& o = s.options;
  // OMAR main.py: one update round per 100 environment steps of num_steps; spread/tag 2e5, spread-random
  // 6e5, tag-medium-replay 1e5, world 1e5.
  s.rounds = env == "world" ? 1000 : (env == "spread" && quality == "random") ? 6000
                                     : (env == "tag" && quality == "medium-replay") ? 1000 : 2000;
  switch (algo) {
    case Algorithm::Td3Bc:
      o.target_noise = 0.2, o.target_noise_clip = 0.5, o.policy_delay = 2;
      break;
    case Algorithm::Omar:
      o.cql_alpha = detail::dataset_value({{"spread", {{"random", 0.5}, {"medium-replay", 1.0}, {"medium", 5.0}, {"expert", 5.0}}},
                                           {"tag", {{"random", 0.5}, {"medium-replay", 0.5}, {"medium", 5.0}, {"expert", 5.0}}},
                                           {"world", {{"random", 0.5}, {"medium-replay", 1.0}, {"medium", 0.5}, {"expert", 5.0}}}},
                                          env, quality, 1.0);
      s.omar_coefficient = detail::dataset_value({{"spread", {{"random", 1.0}, {"medium-replay", 1.0}, {"medium", 1.0}, {"expert", 1.0}}},
                                                  {"tag", {{"random", 0.9}, {"medium-replay", 0.9}, {"medium", 0.7}, {"expert", 0.9}}},
                                                  {"world", {{"random", 1.0}, {"medium-replay", 0.7}, {"medium", 0.1}, {"expert", 0.9}}}},
                                                 env, quality, 1.0);
      break;
    case Algorithm::Cfcql:
      o.critic = CriticLayout::Centralised;
      o.critic_inputs = CriticInputs::BatchStatistics;
      o.target_noise = 0.05;
      o.critic_updates = 5;
      o.cql_alpha = detail::dataset_value({{"spread", {{"random", 0.5}, {"medium-replay", 1.0}, {"medium", 5.0}, {"expert", 2.5}}},
                                           {"tag", {{"random", 0.5}, {"medium-replay", 0.5}, {"medium", 0.6}, {"expert", 2.0}}},
                                           {"world", {{"random", 0.5}, {"medium-replay", 0.5}, {"medium", 0.32}, {"expert", 0.3}}}},
                                          env, quality, 1.0);
      if (env != "spread") o.actor_lr = o.critic_lr = 1e-3;
      if (env == "world") s.rounds = 5000;  // CFCQL: steps_per_update 20 on world
      break;
  }
  return s;
}

/// Calls f(learner) with the learner the settings describe, constructed for the given sizes.
template <class T, class F>
decltype(auto) with_learner(const LearnerSettings& s, index_t agents, index_t obs_dim, index_t act_dim, F&& f) {
  switch (s.algorithm) {
    case Algorithm::Td3Bc: {
      Td3Bc<T> l(agents, obs_dim, act_dim, s.options, objective::BehaviourCloned{.alpha = s.td3bc_alpha});
      return f(l);
    }
    case Algorithm::Omar: {
      Omar<T> l(agents, obs_dim, act_dim, s.options,
                objective::Rectified{.coefficient = s.omar_coefficient, .search = s.omar_search});
      return f(l);
    }
    default: {
      Cfcql<T> l(agents, obs_dim, act_dim, s.options);
      return f(l);
    }
  }
}

}  // namespace coordiff::offline
