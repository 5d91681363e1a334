#pragma once
// Offline datasets, training windows and normalisers.
#include "coordiff/data/dataset.hpp"
#include "coordiff/data/normalizer.hpp"
#include "coordiff/data/windows.hpp"
