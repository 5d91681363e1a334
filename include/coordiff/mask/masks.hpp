#pragma once
// The MaskStrategy concept and every shipped mask.
#include "coordiff/mask/mask.hpp"

#include "coordiff/mask/after_subgoal.hpp"
#include "coordiff/mask/history_prefix.hpp"
#include "coordiff/mask/none.hpp"
#include "coordiff/mask/user_mask.hpp"
