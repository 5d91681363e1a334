// coordiff plan: closed-loop episodes of a safety task (the double integrator or SafeSpread) with a
// diffusion planner (planning/closed_loop.hpp) or a reference controller, and their safe rate, cost,
// normalised return and planning time per step. The random and nominal controllers run on the same
// episodes every time: they are the 0 and 100 of the normalised return.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>

#include "coordiff/core/philox.hpp"
#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/env/double_integrator_shield.hpp"
#include "coordiff/env/mpe/safe_spread_shield.hpp"
#include "coordiff/env/mpe/safe_spread_behaviour.hpp"
#include "coordiff/io/json_file.hpp"
#include "coordiff/planning/closed_loop.hpp"
#include "coordiff/planning/model_cbf_shield.hpp"
#include "cli_flags.hpp"
#include "commands.hpp"

namespace coordiff::cli {

namespace {

double mean_of(const std::vector<double>& v) { return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }

nlohmann::json summary(const planning::EpisodeStats& s, double random_return, double nominal_return, index_t envs) {
  const double R = mean_of(s.returns);
  const double span = nominal_return - random_return;
  return {{"episodes", s.returns.size()},
          {"safe_rate", s.safe_rate()},
          {"unsafe_start_rate", s.unsafe_start_rate()},
          {"safe_rate_of_safe_starts", s.safe_rate_of_safe_starts()},
          {"mean_cost", mean_of(s.costs)},
          {"mean_return", R},
          {"normalised_return", std::abs(span) > 0 ? 100.0 * (R - random_return) / span : 0.0},
          {"plan_ms_per_step", s.steps > 0 ? 1e3 * s.plan_seconds / double(s.steps) / double(envs) : 0.0},
          {"plan_ms_per_batched_step", s.steps > 0 ? 1e3 * s.plan_seconds / double(s.steps) : 0.0},
          {"returns", s.returns},
          {"costs", s.costs},
          {"start_costs", s.start_costs}};
}

/// A policy of the closed loop: (observations [B, A, O], step) -> actions [B, A, 2].
using Policy = std::function<Tensor<double>(const Tensor<double>&, index_t)>;

/// Every episode of a task, `batch` environments at a time (environment e is the same whatever the
/// batch); make_policy(env) gives the policy for one batch of environments.
template <class Env, class MakeEnv, class MakePolicy>
planning::EpisodeStats run_all(MakeEnv make_env, index_t steps, index_t episodes, index_t batch, std::uint64_t seed,
                               MakePolicy&& make_policy) {
  planning::EpisodeStats all;
  for (index_t first = 0; first < episodes; first += batch) {
    const index_t B = std::min(batch, episodes - first);
    Env e = make_env(B);
    e.reset(seed, static_cast<std::uint64_t>(first));
    Policy policy = make_policy(e);
    const auto s = planning::run_closed_loop(e, policy, steps);
    all.returns.insert(all.returns.end(), s.returns.begin(), s.returns.end());
    all.costs.insert(all.costs.end(), s.costs.begin(), s.costs.end());
    all.start_costs.insert(all.start_costs.end(), s.start_costs.begin(), s.start_costs.end());
    all.plan_seconds += s.plan_seconds;
    all.steps += s.steps;
  }
  return all;
}

/// Uniform random actions in [-bound, bound]^2, the same on every run with this seed.
Policy uniform_policy(std::uint64_t seed, double bound) {
  return [seed, bound](const Tensor<double>& obs, index_t t) {
    Rng rng(seed ^ 0x52414e44u, static_cast<std::uint64_t>(t));  // "RAND"
    return rng.uniform<double>({obs.dim(0), obs.dim(1), 2}, -bound, bound);
  };
}

/// Actions clipped to [-bound, bound] (the data's range; the MPE simulator does not clip them itself).
Policy clipped(Policy p, double bound) {
  return [p = std::move(p), bound](const Tensor<double>& obs, index_t t) {
    Tensor<double> a = p(obs, t);
    for (auto& v : a) v = std::clamp(v, -bound, bound);
    return a;
  };
}

}  // namespace

int plan(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"env", "model", "planner", "episodes", "seed", "out", "agents", "obstacles",
                                             "episode-length", "sampling-steps", "target-return", "target-cbf",
                                             "guidance-weight", "cbf-guidance", "candidates", "batch", "spacing",
                                             "shield", "cbf-shield", "cbf-shield-alpha", "cbf-shield-margin"});
  const std::string env_name = required(f, "env"), planner = required(f, "planner"), out = required(f, "out");
  require<ConfigError>(env_name == "double-integrator" || env_name == "safe-spread",
                       "--env: plan runs double-integrator or safe-spread, got '", env_name, "'");
  const bool safe_spread = env_name == "safe-spread";
  const long long shield = integer_flag(f, "shield", 0, 0);
  require<ConfigError>(shield <= 1, "--shield must be 0 or 1, got ", shield);
  const long long cbf_shield = integer_flag(f, "cbf-shield", 0, 0);
  require<ConfigError>(cbf_shield <= 1, "--cbf-shield must be 0 or 1, got ", cbf_shield);
  require<ConfigError>(!(shield && cbf_shield), "--shield 1 and --cbf-shield 1: give one of the two shields");
  const std::string spacing = f.count("spacing") ? f.at("spacing") : "leading";
  const diffusion::Spacing spacing_kind = diffusion::parse_spacing(spacing);  // refuses a bad --spacing up front
  const bool diffusion = planner != "nominal" && planner != "random";
  require<ConfigError>(!diffusion || planner == "diffusion" || planner == "guided" || planner == "filtered" ||
                           planner == "guided-filtered",
                       "--planner must be diffusion, guided, filtered, guided-filtered, nominal or random, got '", planner, "'");
  env::DoubleIntegratorConfig cfg;
  if (safe_spread) {
    for (const char* k : {"agents", "obstacles", "episode-length"})
      require<ConfigError>(!f.count(k), "--", k, ": safe-spread has 3 agents, 2 hazards and 25 steps; the flag is for "
                           "double-integrator");
  } else {
    cfg.agents = integer_flag(f, "agents", cfg.agents, 2);
    cfg.obstacles = integer_flag(f, "obstacles", cfg.obstacles, 0);
    cfg.episode_length = integer_flag(f, "episode-length", cfg.episode_length, 1);
    cfg.validate();
  }
  using SafeSpread = env::mpe::SafeSpreadScenario;
  const index_t agents = safe_spread ? SafeSpread::kAgents : cfg.agents;
  const index_t obs_dim = safe_spread ? SafeSpread::obs_dim(0) : cfg.obs_dim();
  const index_t T = safe_spread ? env::mpe::kEpisodeLength : cfg.episode_length;
  const double bound = safe_spread ? 1.0 : cfg.max_accel;  // the actions' range
  const index_t episodes = integer_flag(f, "episodes", 100, 1), batch = integer_flag(f, "batch", 100, 1);
  const auto seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  // The model first, so that a bad --model fails before any episode runs. The learned-CBF shield uses the
  // model's CBF, so it needs one for every planner.
  std::optional<mastars::Model<float>> model;
  std::filesystem::path model_dir;
  if (diffusion || cbf_shield) {
    model_dir = required(f, "model");
    model = mastars::Model<float>::load(model_dir);
    require<ShapeError>(model->agents == agents && model->obs_dim == obs_dim && model->act_dim == 2, "--model ",
                        model_dir.string(), ": the model is for ", model->agents, " agents with observations ", model->obs_dim,
                        ", the task has ", agents, " agents with observations ", obs_dim);
    require<ConfigError>(!cbf_shield || model->has_cbf(), "--cbf-shield 1: the model ", model_dir.string(),
                         " has no trained CBF (train it on a dataset with costs)");
  }
  // The learned-CBF shield's condition (dh/dt + alpha h >= margin): the CBF's own training values unless given.
  safety::CbfQpShieldOptions cbf_shield_options;
  if (cbf_shield) {
    cbf_shield_options = planning::model_cbf_shield_options(*model, bound);
    cbf_shield_options.condition.alpha = number_flag(f, "cbf-shield-alpha", cbf_shield_options.condition.alpha);
    cbf_shield_options.condition.margin = number_flag(f, "cbf-shield-margin", cbf_shield_options.condition.margin);
    cbf_shield_options.validate();
  } else {
    for (const char* k : {"cbf-shield-alpha", "cbf-shield-margin"})
      require<ConfigError>(!f.count(k), "--", k, " is for --cbf-shield 1");
  }

  // The braking shield (env/double_integrator_shield.hpp, env/mpe/safe_spread_shield.hpp) or the model's
  // learned CBF as a CBF-QP shield (planning/model_cbf_shield.hpp) on the evaluated planner's actions, when asked.
  const auto shielded = [&](auto& e, Policy p) -> Policy {
    if (cbf_shield)
      return [&e, &m = *model, p = std::move(p), o = cbf_shield_options](const Tensor<double>& obs, index_t t) {
        return planning::model_cbf_shield(e, m, obs, p(obs, t), o);
      };
    if (!shield) return p;
    if constexpr (std::is_same_v<std::decay_t<decltype(e)>, env::DoubleIntegratorEnv>)
      return [&e, p = std::move(p), o = env::double_integrator_shield_options(cfg)](const Tensor<double>& obs, index_t t) {
        return env::double_integrator_shield(e, p(obs, t), o);
      };
    else
      return [&e, p = std::move(p), o = env::mpe::safe_spread_shield_options()](const Tensor<double>& obs, index_t t) {
        return env::mpe::safe_spread_shield(e, p(obs, t), o);
      };
  };
  // Every episode of the task with make_policy(env) -> Policy.
  const auto run = [&](auto make_policy) {
    if (safe_spread)
      return run_all<env::mpe::SafeSpreadEnv>([](index_t B) { return env::mpe::SafeSpreadEnv(B); }, T, episodes, batch, seed,
                                              make_policy);
    return run_all<env::DoubleIntegratorEnv>([&cfg](index_t B) { return env::DoubleIntegratorEnv(B, cfg); }, T, episodes, batch,
                                             seed, make_policy);
  };
  // The reference controllers: the behaviour data's nominal controller (LQR on the double integrator, the
  // landmark-assignment PD law on SafeSpread; both blind to the others and the obstacles) and uniform actions.
  const auto nominal_policy = [&](auto& e) -> Policy {
    if constexpr (std::is_same_v<std::decay_t<decltype(e)>, env::DoubleIntegratorEnv>) {
      const env::LqrGains gains = env::DoubleIntegratorCollectOptions{}.gains;
      return [&e, gains](const Tensor<double>&, index_t) { return env::nominal_actions(e, gains); };
    } else {
      const env::mpe::SafeSpreadBehaviourOptions k;
      return [k](const Tensor<double>& obs, index_t) { return env::mpe::safe_spread_nominal_actions(obs, k.kp, k.kd); };
    }
  };
  const auto random_policy = [&](auto&) -> Policy { return uniform_policy(seed, bound); };
  const auto nominal = run(nominal_policy), random = run(random_policy);
  const double r_random = mean_of(random.returns), r_nominal = mean_of(nominal.returns);

  nlohmann::json result = {{"env", env_name}, {"planner", planner}, {"seed", seed}, {"agents", agents}, {"episode_length", T},
                           {"reference", {{"random_return", r_random}, {"nominal_return", r_nominal}}}};
  if (!safe_spread) result["obstacles"] = cfg.obstacles;
  planning::EpisodeStats stats;
  result["shield"] = shield == 1;
  result["cbf_shield"] = cbf_shield == 1;
  if (cbf_shield)
    result["cbf_shield_condition"] = {{"alpha", cbf_shield_options.condition.alpha},
                                      {"margin", cbf_shield_options.condition.margin},
                                      {"dt", cbf_shield_options.condition.dt},
                                      {"iterations", cbf_shield_options.iterations}};
  if (model) result["model"] = model_dir.string();
  if (!diffusion) {
    // The references above stay unshielded: they are the 0 and 100 of the normalised return.
    if (!shield && !cbf_shield) stats = planner == "nominal" ? nominal : random;
    else if (planner == "nominal") stats = run([&](auto& e) { return shielded(e, nominal_policy(e)); });
    else stats = run([&](auto& e) { return shielded(e, random_policy(e)); });
  } else {
    auto& m = *model;
    planning::PlanOptions o;
    o.sampling_steps = integer_flag(f, "sampling-steps", o.sampling_steps, 1);
    o.spacing = spacing_kind;
    o.target_return = number_flag(f, "target-return", o.target_return);
    o.target_cbf = number_flag(f, "target-cbf", o.target_cbf);
    o.guidance_weight = number_flag(f, "guidance-weight", o.guidance_weight);
    o.cbf_guidance = number_flag(f, "cbf-guidance", o.cbf_guidance);
    o.candidates = integer_flag(f, "candidates", o.candidates, 1);
    o.seed = seed;
    result["condition"] = m.config.safety.conditions_on_cbf() ? "cbf_return" : "return";
    result["options"] = {{"sampling_steps", o.sampling_steps}, {"spacing", spacing}, {"target_return", o.target_return}, {"target_cbf", o.target_cbf},
                         {"guidance_weight", o.guidance_weight >= 0 ? o.guidance_weight : m.config.diffusion.guidance_weight},
                         {"cbf_guidance", o.cbf_guidance}, {"candidates", o.candidates}};
    const auto with = [&]<class Guide, class Filter>() {
      return run([&](auto& e) {
        auto p = std::make_shared<planning::DiffusionPlanner<Guide, Filter>>(m, o);
        Policy plan = clipped(
            [p, T](const Tensor<double>& obs, index_t t) {
              auto a = (*p)(obs, t);
              if ((t + 1) % 10 == 0 || t + 1 == T) std::cerr << "\rplan: step " << t + 1 << "/" << T << std::flush;
              return a;
            },
            bound);
        return shielded(e, std::move(plan));
      });
    };
    using planning::CbfGuidance, planning::PlainGuidance;
    using Cbf = filter::CbfSafe<planning::Barrier>;
    if (planner == "diffusion") stats = with.operator()<PlainGuidance, filter::AcceptAll>();
    else if (planner == "guided") stats = with.operator()<CbfGuidance, filter::AcceptAll>();
    else if (planner == "filtered") stats = with.operator()<PlainGuidance, Cbf>();
    else stats = with.operator()<CbfGuidance, Cbf>();
    std::cerr << "\n";
  }
  result["result"] = summary(stats, r_random, r_nominal, std::min(batch, episodes));
  io::write_json_file(out, result);  // atomic
  const auto& r = result["result"];
  std::cout << "plan " << planner << (shield ? " + shield" : cbf_shield ? " + CBF shield" : "") << ": " << episodes << " episodes, safe " << 100 * r["safe_rate"].get<double>() << " %, cost "
            << r["mean_cost"].get<double>() << ", return " << r["mean_return"].get<double>() << " (normalised "
            << r["normalised_return"].get<double>() << "), " << r["plan_ms_per_step"].get<double>()
            << " ms per environment step; wrote " << out << "\n";
  if (r["unsafe_start_rate"].get<double>() > 0)
    std::cout << "  " << 100 * r["unsafe_start_rate"].get<double>() << " % of the episodes start in the dangerous set; of the others "
              << 100 * r["safe_rate_of_safe_starts"].get<double>() << " % are safe\n";
  return 0;
}

}  // namespace coordiff::cli
