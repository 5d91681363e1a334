#pragma once
// The per-batch inputs the policies of a Generator look at, and the round plan an OrderingRule returns.
#include <cstdint>
#include <vector>

#include "coordiff/core/condition.hpp"
#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"

namespace coordiff::diffusion {

/// One batch of B windows, each H steps of A agents with F features (x [B, H, A, F]).
template <class T>
struct Batch {
  /// The windows to refine: the known entries of every round are taken from here (for unconditional
  /// generation, zeros of the right shape).
  Tensor<T> data{};
  /// Forwarded to the denoiser (e.g. the per-agent return for classifier-free guidance).
  Condition<T> condition{};
  /// Optional per-step value estimates V(o^i_t), [B, H, A]: used by the last-observation-value order
  /// (MASTARS eq. 7) and to derive subgoals g^i = argmax_t V(o^i_t) (MASTARS section 3.1).
  Tensor<T> values{};
  /// Optional subgoal step of each agent, [B, A] (overrides the argmax of `values`).
  Tensor<std::int64_t> subgoals{};
  /// Global index of sample 0: sample b draws its noise from the Philox stream of first_sample + b,
  /// so a sample's output does not depend on how the samples were split into batches.
  std::uint64_t first_sample = 0;

  index_t batch_size() const { return data.dim(0); }
  index_t horizon() const { return data.dim(1); }
  index_t agents() const { return data.dim(2); }
  index_t features() const { return data.dim(3); }

  /// Subgoal of agent a in sample b: `subgoals` if given, else argmax_t values[b, t, a] (first maximum).
  index_t subgoal(index_t b, index_t a) const {
    if (!subgoals.empty()) return subgoals(b, a);
    require<ConfigError>(!values.empty(), "Batch: subgoals need either `subgoals` [B, A] or `values` [B, H, A]");
    index_t best = 0;
    for (index_t t = 1; t < horizon(); ++t)
      if (values(b, t, a) > values(b, best, a)) best = t;
    return best;
  }

  /// Checks shapes and finiteness of everything that is given.
  void validate() const {
    require<ShapeError>(data.rank() == 4 && data.size() > 0, "Batch: data must be a non-empty [B, H, A, F] tensor, got ",
                        to_string(data.shape()));
    require_finite(data, "Batch data");
    const index_t B = batch_size(), H = horizon(), A = agents();
    if (!values.empty()) {
      require_shape(values.shape(), {B, H, A}, "Batch values");
      require_finite(values, "Batch values");
    }
    if (!subgoals.empty()) {
      require_shape(subgoals.shape(), {B, A}, "Batch subgoals");
      for (index_t i = 0; i < subgoals.size(); ++i)
        require<ConfigError>(subgoals[i] >= -1 && subgoals[i] < H, "Batch subgoals: entry ", i, " is ", subgoals[i],
                             ", expected -1 .. ", H - 1);
    }
    condition.validate(B, A, "Batch");
  }
};

/// The agents generated in one round. agents[b] lists sample b's agents (every sample generates the
/// same number of agents in a round; which ones may differ, e.g. value-ordered rounds).
struct Round {
  std::vector<std::vector<index_t>> agents;
  /// false: the denoiser sees only this round's agents (independent generation); the others are
  /// neither input nor output of the round.
  bool others_visible = true;

  index_t group_size() const { return agents.empty() ? 0 : static_cast<index_t>(agents.front().size()); }
};

/// The rounds of one batch, in generation order.
using RoundPlan = std::vector<Round>;

/// Checks a plan against a batch: B entries per round, equal group sizes, valid distinct agents.
inline void validate_plan(const RoundPlan& plan, index_t B, index_t A, const char* who) {
  require<ConfigError>(!plan.empty(), who, ": the ordering rule returned no rounds");
  for (std::size_t r = 0; r < plan.size(); ++r) {
    const Round& round = plan[r];
    require<ConfigError>(static_cast<index_t>(round.agents.size()) == B, who, ": round ", r, " lists ",
                         round.agents.size(), " samples, expected ", B);
    const index_t g = round.group_size();
    require<ConfigError>(g >= 1, who, ": round ", r, " generates no agent");
    for (index_t b = 0; b < B; ++b) {
      const auto& ag = round.agents[static_cast<std::size_t>(b)];
      require<ConfigError>(static_cast<index_t>(ag.size()) == g, who, ": round ", r, " sample ", b, " has ", ag.size(),
                           " agents, sample 0 has ", g);
      std::vector<char> seen(static_cast<std::size_t>(A), 0);
      for (index_t a : ag) {
        require<ConfigError>(a >= 0 && a < A, who, ": round ", r, " sample ", b, " names agent ", a, " of ", A);
        require<ConfigError>(!seen[static_cast<std::size_t>(a)], who, ": round ", r, " sample ", b, " repeats agent ", a);
        seen[static_cast<std::size_t>(a)] = 1;
      }
    }
  }
}

}  // namespace coordiff::diffusion
