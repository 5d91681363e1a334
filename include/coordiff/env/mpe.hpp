#pragma once
// Multi-agent particle environments (OMAR variant): batched simulator and the spread, tag and world
// scenarios, and episode pictures. See env/mpe/batched_env.hpp for the batch layout, seeding, prey
// and global state.
#include "coordiff/env/mpe/batched_env.hpp"
#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/env/mpe/physics.hpp"
#include "coordiff/env/mpe/render.hpp"
#include "coordiff/env/mpe/safe_spread.hpp"
#include "coordiff/env/mpe/spread.hpp"
#include "coordiff/env/mpe/tag.hpp"
#include "coordiff/env/mpe/world.hpp"

#include <string>

namespace coordiff::env::mpe {

/// Calls fn(Env(1)) with the batched scenario named `name` (spread, tag or world).
template <class Fn>
decltype(auto) with_scenario(const std::string& name, Fn&& fn) {
  if (name == "spread") return fn(SpreadEnv(1));
  if (name == "tag") return fn(TagEnv(1));
  require<ConfigError>(name == "world", "MPE scenario must be spread, tag or world, got '", name, "'");
  return fn(WorldEnv(1));
}

}  // namespace coordiff::env::mpe
