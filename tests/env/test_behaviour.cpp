// Behaviour policies (OMAR protocol): the medium-snapshot rule, reproducible training runs, the policies
// file, the medium-replay replay, and the shipped policies' reference returns.
#include <doctest/doctest.h>

#include <filesystem>
#include <numeric>
#include <string>

#include "coordiff/env/mpe.hpp"
#include "coordiff/env/mpe/behaviour.hpp"

using namespace coordiff;
namespace mpe = coordiff::env::mpe;

namespace {
mpe::BehaviourOptions tiny_options() {
  mpe::BehaviourOptions opt;
  opt.rounds = 9, opt.parallel = 2, opt.warmup_rounds = 3, opt.eval_every = 3, opt.eval_episodes = 4, opt.seed = 21;
  opt.matd3.batch_size = 32;
  return opt;
}
}  // namespace

TEST_CASE("behaviour: medium is the first snapshot at least half way from random to expert") {
  mpe::BehaviourRun run;
  run.random_return = 100;
  run.eval_returns = {80, 140, 151, 149, 200};  // half way: 150
  run.actors.resize(5);
  CHECK(run.medium() == 2);
  CHECK(run.expert() == 4);
  run.eval_returns = {80, 90, 95, 99, 100};  // never above half way but the expert itself
  CHECK(run.medium() == 4);
}

TEST_CASE("behaviour: a short run is reproducible, its policies file round-trips, and medium-replay replays it") {
  const auto opt = tiny_options();
  mpe::BehaviourRun run_a, run_b;
  const auto a = mpe::make_behaviour_policies<mpe::SpreadEnv>(opt, 16, nullptr, &run_a);
  const auto b = mpe::make_behaviour_policies<mpe::SpreadEnv>(opt, 16, nullptr, &run_b);
  CHECK(run_a.snapshot_rounds == std::vector<index_t>{3, 6, 9});
  CHECK(run_a.training_episodes.episodes() == 18);
  CHECK(run_a.training_episodes.observations.storage() == run_b.training_episodes.observations.storage());
  CHECK(a.eval_returns == b.eval_returns);
  REQUIRE(a.expert.size() == b.expert.size());
  for (std::size_t k = 0; k < a.expert.size(); ++k) CHECK(a.expert[k].storage() == b.expert[k].storage());
  // The last two snapshot tensors are the observation standardisation fixed after the warm-up rounds.
  const Tensor<float>& sd = a.expert.back();
  CHECK(sd[0] != 1.0f);   // velocity varies
  CHECK(sd[17] == 1.0f);  // silent communication channel: constant, left unscaled

  const auto path = std::filesystem::temp_directory_path() / "coordiff_test_behaviour.npz";
  a.save(path);
  const auto loaded = mpe::BehaviourPolicies::load(path);
  CHECK(loaded.env == "spread");
  CHECK(loaded.medium_round == a.medium_round);
  CHECK(loaded.options.seed == opt.seed);
  CHECK(loaded.options.matd3.batch_size == 32);
  CHECK(loaded.expert_return == a.expert_return);
  CHECK(loaded.eval_returns == a.eval_returns);
  CHECK(loaded.normalised(loaded.expert_return) == doctest::Approx(100));
  CHECK(loaded.normalised(loaded.random_return) == doctest::Approx(0));
  // Re-measuring the expert on the same evaluation episodes gives the stored number.
  CHECK(mpe::evaluate_policy<mpe::SpreadEnv>(mpe::snapshot_policy<mpe::SpreadEnv>(loaded.expert, 0, 0), 16) ==
        doctest::Approx(a.expert_return).epsilon(1e-9));

  // medium-replay: the training episodes up to the medium snapshot, replayed from the stored options.
  const auto replay = mpe::medium_replay_episodes<mpe::SpreadEnv>(loaded);
  const index_t n = loaded.medium_round * opt.parallel;
  REQUIRE(replay.episodes() == n);
  std::vector<index_t> first(static_cast<std::size_t>(n));
  std::iota(first.begin(), first.end(), index_t{0});
  CHECK(replay.observations.storage() == run_a.training_episodes.select_episodes(first).observations.storage());
  std::filesystem::remove(path);
}

TEST_CASE("behaviour: a policies file missing an entry is refused with the entry's name") {
  const auto path = std::filesystem::temp_directory_path() / "coordiff_test_behaviour_bad.npz";
  io::NpzWriter().add("eval_returns", Tensor<double>({2}, 1.0)).add_strings("env", {"spread"}).save(path);
  try {
    (void)mpe::BehaviourPolicies::load(path);
    FAIL("loaded a file without snapshots");
  } catch (const FormatError& e) {
    MESSAGE(std::string(e.what()));
    CHECK(std::string(e.what()).find("snapshot_rounds") != std::string::npos);
  }
  std::filesystem::remove(path);
}

TEST_CASE("data: select_episodes cuts every array alike and refuses out-of-range episodes") {
  const auto d = mpe::collect_episodes<mpe::TagEnv>(5, 2, mpe::uniform_random_policy(2), 5);
  const auto s = d.select_episodes({4, 1, 4});
  s.validate("selected");
  CHECK(s.episodes() == 3);
  CHECK(s.states(0, 3, 7) == d.states(4, 3, 7));
  CHECK(s.actions(1, 24, 2, 1) == d.actions(1, 24, 2, 1));
  CHECK(s.next_observations(2, 0, 0, 5) == d.next_observations(4, 0, 0, 5));
  CHECK(s.meta == d.meta);
  CHECK_THROWS_AS((void)d.select_episodes({5}), ShapeError);
}

TEST_CASE("behaviour: the shipped policies - expert clearly above random, medium between (all three scenarios)") {
  const auto check = [](auto env_tag, const std::string& name) {
    using Env = decltype(env_tag);
    const auto p = mpe::BehaviourPolicies::load(std::string(COORDIFF_DATA_DIR) + "/behaviour/" + name + ".npz");
    CHECK(p.env == name);
    // Stored reference returns reproduce exactly on their evaluation episodes.
    const double expert = mpe::evaluate_policy<Env>(mpe::snapshot_policy<Env>(p.expert, 0, 0, p.options.matd3.hidden),
                                                    p.reference_episodes);
    const double random = mpe::evaluate_policy<Env>(mpe::uniform_random_policy(p.options.seed), p.reference_episodes);
    CHECK(expert == doctest::Approx(p.expert_return).epsilon(1e-6));
    CHECK(random == doctest::Approx(p.random_return).epsilon(1e-9));
    MESSAGE(name, ": random ", p.random_return, ", medium ", p.medium_return, ", expert ", p.expert_return);
    const double medium = p.normalised(p.medium_return);
    CHECK(p.expert_return - p.random_return > 0.25 * std::abs(p.random_return));
    CHECK(medium > 25);
    CHECK(medium < 85);
  };
  check(mpe::SpreadEnv(1), "spread");
  check(mpe::TagEnv(1), "tag");
  check(mpe::WorldEnv(1), "world");
}

TEST_CASE("data: the bundled Spread medium-replay dataset loads, and its meta matches its contents") {
  const auto d = data::OfflineDataset<float>::load(std::string(COORDIFF_DATA_DIR) + "/spread_medium_replay.npz");
  CHECK(d.observations.shape() == Shape{240, 25, 3, 18});
  CHECK(d.states.shape() == Shape{240, 25, mpe::SpreadEnv::kStateDim});
  CHECK(d.meta.find("\"quality\": \"medium-replay\"") != std::string::npos);
  const auto returns = mpe::episode_returns(d, /*mean_over_agents=*/true);
  const double mean = std::accumulate(returns.begin(), returns.end(), 0.0) / static_cast<double>(returns.size());
  CHECK(d.meta.find("\"mean_return\": " + std::to_string(mean).substr(0, 6)) != std::string::npos);
  // Between the shipped random and medium references: a medium-replay mix.
  const auto p = mpe::BehaviourPolicies::load(std::string(COORDIFF_DATA_DIR) + "/behaviour/spread.npz");
  CHECK(p.normalised(mean) > 5);
  CHECK(p.normalised(mean) < p.normalised(p.medium_return));
}
