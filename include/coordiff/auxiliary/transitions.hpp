#pragma once
// Single-step transitions (o, a, r, o', done) of every agent, flattened out of an offline dataset: the
// training data of the auxiliary models (MASTARS sec. 3 and appendix C.2, eqs. 11-12).
#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/data/dataset.hpp"

namespace coordiff::auxiliary {

template <class T>
struct Transitions {
  Tensor<T> obs;       ///< [N, A, O]
  Tensor<T> actions;   ///< [N, A, U]
  Tensor<T> rewards;   ///< [N, A]
  Tensor<T> next_obs;  ///< [N, A, O]
  Tensor<T> done;      ///< [N], 1 where o' is terminal (no bootstrapping through it)

  index_t size() const { return obs.dim(0); }
  index_t agents() const { return obs.dim(1); }
  index_t obs_dim() const { return obs.dim(2); }
  index_t act_dim() const { return actions.dim(2); }
};

/// Every valid step of every episode. o' is `next_observations` when the dataset has it; otherwise
/// o_{t+1}, and an episode's last step is dropped unless it is terminal (its o' is unknown).
template <class T>
Transitions<T> transitions_of(const data::OfflineDataset<T>& d) {
  d.validate("transitions_of");
  const index_t E = d.episodes(), A = d.agents(), O = d.obs_dim(), U = d.act_dim();
  const bool has_next = !d.next_observations.empty();
  index_t n = 0;
  for (index_t e = 0; e < E; ++e) {
    const index_t len = d.episode_length(e);
    n += has_next || d.terminals(e, len - 1) != T(0) ? len : len - 1;
  }
  require<ShapeError>(n > 0, "transitions_of: the dataset holds no complete transition");
  Transitions<T> t{Tensor<T>({n, A, O}), Tensor<T>({n, A, U}), Tensor<T>({n, A}), Tensor<T>({n, A, O}), Tensor<T>({n})};
  index_t k = 0;
  for (index_t e = 0; e < E; ++e) {
    const index_t len = d.episode_length(e);
    for (index_t s = 0; s < len; ++s) {
      const bool terminal = d.terminals(e, s) != T(0);
      if (!has_next && !terminal && s + 1 == len) break;
      for (index_t a = 0; a < A; ++a) {
        for (index_t j = 0; j < O; ++j) {
          t.obs(k, a, j) = d.observations(e, s, a, j);
          // A terminal step without next_observations keeps o' = o: it is never bootstrapped from.
          t.next_obs(k, a, j) = has_next ? d.next_observations(e, s, a, j) : d.observations(e, terminal ? s : s + 1, a, j);
        }
        for (index_t u = 0; u < U; ++u) t.actions(k, a, u) = d.actions(e, s, a, u);
        t.rewards(k, a) = d.rewards(e, s, a);
      }
      t.done[k] = terminal ? T(1) : T(0);
      ++k;
    }
  }
  return t;
}

}  // namespace coordiff::auxiliary
