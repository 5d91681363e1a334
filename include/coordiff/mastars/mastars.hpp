#pragma once
// MASTARS (paper 000) and its baselines on coordiff: configuration, models, training, augmentation.
#include "coordiff/mastars/augment.hpp"
#include "coordiff/mastars/compositions.hpp"
#include "coordiff/mastars/config.hpp"
#include "coordiff/mastars/figure.hpp"
#include "coordiff/mastars/model.hpp"
#include "coordiff/mastars/training.hpp"
