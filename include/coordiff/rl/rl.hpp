#pragma once
// Reinforcement learning: replay buffer and the MATD3 behaviour-policy learner.
#include "coordiff/rl/matd3.hpp"
#include "coordiff/rl/replay_buffer.hpp"
