#pragma once
// Offline multi-agent RL learners (MA-TD3+BC, OMAR, CFCQL) and their training loop.
#include "coordiff/offline/actor_critic.hpp"
#include "coordiff/offline/conservative.hpp"
#include "coordiff/offline/learners.hpp"
#include "coordiff/offline/train.hpp"
#include "coordiff/offline/zeroth_order.hpp"
