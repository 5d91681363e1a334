#pragma once
// Two guidances in sequence: `second` sees, as its denoiser, the prediction `first` makes of the real one.
// Chain{ClassifierFree{1.2}, cbf_gradient(h, s)} is paper 001's generator: classifier-free guidance
// toward the condition y = (CBF satisfaction, return), then the CBF gradient step on that guided
// prediction's clean sample.
#include <utility>

#include "coordiff/guidance/guidance.hpp"

namespace coordiff::guidance {

namespace detail {
/// The denoiser `first` makes of D at one step (same step info for every call).
template <class First, class D>
struct GuidedDenoiser {
  using value_type = typename D::value_type;
  const First* first;
  D* d;
  const StepInfo* info;
  Tensor<value_type> operator()(const Tensor<value_type>& x, const Tensor<value_type>& k, const Condition<value_type>& c) {
    return first->model_output(*d, x, k, c, *info);
  }
};
}  // namespace detail

template <class First, class Second>
struct Chain {
  First first;
  Second second;

  template <denoiser::Denoiser D>
  Tensor<typename D::value_type> model_output(D& d, const Tensor<typename D::value_type>& x,
                                              const Tensor<typename D::value_type>& k,
                                              const Condition<typename D::value_type>& c, const StepInfo& info) const {
    static_assert(Guidance<First, D>, "coordiff guidance::Chain: the first guidance does not fit this denoiser");
    detail::GuidedDenoiser<First, D> guided{&first, &d, &info};
    static_assert(Guidance<Second, detail::GuidedDenoiser<First, D>>,
                  "coordiff guidance::Chain: the second guidance does not fit a denoiser");
    return second.model_output(guided, x, k, c, info);
  }
};

template <class First, class Second>
Chain<First, Second> chain(First first, Second second) {
  return Chain<First, Second>{std::move(first), std::move(second)};
}

}  // namespace coordiff::guidance
