#pragma once
// The Guidance family: concept and every shipped guidance policy.
#include "coordiff/guidance/chain.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/guidance/cost_gradient.hpp"
#include "coordiff/guidance/guidance.hpp"
#include "coordiff/guidance/none.hpp"
