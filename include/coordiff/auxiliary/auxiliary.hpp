#pragma once
// The MASTARS auxiliary models: inverse dynamics, transition, reward and value models on two-layer MLPs.
#include "coordiff/auxiliary/features.hpp"
#include "coordiff/auxiliary/inverse_dynamics.hpp"
#include "coordiff/auxiliary/regressor.hpp"
#include "coordiff/auxiliary/reward_model.hpp"
#include "coordiff/auxiliary/transition_model.hpp"
#include "coordiff/auxiliary/transitions.hpp"
#include "coordiff/auxiliary/value_model.hpp"
