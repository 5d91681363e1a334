#pragma once
// Umbrella header (convenience). Prefer the per-family headers in larger projects: they compile faster.
#include "coordiff/core/error.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/core/threading.hpp"
#include "coordiff/nn/linear.hpp"
#include "coordiff/nn/parameter.hpp"
