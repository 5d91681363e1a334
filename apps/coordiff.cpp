// The coordiff command-line tool.
//   coordiff gen-data --env spread|tag|world --quality random --episodes N --seed S --out file.npz
//   coordiff inspect file.npz
// Exit codes: 0 success, 2 bad arguments or input (the message names the flag or file), 1 other errors.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "coordiff/data/dataset.hpp"
#include "coordiff/env/mpe.hpp"
#include "coordiff/env/mpe/collect.hpp"

namespace cd = coordiff;

namespace {

const char* kUsage =
    "usage:\n"
    "  coordiff gen-data --env spread|tag|world --quality random --episodes N --seed S --out FILE.npz\n"
    "                    [--parallel B]\n"
    "  coordiff inspect FILE.npz\n";

/// --flag value pairs; unknown flags and missing values are errors naming the flag.
std::map<std::string, std::string> parse_flags(int argc, char** argv, int first, const std::vector<std::string>& known) {
  std::map<std::string, std::string> f;
  for (int i = first; i < argc; ++i) {
    const std::string k = argv[i];
    cd::require<cd::ConfigError>(k.rfind("--", 0) == 0, "unexpected argument '", k, "'");
    const std::string name = k.substr(2);
    cd::require<cd::ConfigError>(std::find(known.begin(), known.end(), name) != known.end(), "unknown flag --", name);
    cd::require<cd::ConfigError>(i + 1 < argc, "flag --", name, " needs a value");
    f[name] = argv[++i];
  }
  return f;
}

long long integer_flag(const std::map<std::string, std::string>& f, const std::string& name, long long fallback, long long min) {
  const auto it = f.find(name);
  if (it == f.end()) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  cd::require<cd::ConfigError>(end && *end == '\0' && !it->second.empty(), "--", name, " must be an integer, got '", it->second, "'");
  cd::require<cd::ConfigError>(v >= min, "--", name, " must be >= ", min, ", got ", v);
  return v;
}

std::string required(const std::map<std::string, std::string>& f, const std::string& name) {
  const auto it = f.find(name);
  cd::require<cd::ConfigError>(it != f.end(), "missing required flag --", name);
  return it->second;
}

template <class Env>
cd::data::OfflineDataset<float> generate(long long episodes, std::uint64_t seed, long long parallel) {
  return cd::env::mpe::collect_episodes<Env>(episodes, seed, cd::env::mpe::uniform_random_policy(seed), parallel, &std::cerr);
}

int gen_data(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"env", "quality", "episodes", "seed", "out", "parallel"});
  const std::string env = required(f, "env"), quality = required(f, "quality"), out = required(f, "out");
  cd::require<cd::ConfigError>(env == "spread" || env == "tag" || env == "world", "--env must be spread, tag or world, got '",
                               env, "'");
  cd::require<cd::ConfigError>(quality == "random" || quality == "medium-replay" || quality == "medium" || quality == "expert",
                               "--quality must be random, medium-replay, medium or expert, got '", quality, "'");
  cd::require<cd::ConfigError>(quality == "random", "--quality ", quality,
                               " needs a trained MATD3 behaviour policy, which this version does not produce yet; "
                               "available: random");
  const long long episodes = integer_flag(f, "episodes", 2000, 1), parallel = integer_flag(f, "parallel", 16, 1);
  const auto seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  cd::data::OfflineDataset<float> d = env == "spread" ? generate<cd::env::mpe::SpreadEnv>(episodes, seed, parallel)
                                      : env == "tag"  ? generate<cd::env::mpe::TagEnv>(episodes, seed, parallel)
                                                      : generate<cd::env::mpe::WorldEnv>(episodes, seed, parallel);
  const auto returns = cd::env::mpe::episode_returns(d, env == "spread");
  const double mean = std::accumulate(returns.begin(), returns.end(), 0.0) / static_cast<double>(returns.size());
  std::ostringstream meta;
  meta << "{\"env\": \"" << env << "\", \"quality\": \"" << quality << "\", \"seed\": " << seed << ", \"episodes\": " << episodes
       << ", \"episode_length\": " << d.steps() << ", \"mean_return\": " << mean
       << ", \"return_definition\": \"" << (env == "spread" ? "sum_t mean_i r_i" : "sum_t r_0") << "\"}";
  d.meta = meta.str();
  d.save(out);  // atomic: nothing is left behind if it fails
  std::cout << "wrote " << out << ": " << episodes << " episodes of " << d.steps() << " steps, " << d.agents()
            << " agents, observations " << d.obs_dim() << "; mean return " << mean << "\n";
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
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "gen-data") return gen_data(argc, argv);
    if (cmd == "inspect") return inspect(argc, argv);
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
