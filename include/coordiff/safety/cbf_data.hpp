#pragma once
// The labelled rows a decentralised CBF is trained on (paper 001 eq. 12), cut from an offline dataset with
// per-agent costs: one row per (episode, step, agent), z = the agent's observation o_t, z' = o_{t+1}.
// Costs mark the state *after* a step (costs[t] = 1: o_{t+1} is in the dangerous set), so o_t is labelled
// safe when the step that led to it had no cost; an episode's first observation is safe (the environments
// reset into the safe set).
#include <cstdint>
#include <vector>

#include "coordiff/data/dataset.hpp"
#include "coordiff/safety/cbf_training.hpp"

namespace coordiff::safety {

/// Rows of the episodes [first, last) of d (all by default). Without next_observations the successor of
/// o_t is o_{t+1} of the same episode and the episode's last row has none (has_next = 0).
template <class T>
CbfData<T> cbf_data(const data::OfflineDataset<T>& d, index_t first = 0, index_t last = -1) {
  require<ConfigError>(!d.costs.empty(), "safety::cbf_data: the dataset has no 'costs' (per-agent safety costs); "
                       "record it with an environment that defines them (gen-data --env double-integrator or safe-spread)");
  if (last < 0) last = d.episodes();
  require<ConfigError>(first >= 0 && first < last && last <= d.episodes(), "safety::cbf_data: episode range [", first, ", ",
                       last, ") outside the dataset's ", d.episodes(), " episodes");
  const index_t A = d.agents(), O = d.obs_dim();
  index_t rows = 0;
  for (index_t e = first; e < last; ++e) rows += d.episode_length(e) * A;
  CbfData<T> c;
  c.z = Tensor<T>({rows, O});
  c.z_next = Tensor<T>({rows, O});
  c.safe.reserve(static_cast<std::size_t>(rows));
  c.has_next.reserve(static_cast<std::size_t>(rows));
  const bool next_given = !d.next_observations.empty();
  index_t r = 0;
  for (index_t e = first; e < last; ++e) {
    const index_t len = d.episode_length(e);
    for (index_t t = 0; t < len; ++t)
      for (index_t i = 0; i < A; ++i, ++r) {
        const bool has_next = next_given || t + 1 < len;
        for (index_t k = 0; k < O; ++k) {
          c.z(r, k) = d.observations(e, t, i, k);
          c.z_next(r, k) = next_given ? d.next_observations(e, t, i, k) : has_next ? d.observations(e, t + 1, i, k) : T(0);
        }
        c.safe.push_back(t == 0 || d.costs(e, t - 1, i) == 0 ? 1 : 0);
        c.has_next.push_back(has_next ? 1 : 0);
      }
  }
  return c;
}

}  // namespace coordiff::safety
