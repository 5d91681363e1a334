// Rolling behaviour policies out into offline datasets: layout, reproducibility, batch independence.
#include <doctest/doctest.h>

#include <algorithm>

#include "coordiff/env/mpe.hpp"
#include "coordiff/env/mpe/collect.hpp"

using namespace coordiff;
namespace mpe = coordiff::env::mpe;

TEST_CASE("collect_episodes: the dataset layout, and episodes independent of how many run in parallel") {
  const auto policy = mpe::uniform_random_policy(4);
  const auto a = mpe::collect_episodes<mpe::TagEnv>(7, 11, policy, 3);
  const auto b = mpe::collect_episodes<mpe::TagEnv>(7, 11, policy, 7);
  a.validate("tag random");
  CHECK(a.observations.shape() == Shape{7, 25, 3, 16});
  CHECK(a.actions.shape() == Shape{7, 25, 3, 2});
  CHECK(a.states.shape() == Shape{7, 25, mpe::TagEnv::kStateDim});
  CHECK(a.observations.storage() == b.observations.storage());
  CHECK(a.rewards.storage() == b.rewards.storage());
  CHECK(a.actions.storage() == b.actions.storage());
  // o'_t is o_{t+1}, and actions are uniform in [-1, 1].
  for (index_t e = 0; e < 7; ++e)
    for (index_t t = 0; t + 1 < 25; ++t)
      for (index_t k = 0; k < 16; ++k) CHECK(a.next_observations(e, t, 1, k) == a.observations(e, t + 1, 1, k));
  float lo = 1, hi = -1;
  for (float v : a.actions) lo = std::min(lo, v), hi = std::max(hi, v);
  CHECK(lo >= -1.0f);
  CHECK(hi <= 1.0f);
  CHECK(hi - lo > 1.8f);
  // A different seed gives different episodes.
  CHECK(mpe::collect_episodes<mpe::TagEnv>(7, 12, policy, 7).observations.storage() != a.observations.storage());
  CHECK_THROWS_AS(mpe::collect_episodes<mpe::TagEnv>(0, 1, policy), ConfigError);
  auto bad_policy = [](const Tensor<double>& obs, std::uint64_t, index_t) { return Tensor<double>({obs.dim(0), 2}); };
  CHECK_THROWS_AS(mpe::collect_episodes<mpe::SpreadEnv>(2, 1, bad_policy), ShapeError);
}

TEST_CASE("episode_returns: OMAR's evaluation return (spread: mean over agents, tag/world: agent 0)") {
  data::OfflineDataset<float> d;
  d.observations = Tensor<float>({1, 2, 2, 1});
  d.actions = Tensor<float>({1, 2, 2, 1});
  d.rewards = Tensor<float>({1, 2, 2}, {1.f, 3.f, 5.f, 7.f});
  d.terminals = Tensor<float>({1, 2});
  CHECK(mpe::episode_returns(d, true)[0] == doctest::Approx(2 + 6));
  CHECK(mpe::episode_returns(d, false)[0] == doctest::Approx(1 + 5));
}
