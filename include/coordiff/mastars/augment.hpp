#pragma once
// Data augmentation with a trained MASTARS model (paper 000, Algorithm 1):
//   1. pick `num` windows of H steps from the dataset (Philox, without replacement while possible);
//   2. per batch: values V(o) of every step (subgoals, LOV order), condition every agent on the target
//      return, run the generator of the chosen method, keep what the dynamics filter accepts (eq. 6);
//   3. recover actions (inverse dynamics) and rewards (reward model) of the accepted windows, map
//      everything back from [-1, 1], and append each window as an episode of H - 1 transitions (timeouts
//      mark its end) after the original episodes.
// The report holds the acceptance rate, the generated fraction (paper Table 7), DIRE of original and
// generated windows (Appendix G), the collision rate, mean window returns and the time of every stage.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordiff/core/progress.hpp"
#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/env/double_integrator.hpp"
#include "coordiff/env/mpe/safe_spread.hpp"
#include "coordiff/guidance/none.hpp"
#include "coordiff/mastars/compositions.hpp"
#include "coordiff/mastars/training.hpp"

namespace coordiff::mastars {

enum class Method { Lov, Sg, Reverse, Random, Joint, Independent };

inline Method parse_method(const std::string& s) {
  if (s == "lov") return Method::Lov;
  if (s == "sg") return Method::Sg;
  if (s == "reverse") return Method::Reverse;
  if (s == "random") return Method::Random;
  if (s == "joint") return Method::Joint;
  if (s == "independent") return Method::Independent;
  throw ConfigError("--order must be lov, sg, joint, independent, random or reverse, got '" + s + "'");
}
inline std::string to_string(Method m) {
  switch (m) {
    case Method::Lov: return "lov";
    case Method::Sg: return "sg";
    case Method::Reverse: return "reverse";
    case Method::Random: return "random";
    case Method::Joint: return "joint";
    case Method::Independent: return "independent";
  }
  return "?";
}

struct Augmentation {
  data::OfflineDataset<float> dataset;  ///< original episodes, then one episode per accepted window
  Tensor<float> original;               ///< the picked windows [N, H, A, O] (raw observations)
  Tensor<float> generated;              ///< their generated versions [N, H, A, O] (raw observations)
  std::vector<std::uint8_t> accepted;   ///< per picked window
  nlohmann::json report;
};

namespace detail {
using Clock = std::chrono::steady_clock;
inline double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// `num` window indices out of N: a Philox permutation, cycled when num > N.
inline std::vector<index_t> pick_windows(index_t N, index_t num, std::uint64_t seed) {
  std::vector<index_t> perm(static_cast<std::size_t>(N));
  std::iota(perm.begin(), perm.end(), index_t{0});
  const Philox gen(seed ^ 0x7069636bull, 0);
  for (index_t i = N - 1; i > 0; --i)
    std::swap(perm[static_cast<std::size_t>(i)],
              perm[static_cast<std::size_t>(gen.bits(static_cast<std::uint64_t>(i)) % static_cast<std::uint64_t>(i + 1))]);
  std::vector<index_t> out(static_cast<std::size_t>(num));
  for (index_t k = 0; k < num; ++k) out[static_cast<std::size_t>(k)] = perm[static_cast<std::size_t>(k % N)];
  return out;
}

/// Rows [first, first + count) of x along its first axis.
inline Tensor<float> row_range(const Tensor<float>& x, index_t first, index_t count) {
  return x.view().slice(0, first, first + count).contiguous();
}

/// The environment named in a dataset's meta ("" if none).
inline std::string env_of(const std::string& meta) {
  try {
    const auto j = nlohmann::json::parse(meta);
    if (j.is_object() && j.contains("env") && j.at("env").is_string()) return j.at("env").get<std::string>();
  } catch (const nlohmann::json::exception&) {
  }
  return "";
}

/// Whether the safety costs of windows of this environment can be recomputed from their observations.
inline bool has_window_costs(const std::string& env) { return env == "safe-spread" || env == "double-integrator"; }

/// The double integrator's configuration as `gen-data` records it in a dataset's meta (defaults for what is
/// not there).
inline env::DoubleIntegratorConfig double_integrator_config_of(const std::string& meta) {
  env::DoubleIntegratorConfig cfg;
  const auto j = nlohmann::json::parse(meta, nullptr, false);
  if (!j.is_object()) return cfg;
  const auto number = [](const nlohmann::json& o, const char* key, auto& into) {
    if (o.contains(key) && o.at(key).is_number()) into = o.at(key).get<std::decay_t<decltype(into)>>();
  };
  number(j, "agents", cfg.agents);
  number(j, "obstacles", cfg.obstacles);
  if (j.contains("config") && j.at("config").is_object()) {
    const auto& c = j.at("config");
    number(c, "dt", cfg.dt), number(c, "max_accel", cfg.max_accel), number(c, "agent_radius", cfg.agent_radius);
    number(c, "gap", cfg.gap), number(c, "obstacle_radius", cfg.obstacle_radius);
  }
  return cfg;
}

/// The safety costs [N, H, A] of raw observation windows [N, H, A, O] of a dataset (named by its meta) whose
/// environment has_window_costs.
inline Tensor<float> window_costs(const std::string& meta, const Tensor<float>& w) {
  const std::string env = env_of(meta);
  require<ConfigError>(has_window_costs(env), "augment: no cost function for environment '", env, "'");
  if (env == "double-integrator") return env::double_integrator_costs_from_observations(w, double_integrator_config_of(meta));
  return env::mpe::safe_spread_costs_from_observations(w);
}

/// Mean over windows of their dangerous agent-steps after the first step (the cost of their H - 1
/// transitions) and the fraction of windows without any: {"mean_cost", "safe_fraction"}.
inline nlohmann::json window_cost_summary(const Tensor<float>& costs) {
  const index_t N = costs.empty() ? 0 : costs.dim(0), H = N ? costs.dim(1) : 0, A = N ? costs.dim(2) : 0;
  double total = 0, safe = 0;
  for (index_t n = 0; n < N; ++n) {
    double c = 0;
    for (index_t t = 1; t < H; ++t)
      for (index_t i = 0; i < A; ++i) c += costs(n, t, i);
    total += c, safe += c == 0;
  }
  return {{"windows", N}, {"mean_cost", N ? total / double(N) : 0.0}, {"safe_fraction", N ? safe / double(N) : 0.0}};
}

/// Overlap distance of two learners in an MPE scenario named in the dataset's meta (positions are
/// observation entries 2 and 3 in all three); 0 if unknown.
inline double collision_distance(const std::string& meta) {
  const std::string env = env_of(meta);
  if (env == "spread" || env == "safe-spread") return 0.3;  // agents of size 0.15
  if (env == "tag" || env == "world") return 0.15;  // adversaries of size 0.075
  return 0.0;
}

/// Share of window steps in which at least one pair of agents overlaps.
inline double collision_rate(const Tensor<float>& w, double distance) {
  const index_t N = w.dim(0), H = w.dim(1), A = w.dim(2);
  if (N == 0) return 0.0;
  index_t hits = 0;
  for (index_t n = 0; n < N; ++n)
    for (index_t t = 0; t < H; ++t) {
      bool hit = false;
      for (index_t i = 0; i < A && !hit; ++i)
        for (index_t j = i + 1; j < A && !hit; ++j)
          hit = std::hypot(w(n, t, i, 2) - w(n, t, j, 2), w(n, t, i, 3) - w(n, t, j, 3)) < distance;
      hits += hit;
    }
  return static_cast<double>(hits) / static_cast<double>(N * H);
}

/// Mean over windows of sum_t mean_i r [N, H - 1, A].
inline double mean_window_return(const Tensor<float>& r) {
  if (r.empty() || r.dim(0) == 0) return 0.0;
  double s = 0;
  for (float v : r) s += v;
  return s / static_cast<double>(r.dim(0) * r.dim(2));
}

/// DIRE (Wang et al. 2023): mean |x0 - R(I(x0))| with I, R deterministic DDIM over `steps` levels,
/// unconditional (the null path of the return condition), in normalised space.
inline double dire(Model<float>& m, const Tensor<float>& x0, index_t steps, index_t batch) {
  if (x0.dim(0) == 0) return 0.0;
  diffusion::SamplerOptions o;
  o.solver = diffusion::Solver::Ddim, o.eta = 0.0, o.clip_sample = false;
  const index_t K = m.config.diffusion.diffusion_steps;
  const diffusion::Sampler<schedule::Cosine> sampler(
      schedule::Cosine(K), diffusion::TimestepPlan::strided(K, std::min(steps, K)), o);
  NetworkRef net(m.net);
  double total = 0;
  const index_t N = x0.dim(0);
  for (index_t b0 = 0; b0 < N; b0 += batch) {
    const index_t B = std::min(batch, N - b0);
    const Tensor<float> x = row_range(x0, b0, B);
    Condition<float> c;
    c.value = m.condition_value(B, 0.0, 0.0);  // every entry dropped: only its shape matters
    c.keep = Tensor<float>({B, x.dim(2)}, 0.0f);
    const Tensor<float> z = sampler.invert(net, guidance::None{}, x, c);
    const Tensor<float> back = sampler.denoise_from(net, guidance::None{}, z, c, diffusion::SampleNoise(0, 0));
    for (index_t i = 0; i < x.size(); ++i) total += std::abs(static_cast<double>(x[i]) - back[i]);
  }
  return total / static_cast<double>(x0.size());
}
}  // namespace detail

/// Runs `method` on `num` windows of `d` (config.augment gives batch size, epsilon, target return and
/// seed). The model's networks are used as they are (its EMA weights after training).
/// `den` is the denoiser the generators sample with: by default the model's own network on the CPU;
/// a Ref to nn::cuda::GpuUNet (loaded from the same network) runs the network on the GPU.
template <class Den = NetworkRef>
Augmentation augment(Model<float>& m, const data::OfflineDataset<float>& d, Method method,
                     std::ostream* progress = nullptr, std::optional<Den> den = std::nullopt) {
  const auto t_all = detail::Clock::now();
  const AugmentConfig& cfg = m.config.augment;
  const index_t H = m.config.diffusion.horizon, A = m.agents, O = m.obs_dim, U = m.act_dim;
  nlohmann::json stages;

  auto t = detail::Clock::now();
  const auto windows = diffusion_windows(m, d);
  const index_t N = windows.size();
  const std::vector<index_t> pick = detail::pick_windows(N, cfg.num, cfg.seed);
  const index_t num = cfg.num;
  const Tensor<float> picked = take_rows(windows.x, pick);
  Tensor<float> samples({num, H, A, O});
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(num), 0);
  std::vector<std::string> reasons(static_cast<std::size_t>(num));
  stages["windows_seconds"] = detail::since(t);

  t = detail::Clock::now();
  double generated_entries = 0, value_seconds = 0;
  std::vector<double> round_seconds;
  index_t denoiser_calls = 0;
  const auto run = [&](auto& gen) {
    for (index_t b0 = 0; b0 < num; b0 += cfg.batch_size) {
      const index_t B = std::min(cfg.batch_size, num - b0);
      diffusion::Batch<float> batch;
      batch.data = detail::row_range(picked, b0, B);
      // Every agent toward the target return (and, in models conditioned on it, "satisfies the CBF").
      batch.condition.value = m.condition_value(B, cfg.target_return);
      const auto tv = detail::Clock::now();
      batch.values = m.value.values(batch.data);
      value_seconds += detail::since(tv);
      batch.first_sample = static_cast<std::uint64_t>(b0);
      const auto out = gen.generate(batch);
      std::copy(out.samples.data(), out.samples.data() + out.samples.size(), samples.data() + b0 * H * A * O);
      for (index_t b = 0; b < B; ++b) {
        keep[static_cast<std::size_t>(b0 + b)] = out.keep[static_cast<std::size_t>(b)];
        reasons[static_cast<std::size_t>(b0 + b)] = out.reason[static_cast<std::size_t>(b)];
      }
      generated_entries += out.stats.generated_fraction * static_cast<double>(B);
      denoiser_calls += out.stats.denoiser_calls;
      round_seconds.resize(std::max(round_seconds.size(), out.stats.round_seconds.size()), 0.0);
      for (std::size_t r = 0; r < out.stats.round_seconds.size(); ++r) round_seconds[r] += out.stats.round_seconds[r];
      if (progress) draw_progress(*progress, "generated windows", b0 + B, num);
    }
  };
  // The filter is a compile-time policy: the dynamics filter, or with augment.cbf_filter also the CBF one.
  const auto generate_with = [&]<class Filter>() {
    switch (method) {
      case Method::Lov: { auto g = make_mastars<order::LastObsValue, Den, Filter>(m, {}, den); run(g); break; }
      case Method::Sg: { auto g = make_mastars<order::SubgoalIndex, Den, Filter>(m, {}, den); run(g); break; }
      case Method::Reverse: { auto g = make_mastars<order::Reverse, Den, Filter>(m, {}, den); run(g); break; }
      case Method::Random: { auto g = make_mastars<order::Random, Den, Filter>(m, order::Random{cfg.seed}, den); run(g); break; }
      case Method::Joint: { auto g = make_joint_baseline<Den, Filter>(m, den); run(g); break; }
      case Method::Independent: { auto g = make_independent_baseline<Den, Filter>(m, den); run(g); break; }
    }
  };
  if (cfg.cbf_filter) generate_with.template operator()<SafeConsistency>();
  else generate_with.template operator()<Consistency>();
  stages["generation_seconds"] = detail::since(t);
  stages["value_seconds"] = value_seconds;
  stages["round_seconds"] = round_seconds;

  // Post-processing: the accepted windows' actions and rewards, back in raw units.
  t = detail::Clock::now();
  std::vector<index_t> accepted;
  for (index_t k = 0; k < num; ++k)
    if (keep[static_cast<std::size_t>(k)]) accepted.push_back(k);
  const auto n_acc = static_cast<index_t>(accepted.size());
  Augmentation out;
  out.accepted = keep;
  out.original = m.obs_norm.unnormalize(picked);
  out.generated = m.obs_norm.unnormalize(samples);
  m.obs_norm.restore_constant_features(out.generated);
  const Tensor<float> acc_norm = take_rows(samples, accepted);
  Tensor<float> acc_actions, acc_rewards, orig_rewards_model;
  if (n_acc > 0) {
    const Tensor<float> a_norm = m.inverse.actions(acc_norm);
    acc_rewards = m.reward.rewards(acc_norm, a_norm);
    acc_actions = m.act_norm.unnormalize(a_norm);
  }
  {
    const Tensor<float> orig = take_rows(picked, accepted);
    if (n_acc > 0) orig_rewards_model = m.reward.rewards(orig, m.inverse.actions(orig));
  }
  // The dataset: original episodes, then the accepted windows as episodes of H - 1 transitions.
  const index_t E = d.episodes(), T = d.steps();
  data::OfflineDataset<float>& o = out.dataset;
  o.observations = Tensor<float>({E + n_acc, T, A, O});
  o.next_observations = Tensor<float>({E + n_acc, T, A, O});
  o.actions = Tensor<float>({E + n_acc, T, A, U});
  o.rewards = Tensor<float>({E + n_acc, T, A});
  o.terminals = Tensor<float>({E + n_acc, T});
  o.timeouts = Tensor<float>({E + n_acc, T});
  const auto copy_front = [](const Tensor<float>& from, Tensor<float>& to) {
    std::copy(from.data(), from.data() + from.size(), to.data());
  };
  copy_front(d.observations, o.observations);
  copy_front(d.next_observations.empty() ? d.observations : d.next_observations, o.next_observations);
  copy_front(d.actions, o.actions);
  copy_front(d.rewards, o.rewards);
  copy_front(d.terminals, o.terminals);
  if (!d.timeouts.empty()) copy_front(d.timeouts, o.timeouts);
  if (d.next_observations.empty())  // o'_t = o_{t+1}; the last step has no successor and keeps o' = o
    for (index_t e = 0; e < E; ++e)
      for (index_t s = 0; s + 1 < T; ++s)
        for (index_t j = 0; j < A * O; ++j) o.next_observations[(e * T + s) * A * O + j] = d.observations[(e * T + s + 1) * A * O + j];
  const Tensor<float> acc_raw = take_rows(out.generated, accepted);
  for (index_t k = 0; k < n_acc; ++k) {
    const index_t e = E + k;
    for (index_t s = 0; s < T; ++s) {
      const index_t st = std::min(s, H - 2);  // steps past the window repeat its last transition (ignored)
      for (index_t i = 0; i < A; ++i) {
        for (index_t j = 0; j < O; ++j) {
          o.observations(e, s, i, j) = acc_raw(k, st, i, j);
          o.next_observations(e, s, i, j) = acc_raw(k, st + 1, i, j);
        }
        for (index_t u = 0; u < U; ++u) o.actions(e, s, i, u) = acc_actions(k, st, i, u);
        o.rewards(e, s, i) = acc_rewards(k, st, i);
      }
    }
    o.timeouts(e, H - 2) = 1;
  }
  // Safety costs: the original episodes' and, for the generated windows, recomputed from their
  // observations (the cost of a transition is that of the state it leads to). A dataset with costs of an
  // environment whose costs cannot be recomputed loses them (the report says so).
  const std::string env_name = detail::env_of(d.meta);
  const bool with_costs = !d.costs.empty() && detail::has_window_costs(env_name);
  Tensor<float> gen_costs, acc_costs;
  if (with_costs) {
    gen_costs = detail::window_costs(d.meta, out.generated);
    acc_costs = take_rows(gen_costs, accepted);
    o.costs = Tensor<float>({E + n_acc, T, A}, 0.0f);
    copy_front(d.costs, o.costs);
    for (index_t k = 0; k < n_acc; ++k)
      for (index_t s = 0; s < T; ++s)
        for (index_t i = 0; i < A; ++i) o.costs(E + k, s, i) = acc_costs(k, std::min(s, H - 2) + 1, i);
  }
  stages["postprocess_seconds"] = detail::since(t);

  // Report.
  t = detail::Clock::now();
  const double d_orig = detail::dire(m, picked, cfg.dire_steps, cfg.batch_size);
  const double d_gen_all = detail::dire(m, samples, cfg.dire_steps, cfg.batch_size);
  const double d_gen = detail::dire(m, acc_norm, cfg.dire_steps, cfg.batch_size);
  stages["dire_seconds"] = detail::since(t);
  const double coll = detail::collision_distance(d.meta);
  nlohmann::json r;
  r["method"] = to_string(method);
  r["windows_tried"] = num;
  r["windows_accepted"] = n_acc;
  r["acceptance_rate"] = static_cast<double>(n_acc) / static_cast<double>(num);
  r["generated_fraction"] = generated_entries / static_cast<double>(num);
  r["dire"] = {{"original", d_orig}, {"generated", d_gen}, {"generated_all", d_gen_all}, {"ddim_steps", cfg.dire_steps}};
  if (coll > 0)
    r["collision_rate"] = {{"original", detail::collision_rate(take_rows(out.original, accepted), coll)},
                           {"generated", detail::collision_rate(acc_raw, coll)},
                           {"distance", coll}};
  if (with_costs) {
    const Tensor<float> orig_costs = detail::window_costs(d.meta, out.original);
    r["cost"] = {{"original_picked", detail::window_cost_summary(orig_costs)},
                 {"original_of_accepted", detail::window_cost_summary(take_rows(orig_costs, accepted))},
                 {"generated_all", detail::window_cost_summary(gen_costs)},
                 {"generated_accepted", detail::window_cost_summary(acc_costs)},
                 {"definition", "dangerous agent-steps of a window's H - 1 transitions (Definition 3)"}};
  } else if (!d.costs.empty()) {
    r["cost"] = "the dataset has costs, but they cannot be recomputed for environment '" + env_name +
                "': the augmented dataset carries none";
  }
  r["cbf_filter"] = cfg.cbf_filter;
  r["mean_window_return"] = {{"original_reward_model", detail::mean_window_return(orig_rewards_model)},
                             {"generated_reward_model", detail::mean_window_return(acc_rewards)}};
  {  // Filter scores (eq. 6) of every generated window, and of the original windows over all their
     // transitions: the transition model's own error on real data, the floor any epsilon is measured against.
    const auto consistency = filter::dynamics_consistency(m.inverse, m.transition, cfg.epsilon);
    auto all = consistency;
    all.scope = Consistency::Scope::All;
    diffusion::Batch<float> as_input;
    as_input.data = picked;
    const std::vector<double> gen_scores = consistency.score(samples, as_input), orig_scores = all.score(picked, as_input);
    const auto summary = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      const auto q = [&](double p) { return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))]; };
      return nlohmann::json{{"mean", std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size())},
                            {"p10", q(0.1)}, {"median", q(0.5)}, {"p90", q(0.9)}};
    };
    r["filter_score"] = {{"generated", summary(gen_scores)}, {"original_all_transitions", summary(orig_scores)}};
  }
  r["denoiser_calls"] = denoiser_calls;
  r["epsilon"] = cfg.epsilon;
  r["seed"] = cfg.seed;
  r["original_episodes"] = E;
  stages["total_seconds"] = detail::since(t_all);
  r["seconds"] = stages;
  std::vector<std::string> first_rejections;
  for (std::size_t k = 0; k < reasons.size() && first_rejections.size() < 5; ++k)
    if (!keep[k]) first_rejections.push_back(reasons[k]);
  r["example_rejections"] = first_rejections;
  if (cfg.cbf_filter) {  // both filters' verdicts: the CBF one counts windows the dynamics filter kept
    index_t by_cbf = 0;
    for (std::size_t k = 0; k < reasons.size(); ++k) by_cbf += !keep[k] && reasons[k].rfind("CBF condition", 0) == 0;
    r["rejected"] = {{"by_dynamics", num - n_acc - by_cbf}, {"by_cbf_only", by_cbf}};
  }
  out.report = r;

  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(d.meta);
  } catch (const nlohmann::json::exception&) {
    meta = nlohmann::json::object();
  }
  if (!meta.is_object()) meta = nlohmann::json::object();
  meta["augmentation"] = {{"method", to_string(method)}, {"original_episodes", E}, {"generated_windows", n_acc},
                          {"window_transitions", H - 1}, {"windows_tried", num}, {"seed", cfg.seed},
                          {"epsilon", cfg.epsilon}, {"target_return", cfg.target_return},
                          {"note", "episodes from original_episodes on are generated windows; timeouts mark their end"}};
  o.meta = meta.dump();
  o.validate("augmented dataset");
  return out;
}

}  // namespace coordiff::mastars
