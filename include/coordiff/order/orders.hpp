#pragma once
// The OrderingRule concept and every shipped ordering rule.
#include "coordiff/order/order.hpp"

#include "coordiff/order/independent.hpp"
#include "coordiff/order/joint.hpp"
#include "coordiff/order/last_obs_value.hpp"
#include "coordiff/order/random.hpp"
#include "coordiff/order/reverse.hpp"
#include "coordiff/order/subgoal_index.hpp"
