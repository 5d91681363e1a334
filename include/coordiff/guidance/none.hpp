#pragma once
// No guidance: one denoiser call with the batch's condition as given.
#include "coordiff/guidance/guidance.hpp"

namespace coordiff::guidance {

struct None {
  template <denoiser::Denoiser D>
  Tensor<typename D::value_type> model_output(D& d, const Tensor<typename D::value_type>& x,
                                              const Tensor<typename D::value_type>& k,
                                              const Condition<typename D::value_type>& c, const StepInfo&) const {
    return d(x, k, c);
  }
};

}  // namespace coordiff::guidance
