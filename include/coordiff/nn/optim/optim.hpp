#pragma once
#include "coordiff/nn/optim/adam.hpp"
#include "coordiff/nn/optim/ema.hpp"
#include "coordiff/nn/optim/grad_clip.hpp"
#include "coordiff/nn/optim/lr_schedule.hpp"
#include "coordiff/nn/optim/polyak.hpp"
