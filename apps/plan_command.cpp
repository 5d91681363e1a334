// coordiff plan: closed-loop episodes of the double-integrator safety task with a diffusion planner
// (planning/closed_loop.hpp) or a reference controller, and their safe rate, cost, normalised return and
// planning time per step. The random and nominal (LQR) controllers run on the same episodes every time:
// they are the 0 and 100 of the normalised return.
#include <cmath>
#include <filesystem>
#include <memory>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>

#include "coordiff/core/philox.hpp"
#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/io/json_file.hpp"
#include "coordiff/planning/closed_loop.hpp"
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
          {"mean_cost", mean_of(s.costs)},
          {"mean_return", R},
          {"normalised_return", std::abs(span) > 0 ? 100.0 * (R - random_return) / span : 0.0},
          {"plan_ms_per_step", s.steps > 0 ? 1e3 * s.plan_seconds / double(s.steps) / double(envs) : 0.0},
          {"plan_ms_per_batched_step", s.steps > 0 ? 1e3 * s.plan_seconds / double(s.steps) : 0.0},
          {"returns", s.returns},
          {"costs", s.costs}};
}

/// Every episode of the plan, `batch` environments at a time (environment e is the same whatever the batch).
template <class Policy>
planning::EpisodeStats run_all(const env::DoubleIntegratorConfig& cfg, index_t episodes, index_t batch, std::uint64_t seed,
                               Policy&& make_policy) {
  planning::EpisodeStats all;
  for (index_t first = 0; first < episodes; first += batch) {
    const index_t B = std::min(batch, episodes - first);
    env::DoubleIntegratorEnv e(B, cfg);
    e.reset(seed, static_cast<std::uint64_t>(first));
    auto policy = make_policy(e);
    const auto s = planning::run_closed_loop(e, policy, cfg.episode_length);
    all.returns.insert(all.returns.end(), s.returns.begin(), s.returns.end());
    all.costs.insert(all.costs.end(), s.costs.begin(), s.costs.end());
    all.plan_seconds += s.plan_seconds;
    all.steps += s.steps;
  }
  return all;
}

}  // namespace

int plan(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"env", "model", "planner", "episodes", "seed", "out", "agents", "obstacles",
                                             "episode-length", "sampling-steps", "target-return", "target-cbf",
                                             "guidance-weight", "cbf-guidance", "candidates", "batch"});
  const std::string env_name = required(f, "env"), planner = required(f, "planner"), out = required(f, "out");
  require<ConfigError>(env_name == "double-integrator", "--env: plan runs the double-integrator task, got '", env_name, "'");
  const bool diffusion = planner != "nominal" && planner != "random";
  require<ConfigError>(!diffusion || planner == "diffusion" || planner == "guided" || planner == "filtered" ||
                           planner == "guided-filtered",
                       "--planner must be diffusion, guided, filtered, guided-filtered, nominal or random, got '", planner, "'");
  env::DoubleIntegratorConfig cfg;
  cfg.agents = integer_flag(f, "agents", cfg.agents, 2);
  cfg.obstacles = integer_flag(f, "obstacles", cfg.obstacles, 0);
  cfg.episode_length = integer_flag(f, "episode-length", cfg.episode_length, 1);
  cfg.validate();
  const index_t episodes = integer_flag(f, "episodes", 100, 1), batch = integer_flag(f, "batch", 100, 1);
  const auto seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  const env::LqrGains gains = env::DoubleIntegratorCollectOptions{}.gains;  // the behaviour data's nominal controller
  // The model first, so that a bad --model fails before any episode runs.
  std::optional<mastars::Model<float>> model;
  std::filesystem::path model_dir;
  if (diffusion) {
    model_dir = required(f, "model");
    model = mastars::Model<float>::load(model_dir);
    require<ShapeError>(model->agents == cfg.agents && model->obs_dim == cfg.obs_dim() && model->act_dim == 2, "--model ",
                        model_dir.string(), ": the model is for ", model->agents, " agents with observations ", model->obs_dim,
                        ", the task has ", cfg.agents, " agents with observations ", cfg.obs_dim());
  }

  const auto nominal = run_all(cfg, episodes, batch, seed, [&](env::DoubleIntegratorEnv& e) {
    return [&e, gains](const Tensor<double>&, index_t) { return env::nominal_actions(e, gains); };
  });
  const auto random = run_all(cfg, episodes, batch, seed, [&](env::DoubleIntegratorEnv& e) {
    return [&e, seed](const Tensor<double>& obs, index_t t) {
      Rng rng(seed ^ 0x52414e44u, static_cast<std::uint64_t>(t));  // "RAND"
      Tensor<double> a = rng.uniform<double>({obs.dim(0), obs.dim(1), 2}, -e.config().max_accel, e.config().max_accel);
      return a;
    };
  });
  const double r_random = mean_of(random.returns), r_nominal = mean_of(nominal.returns);

  nlohmann::json result = {{"env", env_name}, {"planner", planner}, {"seed", seed}, {"agents", cfg.agents},
                           {"obstacles", cfg.obstacles}, {"episode_length", cfg.episode_length},
                           {"reference", {{"random_return", r_random}, {"nominal_return", r_nominal}}}};
  planning::EpisodeStats stats;
  if (!diffusion) {
    stats = planner == "nominal" ? nominal : random;
  } else {
    auto& m = *model;
    planning::PlanOptions o;
    o.sampling_steps = integer_flag(f, "sampling-steps", o.sampling_steps, 1);
    o.target_return = number_flag(f, "target-return", o.target_return);
    o.target_cbf = number_flag(f, "target-cbf", o.target_cbf);
    o.guidance_weight = number_flag(f, "guidance-weight", o.guidance_weight);
    o.cbf_guidance = number_flag(f, "cbf-guidance", o.cbf_guidance);
    o.candidates = integer_flag(f, "candidates", o.candidates, 1);
    o.seed = seed;
    result["model"] = model_dir.string();
    result["condition"] = m.config.safety.conditions_on_cbf() ? "cbf_return" : "return";
    result["options"] = {{"sampling_steps", o.sampling_steps}, {"target_return", o.target_return}, {"target_cbf", o.target_cbf},
                         {"guidance_weight", o.guidance_weight >= 0 ? o.guidance_weight : m.config.diffusion.guidance_weight},
                         {"cbf_guidance", o.cbf_guidance}, {"candidates", o.candidates}};
    const index_t T = cfg.episode_length;
    const auto with = [&]<class Guide, class Filter>() {
      return run_all(cfg, episodes, batch, seed, [&](env::DoubleIntegratorEnv&) {
        return [p = std::make_shared<planning::DiffusionPlanner<Guide, Filter>>(m, o), T](const Tensor<double>& obs, index_t t) {
          auto a = (*p)(obs, t);
          if ((t + 1) % 10 == 0 || t + 1 == T) std::cerr << "\rplan: step " << t + 1 << "/" << T << std::flush;
          return a;
        };
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
  std::cout << "plan " << planner << ": " << episodes << " episodes, safe " << 100 * r["safe_rate"].get<double>() << " %, cost "
            << r["mean_cost"].get<double>() << ", return " << r["mean_return"].get<double>() << " (normalised "
            << r["normalised_return"].get<double>() << "), " << r["plan_ms_per_step"].get<double>()
            << " ms per environment step; wrote " << out << "\n";
  return 0;
}

}  // namespace coordiff::cli
