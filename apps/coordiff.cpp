// The coordiff command-line tool.
//   coordiff gen-data --env spread|tag|world --quality random|medium-replay|medium|expert --episodes N --seed S
//                     --out file.npz [--behaviour policies.npz] [--parallel B]
//   coordiff gen-data --env double-integrator --quality random|nominal|noisy --episodes N --seed S --out file.npz
//                     [--agents N] [--obstacles M] [--episode-length T] [--noise X] [--random-fraction P]
//   coordiff gen-data --env safe-spread --quality random|nominal|noisy --episodes N --seed S --out file.npz
//                     [--noise X] [--random-fraction P]
//   coordiff train-behaviour --env spread|tag|world --seed S --out policies.npz [--rounds N]
//                            [--reference-episodes N] [--replay-out medium_replay.npz]
//   coordiff train-diffusion --dataset d.npz --model DIR [--config cfg.json] [--steps N] [--seed S]
//                            [--checkpoint-every K] [--resume 0|1]
//   coordiff train-aux --dataset d.npz --model DIR [--config cfg.json] [--steps N] [--seed S]
//   coordiff augment --dataset in.npz --model DIR --order lov|sg|joint|independent|random|reverse --num N
//                    --seed S --out aug.npz [--epsilon E] [--batch B] [--report r.json] [--svg fig.svg]
//                    [--device cpu|cuda] [--cbf-filter 0|1 (safe MASTARS: also the CBF filter)]
//   coordiff offline-train --algo td3bc|omar|cfcql --dataset d.npz --out r.json [--steps N] [--seed S] [--eval-every K]
//   coordiff table1 [--dir DIR] [--envs ...] [--qualities ...] [--learners ...] [--methods ...] [--seeds ...] ...
//   coordiff plan --env double-integrator|safe-spread --planner diffusion|guided|filtered|guided-filtered|nominal|random
//                 --model DIR --episodes N --seed S --out r.json [--agents N] [--sampling-steps K] ...
//   coordiff model-report --model DIR --dataset d.npz --out r.json [--windows N] [--ddim-steps K] [--target X]
//   coordiff inspect file.npz
// Exit codes: 0 success, 2 bad arguments or input (the message names the flag or file), 1 other errors.
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "coordiff/data/dataset.hpp"
#include "coordiff/env/double_integrator_collect.hpp"
#include "coordiff/env/mpe.hpp"
#include "coordiff/env/mpe/behaviour.hpp"
#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/env/mpe/safe_spread_behaviour.hpp"
#include "coordiff/mastars/diagnostics.hpp"
#include "coordiff/mastars/mastars.hpp"
#ifdef COORDIFF_WITH_CUDA
#include "coordiff/nn/cuda/gpu_unet.hpp"
#endif
#include "cli_flags.hpp"
#include "commands.hpp"

namespace cd = coordiff;

namespace {

using namespace coordiff::cli;

const char* kUsage =
    "usage:\n"
    "  coordiff gen-data --env spread|tag|world --quality random|medium-replay|medium|expert\n"
    "                    --episodes N --seed S --out FILE.npz [--behaviour POLICIES.npz] [--parallel B]\n"
    "  coordiff gen-data --env double-integrator --quality random|nominal|noisy --episodes N --seed S --out FILE.npz\n"
    "                    [--agents N] [--obstacles M] [--episode-length T] [--noise X] [--random-fraction P]\n"
    "  coordiff gen-data --env safe-spread --quality random|nominal|noisy --episodes N --seed S --out FILE.npz\n"
    "                    [--noise X] [--random-fraction P]\n"
    "  coordiff train-behaviour --env spread|tag|world --seed S --out POLICIES.npz [--rounds N]\n"
    "                    [--reference-episodes N] [--replay-out MEDIUM_REPLAY.npz]\n"
    "  coordiff train-diffusion --dataset D.npz --model DIR [--config CFG.json] [--steps N] [--seed S]\n"
    "                   [--checkpoint-every K (default 1000; 0 = at the end)] [--resume 0|1]\n"
    "  coordiff train-aux --dataset D.npz --model DIR [--config CFG.json] [--steps N] [--seed S]\n"
    "  coordiff augment --dataset D.npz --model DIR --order lov|sg|joint|independent|random|reverse\n"
    "                   --num N --seed S --out AUG.npz [--epsilon E] [--batch B] [--report R.json] [--svg F.svg]\n"
    "                   [--device cpu|cuda] [--cbf-filter 0|1]\n"
    "  coordiff offline-train --algo td3bc|omar|cfcql --dataset D.npz --out R.json [--steps N] [--seed S]\n"
    "                   [--eval-every K] [--eval-episodes M] [--env E] [--quality Q] [--behaviour POLICIES.npz]\n"
    "                   [--threads T] [--actor-lr X] [--critic-lr X] [--cql-alpha X] [--batch B] [--critic-inputs fixed|batch]\n"
    "  coordiff table1 [--dir DIR] [--envs spread,...] [--qualities medium-replay,medium] [--learners td3bc,omar,cfcql]\n"
    "                   [--methods original,lov,sg,joint] [--ablation medium-replay] [--seeds 0,1,2] [--num N]\n"
    "                   [--epsilon E] [--episodes N] [--model-steps N] [--steps N] [--eval-every K]\n"
    "                   [--eval-episodes M] [--jobs J] [--out results.md] [--records DIR] [--data-dir DIR] [--report-only 1]\n"
    "  coordiff plan --env double-integrator|safe-spread --planner diffusion|guided|filtered|guided-filtered|nominal|random\n"
    "                --episodes N --seed S --out R.json [--model DIR] [--agents N] [--obstacles M] [--episode-length T]\n"
    "                [--sampling-steps K] [--spacing leading|trailing|linspace] [--target-return X] [--target-cbf X]\n"
    "                [--guidance-weight W] [--cbf-guidance S] [--candidates M] [--batch B]\n"
    "                [--shield 0|1 (the braking CBF shield on every action)]\n"
    "                [--cbf-shield 0|1 (the model's learned CBF as a CBF-QP shield; needs --model)]\n"
    "                [--cbf-shield-alpha A] [--cbf-shield-margin M] (its condition dh/dt + A h >= M; default: the CBF's)\n"
    "  coordiff model-report --model DIR --dataset D.npz --out R.json [--windows N] [--ddim-steps K] [--target X] [--seed S]\n"
    "  coordiff inspect FILE.npz\n";

namespace mpe = cd::env::mpe;

std::string env_flag(const std::map<std::string, std::string>& f) {
  const std::string env = required(f, "env");
  cd::require<cd::ConfigError>(env == "spread" || env == "tag" || env == "world", "--env must be spread, tag or world "
                               "(gen-data also takes double-integrator and safe-spread), got '", env, "'");
  return env;
}

/// The behaviour policies gen-data uses: --behaviour, else the bundled data/behaviour/<env>.npz.
mpe::BehaviourPolicies behaviour_file(const std::map<std::string, std::string>& f, const std::string& env, std::string& path) {
  const auto it = f.find("behaviour");
  path = it != f.end() ? it->second : std::string(COORDIFF_DATA_DIR) + "/behaviour/" + env + ".npz";
  auto p = mpe::BehaviourPolicies::load(path);
  cd::require<cd::ConfigError>(p.env == env, "--behaviour ", path, " holds policies for '", p.env, "', not for --env ", env);
  return p;
}

/// `keep` episodes of d, evenly spaced over its length (all of them when keep >= its size).
cd::data::OfflineDataset<float> evenly_spaced_episodes(const cd::data::OfflineDataset<float>& d, cd::index_t keep) {
  const cd::index_t E = d.episodes();
  if (keep >= E) return d;
  std::vector<cd::index_t> which;
  for (cd::index_t k = 0; k < keep; ++k) which.push_back(k * E / keep);
  return d.select_episodes(which);
}

/// Adds the safety statistics to `meta`, stores it in d, saves d atomically and prints its summary: the
/// end of gen-data for the tasks with costs.
int save_safety_dataset(cd::data::OfflineDataset<float>& d, nlohmann::json meta, const std::string& out) {
  const auto st = cd::env::safety_stats(d);
  meta["mean_return"] = st.mean_return, meta["mean_cost"] = st.mean_cost, meta["safe_rate"] = st.safe_rate;
  meta["return_definition"] = "sum_t mean_i r_i";
  meta["cost_definition"] = "sum_t mean_i c_i, c_i = 1 in the dangerous set of Definition 3";
  d.meta = meta.dump();
  d.save(out);  // atomic
  std::cout << "wrote " << out << ": " << d.episodes() << " episodes of " << d.steps() << " steps, " << d.agents()
            << " agents, observations " << d.obs_dim() << "; mean return " << st.mean_return << ", mean cost "
            << st.mean_cost << ", safe episodes " << st.safe_rate << "\n";
  return 0;
}

/// gen-data for the double-integrator safety task: behaviour random, nominal (LQR) or noisy (LQR + noise
/// and agents acting at random); records per-agent costs.
int gen_data_double_integrator(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"env", "quality", "episodes", "seed", "out", "parallel", "agents", "obstacles",
                                             "episode-length", "noise", "random-fraction"});
  const std::string quality = required(f, "quality"), out = required(f, "out");
  cd::env::DoubleIntegratorCollectOptions o;
  o.behaviour = cd::env::parse_double_integrator_behaviour(quality);
  o.noise = number_flag(f, "noise", o.noise);
  o.random_fraction = number_flag(f, "random-fraction", o.random_fraction);
  o.parallel = integer_flag(f, "parallel", o.parallel, 1);
  cd::env::DoubleIntegratorConfig cfg;
  cfg.agents = integer_flag(f, "agents", cfg.agents, 2);
  cfg.obstacles = integer_flag(f, "obstacles", cfg.obstacles, 0);
  cfg.episode_length = integer_flag(f, "episode-length", cfg.episode_length, 1);
  const long long episodes = integer_flag(f, "episodes", 1000, 1);
  const auto seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  auto d = cd::env::collect_double_integrator(cfg, episodes, seed, o, &std::cerr);
  nlohmann::json meta = {{"env", "double-integrator"}, {"quality", quality}, {"seed", seed}, {"episodes", episodes},
                         {"episode_length", cfg.episode_length}, {"agents", cfg.agents}, {"obstacles", cfg.obstacles},
                         {"config", {{"dt", cfg.dt}, {"max_accel", cfg.max_accel}, {"agent_radius", cfg.agent_radius},
                                     {"gap", cfg.gap}, {"obstacle_radius", cfg.obstacle_radius},
                                     {"arena_per_agent", cfg.arena_per_agent}}},
                         {"behaviour", {{"lqr_kp", o.gains.kp}, {"lqr_kd", o.gains.kd}, {"noise", o.noise},
                                        {"random_fraction", o.random_fraction}}}};
  return save_safety_dataset(d, meta, out);
}

/// gen-data for SafeSpread: the scripted behaviours of env/mpe/safe_spread_behaviour.hpp (random, nominal,
/// noisy); records per-agent costs.
int gen_data_safe_spread(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"env", "quality", "episodes", "seed", "out", "parallel", "noise",
                                             "random-fraction"});
  const std::string quality = required(f, "quality"), out = required(f, "out");
  mpe::SafeSpreadBehaviourOptions o;
  o.behaviour = mpe::parse_safe_spread_behaviour(quality);
  o.noise = number_flag(f, "noise", o.noise);
  o.random_fraction = number_flag(f, "random-fraction", o.random_fraction);
  o.parallel = integer_flag(f, "parallel", o.parallel, 1);
  const long long episodes = integer_flag(f, "episodes", 1000, 1);
  const auto seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  auto d = mpe::collect_episodes<mpe::SafeSpreadEnv>(episodes, seed, mpe::safe_spread_policy(o, seed), o.parallel, &std::cerr);
  const auto& rule = mpe::SafeSpreadScenario::kSafeDistance;
  nlohmann::json meta = {{"env", "safe-spread"}, {"quality", quality}, {"seed", seed}, {"episodes", episodes},
                         {"episode_length", d.steps()}, {"agents", d.agents()},
                         {"config", {{"deceleration", rule.deceleration}, {"stopped_gap", rule.stopped_gap},
                                     {"hazards", mpe::SafeSpreadScenario::kHazards},
                                     {"hazard_radius", mpe::SafeSpreadScenario::kHazardRadius}}},
                         {"behaviour", {{"kp", o.kp}, {"kd", o.kd}, {"noise", o.noise},
                                        {"random_fraction", o.random_fraction}}}};
  return save_safety_dataset(d, meta, out);
}

int gen_data(int argc, char** argv) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::string(argv[i]) != "--env") continue;
    if (std::string(argv[i + 1]) == "double-integrator") return gen_data_double_integrator(argc, argv);
    if (std::string(argv[i + 1]) == "safe-spread") return gen_data_safe_spread(argc, argv);
  }
  const auto f = parse_flags(argc, argv, 2, {"env", "quality", "episodes", "seed", "out", "parallel", "behaviour"});
  const std::string env = env_flag(f), quality = required(f, "quality"), out = required(f, "out");
  cd::require<cd::ConfigError>(quality == "random" || quality == "medium-replay" || quality == "medium" || quality == "expert",
                               "--quality must be random, medium-replay, medium or expert, got '", quality, "'");
  const long long episodes = integer_flag(f, "episodes", 2000, 1), parallel = integer_flag(f, "parallel", 16, 1);
  const auto seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  std::string policies_path;
  const mpe::BehaviourPolicies policies = behaviour_file(f, env, policies_path);
  cd::data::OfflineDataset<float> d = mpe::with_scenario(env, [&]<class Env>(const Env&) {
    if (quality == "medium-replay") {
      std::cerr << "replaying the behaviour training up to its medium snapshot (round " << policies.medium_round << ")\n";
      return evenly_spaced_episodes(mpe::medium_replay_episodes<Env>(policies, &std::cerr), episodes);
    }
    const mpe::BehaviourPolicy policy =
        quality == "random" ? mpe::uniform_random_policy(seed)
                            : mpe::snapshot_policy<Env>(quality == "medium" ? policies.medium : policies.expert,
                                                        policies.options.data_noise, seed, policies.options.matd3.hidden);
    return mpe::collect_episodes<Env>(episodes, seed, policy, parallel, &std::cerr);
  });
  const auto returns = mpe::episode_returns(d, env == "spread");
  const double mean = std::accumulate(returns.begin(), returns.end(), 0.0) / static_cast<double>(returns.size());
  std::ostringstream meta;
  meta.precision(10);
  meta << "{\"env\": \"" << env << "\", \"quality\": \"" << quality << "\", \"seed\": " << seed
       << ", \"episodes\": " << d.episodes() << ", \"episode_length\": " << d.steps() << ", \"mean_return\": " << mean
       << ", \"normalised_mean_return\": " << policies.normalised(mean) << ", \"return_definition\": \""
       << (env == "spread" ? "sum_t mean_i r_i" : "sum_t r_0") << "\", \"reference\": {\"random_return\": "
       << policies.random_return << ", \"expert_return\": " << policies.expert_return
       << ", \"medium_return\": " << policies.medium_return << ", \"episodes\": " << policies.reference_episodes
       << ", \"normalised_return\": \"100 * (R - random_return) / (expert_return - random_return)\"}"
       << ", \"behaviour\": {\"file\": \"" << std::filesystem::path(policies_path).filename().string()
       << "\", \"training_seed\": " << policies.options.seed << ", \"medium_round\": " << policies.medium_round
       << ", \"data_noise\": " << (quality == "random" || quality == "medium-replay" ? 0.0 : policies.options.data_noise)
       << "}}";
  d.meta = meta.str();
  d.save(out);  // atomic: nothing is left behind if it fails
  std::cout << "wrote " << out << ": " << d.episodes() << " episodes of " << d.steps() << " steps, " << d.agents()
            << " agents, observations " << d.obs_dim() << "; mean return " << mean << " (normalised "
            << policies.normalised(mean) << ")\n";
  return 0;
}

int train_behaviour(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"env", "seed", "out", "rounds", "reference-episodes", "replay-out"});
  const std::string env = env_flag(f), out = required(f, "out");
  mpe::BehaviourOptions opt;
  opt.seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  opt.rounds = integer_flag(f, "rounds", opt.rounds, opt.warmup_rounds + 1);
  const long long reference = integer_flag(f, "reference-episodes", 1000, 1);
  const auto replay = f.find("replay-out");
  mpe::with_scenario(env, [&]<class Env>(const Env&) {
    mpe::BehaviourRun run;
    const auto p = mpe::make_behaviour_policies<Env>(opt, reference, &std::cerr, &run);
    p.save(out);
    std::cout << "wrote " << out << ": " << env << " random " << p.random_return << ", medium " << p.medium_return
              << " (round " << p.medium_round << "), expert " << p.expert_return << " over " << reference
              << " evaluation episodes\n";
    if (replay != f.end()) {
      std::vector<cd::index_t> first(static_cast<std::size_t>(p.medium_round * opt.parallel));
      std::iota(first.begin(), first.end(), cd::index_t{0});
      auto d = run.training_episodes.select_episodes(first);
      d.meta = "{\"env\": \"" + env + "\", \"quality\": \"medium-replay\", \"training_seed\": " + std::to_string(opt.seed) + "}";
      d.save(replay->second);
      std::cout << "wrote " << replay->second << ": " << d.episodes() << " medium-replay episodes\n";
    }
    return 0;
  });
  return 0;
}


/// The model directory's model if it holds one (its normalisers and other part are kept), else a new one
/// from --config (or the defaults) sized for the dataset. --steps and --seed override the config. With
/// `resume`, a --config next to a model directory must agree with the directory's config (but for steps).
cd::mastars::Model<float> open_model(const std::map<std::string, std::string>& f, const cd::data::OfflineDataset<float>& d,
                                     const char* part, bool resume = false) {
  const std::filesystem::path dir = required(f, "model");
  const bool saved = std::filesystem::exists(dir / "config.json");
  cd::mastars::Model<float> m;
  if (saved && (!f.count("config") || resume)) {
    m = cd::mastars::Model<float>::load(dir);
    m.require_compatible(d, "open");
    if (f.count("config")) {
      const cd::mastars::Config given = cd::mastars::load_config(f.at("config"));
      auto given_json = cd::mastars::to_json(given), stored_json = cd::mastars::to_json(m.config);
      given_json["diffusion"].erase("train_steps"), stored_json["diffusion"].erase("train_steps");
      cd::require<cd::ConfigError>(given_json == stored_json, "--resume: ", f.at("config"), " differs from ",
                                   (dir / "config.json").string(),
                                   " (beyond diffusion.train_steps); a resumed run keeps the model directory's config");
      m.config.diffusion.train_steps = given.diffusion.train_steps;  // the run's new length
    }
  } else {
    const cd::mastars::Config cfg = f.count("config") ? cd::mastars::load_config(f.at("config")) : cd::mastars::Config{};
    m = cd::mastars::Model<float>::create(cfg, d.agents(), d.obs_dim(), d.act_dim());
    m.fit_normalizers(d);
  }
  auto& c = m.config;
  const std::string p = part;
  if (p == "diffusion") {
    c.diffusion.train_steps = integer_flag(f, "steps", c.diffusion.train_steps, 1);
    c.diffusion.seed = static_cast<std::uint64_t>(integer_flag(f, "seed", static_cast<long long>(c.diffusion.seed), 0));
  } else {
    c.auxiliary.steps = integer_flag(f, "steps", c.auxiliary.steps, 1);
    c.auxiliary.seed = static_cast<std::uint64_t>(integer_flag(f, "seed", static_cast<long long>(c.auxiliary.seed), 0));
  }
  return m;
}

int train_model_part(int argc, char** argv, const char* part) {
  const bool diffusion = std::string(part) == "diffusion";
  const auto f = diffusion ? parse_flags(argc, argv, 2, {"dataset", "model", "config", "steps", "seed", "checkpoint-every", "resume"})
                           : parse_flags(argc, argv, 2, {"dataset", "model", "config", "steps", "seed"});
  const std::filesystem::path dir = required(f, "model");
  const auto d = cd::data::OfflineDataset<float>::load(required(f, "dataset"));
  nlohmann::json r;
  if (diffusion) {
    const long long resume = integer_flag(f, "resume", 0, 0);
    cd::require<cd::ConfigError>(resume <= 1, "--resume must be 0 or 1, got ", resume);
    cd::mastars::DiffusionCheckpoints ck;
    ck.path = dir / "diffusion_training.ckpt";
    ck.every = integer_flag(f, "checkpoint-every", 1000, 0);
    ck.resume = resume == 1;
    auto m = open_model(f, d, part, ck.resume);
    if (ck.resume && !std::filesystem::exists(ck.path))
      // Without its checkpoint a trained model cannot continue as the same run (no Adam moments or raw weights).
      cd::require<cd::ConfigError>(!m.report.contains("diffusion"), "--resume: ", dir.string(),
                                   " holds a trained diffusion model but no ", ck.path.filename().string(),
                                   " to continue from; train it again without --resume");
    else if (!ck.resume && std::filesystem::exists(ck.path))
      std::filesystem::remove(ck.path);  // a new run: a stale checkpoint must not be resumed later
    // Save the model with its CBF / V_r before the long part, so that a stopped run resumes on the same windows.
    cd::mastars::train_diffusion_prerequisites(m, d, &std::cerr);
    m.save(dir);
    r = cd::mastars::train_diffusion(m, d, &std::cerr, ck);
    m.save(dir);
  } else {
    auto m = open_model(f, d, part);
    r = cd::mastars::train_auxiliary(m, d, &std::cerr);
    m.save(dir);
  }
  std::cout << "trained the " << part << " model(s) of " << dir.string() << ":\n" << r.dump(2) << "\n";
  return 0;
}

int augment(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"dataset", "model", "order", "num", "seed", "out", "epsilon", "batch",
                                             "report", "svg", "device", "cbf-filter"});
  const std::string device = f.count("device") ? f.at("device") : "cpu";
  cd::require<cd::ConfigError>(device == "cpu" || device == "cuda", "--device must be cpu or cuda, got '", device, "'");
#ifndef COORDIFF_WITH_CUDA
  cd::require<cd::ConfigError>(device == "cpu", "--device cuda: this coordiff was built without the CUDA backend "
                               "(configure with -DCOORDIFF_CUDA=ON)");
#endif
  const std::string out = required(f, "out");
  const auto method = cd::mastars::parse_method(required(f, "order"));
  const std::filesystem::path model_dir = required(f, "model");
  const auto d = cd::data::OfflineDataset<float>::load(required(f, "dataset"));
  auto m = cd::mastars::Model<float>::load(model_dir);
  m.require_compatible(d, "augment");
  auto& c = m.config.augment;
  c.num = integer_flag(f, "num", c.num, 1);
  c.seed = static_cast<std::uint64_t>(integer_flag(f, "seed", static_cast<long long>(c.seed), 0));
  c.batch_size = integer_flag(f, "batch", c.batch_size, 1);
  c.epsilon = number_flag(f, "epsilon", c.epsilon);
  cd::require<cd::ConfigError>(c.epsilon > 0, "--epsilon must be > 0, got ", c.epsilon);
  const long long cbf_filter = integer_flag(f, "cbf-filter", c.cbf_filter ? 1 : 0, 0);
  cd::require<cd::ConfigError>(cbf_filter <= 1, "--cbf-filter must be 0 or 1, got ", cbf_filter);
  c.cbf_filter = cbf_filter == 1;
  const std::string stem = std::filesystem::path(out).replace_extension().string();
  const std::string report_path = f.count("report") ? f.at("report") : stem + ".json";
  const std::string svg_path = f.count("svg") ? f.at("svg") : stem + ".svg";
  // --device cuda: the same generators with the network on the GPU (nn::cuda::GpuUNet, loaded from m.net).
  const auto run = [&]() {
#ifdef COORDIFF_WITH_CUDA
    if (device == "cuda") {
      cd::nn::cuda::GpuUNet gpu(m.net.trunk().config(), m.agents, cd::nn::parameters_of<float>(m.net));
      return cd::mastars::augment(m, d, method, &std::cerr, std::optional(cd::denoiser::Ref<cd::nn::cuda::GpuUNet>(gpu)));
    }
#endif
    return cd::mastars::augment(m, d, method, &std::cerr);
  };
  auto a = run();
  a.report["device"] = device;
  nlohmann::json meta = nlohmann::json::parse(a.dataset.meta);
  meta["augmentation"]["model"] = model_dir.filename().string();
  meta["augmentation"]["source"] = std::filesystem::path(required(f, "dataset")).filename().string();
  a.dataset.meta = meta.dump();
  a.dataset.save(out);
  a.report["dataset"] = required(f, "dataset");
  a.report["model"] = model_dir.string();
  a.report["out"] = out;
  cd::index_t transitions = 0;
  for (cd::index_t e = 0; e < a.dataset.episodes(); ++e) transitions += a.dataset.episode_length(e);
  a.report["out_episodes"] = a.dataset.episodes();
  a.report["out_transitions"] = transitions;
  cd::mastars::write_json_file(report_path, a.report);
  std::string env;
  try {
    env = nlohmann::json::parse(d.meta).value("env", std::string());
  } catch (const nlohmann::json::exception&) {
  }
  if (a.report["windows_accepted"].get<long long>() > 0) cd::viz::save_svg(svg_path, cd::mastars::augmentation_figure(a, env));
  std::cout << "wrote " << out << " (" << d.episodes() << " original episodes + " << a.report["windows_accepted"]
            << " generated windows), " << report_path
            << (a.report["windows_accepted"].get<long long>() > 0 ? ", " + svg_path : std::string(" (no figure: nothing accepted)"))
            << "\nacceptance " << a.report["acceptance_rate"] << ", generated fraction " << a.report["generated_fraction"]
            << ", DIRE original " << a.report["dire"]["original"] << " / generated " << a.report["dire"]["generated"] << "\n";
  if (a.report.contains("cost") && a.report["cost"].is_object())
    std::cout << "cost per window (dangerous agent-steps): original " << a.report["cost"]["original_picked"]["mean_cost"]
              << ", generated " << a.report["cost"]["generated_all"]["mean_cost"] << ", kept "
              << a.report["cost"]["generated_accepted"]["mean_cost"] << "\n";
  return 0;
}

/// coordiff model-report: how well a model denoises and generates on a dataset (mastars/diagnostics.hpp).
int model_report(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"model", "dataset", "out", "windows", "ddim-steps", "target", "seed"});
  const std::string out = required(f, "out");
  auto m = cd::mastars::Model<float>::load(required(f, "model"));
  const auto d = cd::data::OfflineDataset<float>::load(required(f, "dataset"));
  m.require_compatible(d, "model-report");
  cd::mastars::DiagnosticsOptions o;
  o.windows = integer_flag(f, "windows", o.windows, 1);
  o.ddim_steps = integer_flag(f, "ddim-steps", o.ddim_steps, 1);
  o.target = number_flag(f, "target", o.target);
  o.seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  nlohmann::json r = cd::mastars::diagnose(m, d, o);
  r["model"] = required(f, "model");
  r["dataset"] = required(f, "dataset");
  cd::mastars::write_json_file(out, r);  // atomic
  std::cout << "denoising (level: eps mse, x0 mse vs no denoising):";
  for (const auto& row : r["denoising"])
    std::cout << " " << row["level"] << ": " << row["eps_mse"].get<double>() << ", " << row["x0_mse"].get<double>() << " vs "
              << row["x0_mse_no_denoising"].get<double>() << ";";
  const auto& g = r["generation"];
  std::cout << "\ngeneration from the first step: eq. 6 score " << g["filter_score_generated"].get<double>() << " (real "
            << g["filter_score_real"].get<double>() << ")";
  if (g.contains("kinematic_residual_generated"))
    std::cout << ", kinematic residual " << g["kinematic_residual_generated"].get<double>() << " (real "
              << g["kinematic_residual_real"].get<double>() << ")";
  if (g.contains("cbf_satisfied_generated")) {
    std::cout << ", CBF satisfied " << g["cbf_satisfied_generated"].get<double>();
    if (g.contains("cbf_satisfied_generated_condition_0"))
      std::cout << " (CBF condition 0: " << g["cbf_satisfied_generated_condition_0"].get<double>() << ")";
    std::cout << " (real " << g["cbf_satisfied_real"].get<double>() << "), h >= 0 throughout "
              << g["cbf_h_nonnegative_generated"].get<double>() << " (real " << g["cbf_h_nonnegative_real"].get<double>() << ")";
  }
  if (g.contains("safe_windows_generated")) {
    std::cout << ", windows without a dangerous step " << g["safe_windows_generated"].get<double>();
    if (g.contains("safe_windows_generated_condition_0"))
      std::cout << " (CBF condition 0: " << g["safe_windows_generated_condition_0"].get<double>() << ")";
    std::cout << " (real " << g["safe_windows_real"].get<double>() << ")";
  }
  std::cout << "\nwrote " << out << "\n";
  return 0;
}

int inspect(int argc, char** argv) {
  cd::require<cd::ConfigError>(argc == 3, "inspect takes one file");
  const auto d = cd::data::OfflineDataset<float>::load(argv[2]);
  std::cout << argv[2] << ": observations " << cd::to_string(d.observations.shape()) << ", actions "
            << cd::to_string(d.actions.shape()) << ", rewards " << cd::to_string(d.rewards.shape()) << "\nmeta " << d.meta << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef __GLIBC__
  // Training steps allocate and free the same large temporaries over and over; keeping freed memory in
  // the heap instead of returning it to the system avoids faulting in fresh zeroed pages every step
  // (about 15 % of an offline-learner round).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "gen-data") return gen_data(argc, argv);
    if (cmd == "train-behaviour") return train_behaviour(argc, argv);
    if (cmd == "train-diffusion") return train_model_part(argc, argv, "diffusion");
    if (cmd == "train-aux") return train_model_part(argc, argv, "auxiliary");
    if (cmd == "augment") return augment(argc, argv);
    if (cmd == "inspect") return inspect(argc, argv);
    if (cmd == "model-report") return model_report(argc, argv);
    if (cmd == "offline-train") return cd::cli::offline_train(argc, argv);
    if (cmd == "table1") return cd::cli::table1(argc, argv);
    if (cmd == "plan") return cd::cli::plan(argc, argv);
    std::cerr << (cmd.empty() || cmd == "--help" ? "" : "coordiff: unknown command '" + cmd + "'\n") << kUsage;
    return cmd == "--help" ? 0 : 2;
  } catch (const cd::ConfigError& e) {
    std::cerr << e.what() << "\n" << kUsage;
    return 2;
  } catch (const cd::Error& e) {
    std::cerr << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "coordiff: " << e.what() << "\n";
    return 1;
  }
}
