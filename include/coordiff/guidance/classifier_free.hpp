#pragma once
// Classifier-free guidance (Ho & Salimans 2022, eq. 6, written as MADiff/Decision Diffuser do):
// out = out_u + w (out_c - out_u), with out_c the prediction under the condition and out_u the
// prediction on the null path (every keep flag 0). w = 0: unconditional; w = 1: conditional;
// w > 1 pushes further towards the condition. MADiff: w = 1.2.
#include "coordiff/guidance/guidance.hpp"

namespace coordiff::guidance {

struct ClassifierFree {
  double weight = 1.2;

  template <denoiser::Denoiser D>
  Tensor<typename D::value_type> model_output(D& d, const Tensor<typename D::value_type>& x,
                                              const Tensor<typename D::value_type>& k,
                                              const Condition<typename D::value_type>& c, const StepInfo&) const {
    using T = typename D::value_type;
    require<ConfigError>(c.has_value(), "guidance::ClassifierFree: the batch has no condition value to guide with");
    Tensor<T> cond = d(x, k, c.with_keep(T(1)));
    const Tensor<T> uncond = d(x, k, c.with_keep(T(0)));
    for (index_t i = 0; i < cond.size(); ++i)
      cond[i] = static_cast<T>(uncond[i] + weight * (static_cast<double>(cond[i]) - uncond[i]));
    return cond;
  }
};

}  // namespace coordiff::guidance
