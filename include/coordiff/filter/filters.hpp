#pragma once
// The ValidityFilter concept and every shipped filter.
#include "coordiff/filter/filter.hpp"

#include "coordiff/filter/accept_all.hpp"
#include "coordiff/filter/both.hpp"
#include "coordiff/filter/callable.hpp"
#include "coordiff/filter/cbf_safe.hpp"
#include "coordiff/filter/dynamics_consistency.hpp"
