#pragma once
// The generators of paper 000, composed from the policy families at compile time:
//   Mastars<Order>       one inpainting round per agent in Order (LastObsValue = LOV, eq. 7; SubgoalIndex =
//                        SG, eq. 8; Reverse and Random for the ablation), each agent regenerated after its
//                        subgoal (AfterSubgoal, eq. 4), the others visible and known;
//   JointBaseline        MADiff*: every agent's whole window after its first step, in one joint round;
//   IndependentBaseline  each agent after its first step, alone (the denoiser does not see the others).
// All three sample with return-conditioned classifier-free guidance and keep a window only if it passes
// the dynamics-consistency filter (eq. 6); with SafeConsistency as their filter they also keep only windows
// that satisfy the model's CBF everywhere (paper 001's filter::CbfSafe): "safe MASTARS".
#include <optional>
#include <type_traits>
#include <utility>

#include "coordiff/auxiliary/inverse_dynamics.hpp"
#include "coordiff/auxiliary/transition_model.hpp"
#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/diffusion/generator.hpp"
#include "coordiff/filter/both.hpp"
#include "coordiff/filter/cbf_safe.hpp"
#include "coordiff/filter/dynamics_consistency.hpp"
#include "coordiff/guidance/classifier_free.hpp"
#include "coordiff/mask/after_subgoal.hpp"
#include "coordiff/mask/history_prefix.hpp"
#include "coordiff/mastars/model.hpp"
#include "coordiff/order/orders.hpp"
#include "coordiff/schedule/cosine.hpp"

namespace coordiff::mastars {

using Network = nn::MultiAgentUNet<float>;
using NetworkRef = denoiser::Ref<Network>;
using Consistency = filter::DynamicsConsistency<auxiliary::InverseDynamics<float>, auxiliary::TransitionModel<float>>;
using SafeConsistency = filter::Both<Consistency, filter::CbfSafe<safety::MlpBarrier<float>>>;

/// The generators over any denoiser `Den` (a Ref to the CPU network, or nn::cuda::GpuUNet's Ref for
/// the GPU): the composition is the same, only the network's backend differs. Filter is Consistency or
/// SafeConsistency.
template <class Den, class Order, class Filter = Consistency>
using MastarsWith = diffusion::Generator<schedule::Cosine, Den, mask::AfterSubgoal, Order, Filter, guidance::ClassifierFree>;
template <class Den, class Filter = Consistency>
using JointBaselineWith = diffusion::Generator<schedule::Cosine, Den, mask::HistoryPrefix, order::Joint, Filter,
                                               guidance::ClassifierFree>;
template <class Den, class Filter = Consistency>
using IndependentBaselineWith = diffusion::Generator<schedule::Cosine, Den, mask::HistoryPrefix, order::Independent,
                                                     Filter, guidance::ClassifierFree>;

template <class Order>
using Mastars = MastarsWith<NetworkRef, Order>;
using JointBaseline = JointBaselineWith<NetworkRef>;
using IndependentBaseline = IndependentBaselineWith<NetworkRef>;

/// The sampler settings of the official MASTARS generator: DDPM with clipped x0^, x_K = 0.5 z, the known
/// region pasted at the current level (eq. 5c), no RePaint resampling unless the config asks for it.
inline diffusion::SamplerOptions sampler_options() {
  diffusion::SamplerOptions o;
  o.paste = diffusion::PasteRule::Mastars;
  o.initial_noise_scale = 0.5;
  return o;
}

inline diffusion::TimestepPlan timestep_plan(const Config& c) {
  const index_t K = c.diffusion.diffusion_steps, S = c.augment.sampling_steps;
  auto plan = S == 0 || S == K ? diffusion::TimestepPlan::full(K) : diffusion::TimestepPlan::strided(K, S);
  if (c.augment.resample_jump > 1 || c.augment.resample_count > 1)
    plan = plan.with_resampling(c.augment.resample_jump, c.augment.resample_count);
  return plan;
}

/// The model's filter of type Filter: the dynamics-consistency filter (eq. 6) at the config's epsilon,
/// and for SafeConsistency also the CBF filter with the model's trained CBF.
template <class Filter>
Filter model_filter(Model<float>& m) {
  auto consistency = filter::dynamics_consistency(m.inverse, m.transition, m.config.augment.epsilon);
  if constexpr (std::is_same_v<Filter, Consistency>) {
    return consistency;
  } else {
    static_assert(std::is_same_v<Filter, SafeConsistency>, "coordiff mastars: the filter must be Consistency or SafeConsistency");
    require<ConfigError>(m.has_cbf(), "mastars: the CBF filter (safe MASTARS) needs the model's CBF: train the model on a "
                         "dataset with costs");
    return filter::both(std::move(consistency), filter::cbf_safe(m.barrier, m.cbf_options()));
  }
}

/// A generator of type G (one of the aliases above) over the denoiser `den` and the model's auxiliary
/// models, which it borrows: the model must outlive it.
template <class G, class Den, class Mask, class Order>
G make(Model<float>& m, Den den, Mask mask, Order order) {
  using Filter = decltype(G::Policies::filter);
  return G({schedule::Cosine(m.config.diffusion.diffusion_steps), std::move(den), std::move(mask), std::move(order),
            model_filter<Filter>(m), guidance::ClassifierFree{m.config.diffusion.guidance_weight}},
           timestep_plan(m.config), sampler_options(), m.config.augment.seed);
}

namespace detail {
/// The given denoiser, else the model's own network (when Den can be made from it).
template <class Den>
Den denoiser_or_network(Model<float>& m, std::optional<Den>& den) {
  if (den) return std::move(*den);
  if constexpr (std::is_constructible_v<Den, Network&>) {
    return Den(m.net);
  } else {
    throw ConfigError("mastars: this denoiser type cannot be made from the model's network; pass one");
  }
}
}  // namespace detail

template <class Order, class Den = NetworkRef, class Filter = Consistency>
MastarsWith<Den, Order, Filter> make_mastars(Model<float>& m, Order order = {}, std::optional<Den> den = std::nullopt) {
  return make<MastarsWith<Den, Order, Filter>>(m, detail::denoiser_or_network(m, den), mask::AfterSubgoal{}, std::move(order));
}
template <class Den = NetworkRef, class Filter = Consistency>
JointBaselineWith<Den, Filter> make_joint_baseline(Model<float>& m, std::optional<Den> den = std::nullopt) {
  return make<JointBaselineWith<Den, Filter>>(m, detail::denoiser_or_network(m, den), mask::HistoryPrefix{1}, order::Joint{});
}
template <class Den = NetworkRef, class Filter = Consistency>
IndependentBaselineWith<Den, Filter> make_independent_baseline(Model<float>& m, std::optional<Den> den = std::nullopt) {
  return make<IndependentBaselineWith<Den, Filter>>(m, detail::denoiser_or_network(m, den), mask::HistoryPrefix{1},
                                                    order::Independent{});
}

}  // namespace coordiff::mastars
