#pragma once
// The NoiseSchedule family: concept and every shipped schedule.
#include "coordiff/schedule/cosine.hpp"
#include "coordiff/schedule/from_betas.hpp"
#include "coordiff/schedule/linear.hpp"
#include "coordiff/schedule/schedule.hpp"
