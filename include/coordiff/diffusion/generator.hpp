#pragma once
// The Generator composes the five policy families at compile time (../docs/concepts.md):
//   for each batch: rounds = order.plan(batch); for each round, known = mask.known(batch, round) and one
//   inpainting pass of the sampler regenerates the unknown entries given everything known (MASTARS
//   section 3.2: each round starts from the result of the previous one); finally filter.check keeps or
//   rejects each sample. The joint baseline is one round of all agents, MASTARS one round per agent.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/denoiser/denoiser.hpp"
#include "coordiff/diffusion/batch.hpp"
#include "coordiff/diffusion/sampler.hpp"
#include "coordiff/filter/filter.hpp"
#include "coordiff/guidance/guidance.hpp"
#include "coordiff/mask/mask.hpp"
#include "coordiff/order/order.hpp"
#include "coordiff/schedule/schedule.hpp"

namespace coordiff::diffusion {

struct GenerationStats {
  index_t samples = 0;
  index_t accepted = 0;
  double accepted_fraction = 0;   ///< accepted / samples
  double generated_fraction = 0;  ///< entries regenerated in at least one round / all entries
  index_t rounds = 0;
  index_t denoiser_calls = 0;     ///< batched calls of the denoiser (guidance may call it more than once per step)
  index_t reverse_steps = 0;      ///< summed over rounds
  index_t renoise_steps = 0;
  std::vector<double> round_seconds;
  double total_seconds = 0;
};

template <class T>
struct Generation {
  Tensor<T> samples;                 ///< [B, H, A, F]
  Tensor<std::uint8_t> generated;    ///< [B, H, A, F], 1 where an entry was regenerated
  std::vector<std::uint8_t> keep;    ///< filter verdict per sample
  std::vector<std::string> reason;   ///< why a sample was rejected (empty if kept)
  GenerationStats stats;
};

namespace detail {
/// Counts the batched calls of a denoiser it borrows.
template <class D>
struct CountingDenoiser {
  using value_type = typename D::value_type;
  D* d;
  index_t* calls;
  Tensor<value_type> operator()(const Tensor<value_type>& x, const Tensor<value_type>& k,
                                const Condition<value_type>& c) {
    ++*calls;
    return (*d)(x, k, c);
  }
};

/// The denoiser's value_type; float for a denoiser without one (which check_policies has already
/// reported), so that no second error follows the readable one.
template <class D>
struct value_type_of {
  using type = float;
};
template <class D>
  requires requires { typename D::value_type; }
struct value_type_of<D> {
  using type = typename D::value_type;
};

/// Compile-time checks in dependency order, so that a broken policy produces one readable message.
template <class S, class D, class M, class O, class F, class G>
constexpr bool check_policies() {
  if constexpr (!schedule::NoiseSchedule<S>) {
    return schedule::check_noise_schedule<S>();
  } else if constexpr (!denoiser::Denoiser<D>) {
    return denoiser::check_denoiser<D>();
  } else {
    using T = typename D::value_type;
    if constexpr (!mask::MaskStrategy<M, T>) return mask::check_mask_strategy<M, T>();
    else if constexpr (!order::OrderingRule<O, T>) return order::check_ordering_rule<O, T>();
    else if constexpr (!filter::ValidityFilter<F, T>) return filter::check_validity_filter<F, T>();
    else if constexpr (!guidance::Guidance<G, CountingDenoiser<D>>) return guidance::check_guidance<G, CountingDenoiser<D>>();
    else return true;
  }
}
}  // namespace detail

template <class Schedule, class Denoiser, class Mask, class Order, class Filter, class Guide>
class Generator {
  static_assert(detail::check_policies<Schedule, Denoiser, Mask, Order, Filter, Guide>());

 public:
  using value_type = typename detail::value_type_of<Denoiser>::type;
  using T = value_type;

  struct Policies {
    Schedule schedule;
    Denoiser denoiser;
    Mask mask;
    Order order;
    Filter filter;
    Guide guidance;
  };

  /// plan: the timestep plan of every inpainting pass (e.g. TimestepPlan::full(K).with_resampling(10, 10)).
  Generator(Policies policies, TimestepPlan plan, SamplerOptions options = {}, std::uint64_t seed = 0)
      : p_(std::move(policies)), sampler_(p_.schedule, std::move(plan), options), seed_(seed) {}

  Denoiser& denoiser() { return p_.denoiser; }
  const Policies& policies() const { return p_; }
  const Sampler<Schedule>& sampler() const { return sampler_; }
  std::uint64_t seed() const { return seed_; }
  void set_seed(std::uint64_t seed) { seed_ = seed; }

  Generation<T> generate(const Batch<T>& batch) {
    const auto t_start = std::chrono::steady_clock::now();
    batch.validate();
    const index_t B = batch.batch_size(), H = batch.horizon(), A = batch.agents(), F = batch.features();
    const RoundPlan plan = p_.order.plan(batch);
    validate_plan(plan, B, A, "Generator");
    require<ConfigError>(static_cast<std::uint64_t>(plan.size()) <= SampleNoise::kMaxRounds, "Generator: ", plan.size(),
                         " rounds exceed the limit of ", SampleNoise::kMaxRounds);

    Generation<T> g;
    g.samples = batch.data;
    g.generated = Tensor<std::uint8_t>({B, H, A, F});
    const SampleNoise noise(seed_, batch.first_sample);
    detail::CountingDenoiser<Denoiser> counted{&p_.denoiser, &g.stats.denoiser_calls};
    for (std::size_t r = 0; r < plan.size(); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const Round& round = plan[r];
      const Tensor<std::uint8_t> known = p_.mask.known(batch, round);
      require_shape(known.shape(), {B, H, A, F}, "Generator: mask of round " + std::to_string(r));
      check_outside_round_known(known, round, r);
      for (index_t i = 0; i < known.size(); ++i)
        if (!known[i]) g.generated[i] = 1;
      SampleStats st;
      if (round.others_visible) {
        g.samples = sampler_.sample(counted, p_.guidance, g.samples, &known, batch.condition, noise.for_round(r), &st);
      } else {
        run_group_only(counted, g.samples, known, batch.condition, round, noise.for_round(r), st);
      }
      g.stats.reverse_steps += st.reverse_steps;
      g.stats.renoise_steps += st.renoise_steps;
      g.stats.round_seconds.push_back(seconds_since(t0));
    }

    filter::Verdict v = p_.filter.check(g.samples, batch);
    require<ConfigError>(static_cast<index_t>(v.keep.size()) == B, "Generator: the filter returned ", v.keep.size(),
                         " keep flags for ", B, " samples");
    if (v.reason.empty()) v.reason.assign(static_cast<std::size_t>(B), std::string());
    require<ConfigError>(static_cast<index_t>(v.reason.size()) == B, "Generator: the filter returned ", v.reason.size(),
                         " reasons for ", B, " samples");
    g.keep = std::move(v.keep);
    g.reason = std::move(v.reason);

    GenerationStats& s = g.stats;
    s.samples = B;
    for (auto k : g.keep) s.accepted += k ? 1 : 0;
    s.accepted_fraction = static_cast<double>(s.accepted) / static_cast<double>(B);
    index_t gen = 0;
    for (auto v8 : g.generated) gen += v8;
    s.generated_fraction = static_cast<double>(gen) / static_cast<double>(g.generated.size());
    s.rounds = static_cast<index_t>(plan.size());
    s.total_seconds = seconds_since(t_start);
    return g;
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  static void check_outside_round_known(const Tensor<std::uint8_t>& known, const Round& round, std::size_t r) {
    const index_t B = known.dim(0), H = known.dim(1), A = known.dim(2), F = known.dim(3);
    for (index_t b = 0; b < B; ++b) {
      std::vector<char> in(static_cast<std::size_t>(A), 0);
      for (index_t a : round.agents[static_cast<std::size_t>(b)]) in[static_cast<std::size_t>(a)] = 1;
      for (index_t a = 0; a < A; ++a) {
        if (in[static_cast<std::size_t>(a)]) continue;
        for (index_t t = 0; t < H; ++t)
          for (index_t f = 0; f < F; ++f)
            require<ConfigError>(known(b, t, a, f) != 0, "Generator: the mask of round ", r, " leaves agent ", a,
                                 " of sample ", b, " unknown at step ", t, ", but the round generates only its own agents");
      }
    }
  }

  /// Independent generation: the denoiser sees only the round's agents ([B, H, g, F]).
  template <class D>
  void run_group_only(D& den, Tensor<T>& x, const Tensor<std::uint8_t>& known, const Condition<T>& cond, const Round& round,
                      const SampleNoise& noise, SampleStats& st) {
    const index_t B = x.dim(0), H = x.dim(1), F = x.dim(3), G = round.group_size();
    Tensor<T> xs({B, H, G, F});
    Tensor<std::uint8_t> ks({B, H, G, F});
    auto for_each = [&](auto&& fn) {
      for (index_t b = 0; b < B; ++b)
        for (index_t t = 0; t < H; ++t)
          for (index_t j = 0; j < G; ++j)
            for (index_t f = 0; f < F; ++f) fn(b, t, j, round.agents[static_cast<std::size_t>(b)][static_cast<std::size_t>(j)], f);
    };
    for_each([&](index_t b, index_t t, index_t j, index_t a, index_t f) {
      xs(b, t, j, f) = x(b, t, a, f);
      ks(b, t, j, f) = known(b, t, a, f);
    });
    Condition<T> cs;
    const bool same_agents = std::all_of(round.agents.begin(), round.agents.end(),
                                         [&](const auto& v) { return v == round.agents.front(); });
    if (same_agents) cs.agents = round.agents.front();
    if (cond.has_value() || !cond.keep.empty()) {
      const index_t C = cond.width(), A = x.dim(2);
      if (cond.has_value()) cs.value = cond.value.rank() == 3 ? Tensor<T>({B, G, C}) : Tensor<T>({B, G});
      if (!cond.keep.empty()) cs.keep = Tensor<T>({B, G});
      for (index_t b = 0; b < B; ++b)
        for (index_t j = 0; j < G; ++j) {
          const index_t a = round.agents[static_cast<std::size_t>(b)][static_cast<std::size_t>(j)];
          for (index_t c = 0; c < C && cond.has_value(); ++c) cs.value[(b * G + j) * C + c] = cond.value[(b * A + a) * C + c];
          if (!cond.keep.empty()) cs.keep(b, j) = cond.keep(b, a);
        }
    }
    const Tensor<T> ys = sampler_.sample(den, p_.guidance, xs, &ks, cs, noise, &st);
    for_each([&](index_t b, index_t t, index_t j, index_t a, index_t f) { x(b, t, a, f) = ys(b, t, j, f); });
  }

  Policies p_;
  Sampler<Schedule> sampler_;
  std::uint64_t seed_;
};

/// Deduces the policy types: make_generator(schedule, denoiser, mask, order, filter, guidance, plan, ...).
template <class S, class D, class M, class O, class F, class G>
Generator<S, D, M, O, F, G> make_generator(S schedule, D denoiser, M mask, O order, F filter, G guidance, TimestepPlan plan,
                                           SamplerOptions options = {}, std::uint64_t seed = 0) {
  return Generator<S, D, M, O, F, G>({std::move(schedule), std::move(denoiser), std::move(mask), std::move(order),
                                      std::move(filter), std::move(guidance)},
                                     std::move(plan), options, seed);
}

}  // namespace coordiff::diffusion

namespace coordiff {
using diffusion::Generator;
using diffusion::make_generator;
}  // namespace coordiff
