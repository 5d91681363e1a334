#pragma once
// Multi-agent particle environments (OMAR variant): batched simulator and the spread, tag and world
// scenarios, and episode pictures. See env/mpe/batched_env.hpp for the batch layout, seeding, prey
// and global state.
#include "coordiff/env/mpe/batched_env.hpp"
#include "coordiff/env/mpe/collect.hpp"
#include "coordiff/env/mpe/physics.hpp"
#include "coordiff/env/mpe/render.hpp"
#include "coordiff/env/mpe/spread.hpp"
#include "coordiff/env/mpe/tag.hpp"
#include "coordiff/env/mpe/world.hpp"
