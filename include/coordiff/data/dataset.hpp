#pragma once
// An offline multi-agent dataset in coordiff's npz layout (docs/formats.md): E episodes of T steps of
// A agents. Loading validates every array against the others and names the file, the array and what
// was expected; saving is atomic.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/io/npz.hpp"

namespace coordiff::data {

template <class T = float>
struct OfflineDataset {
  Tensor<T> observations{};       ///< [E, T, A, O]
  Tensor<T> actions{};            ///< [E, T, A, U]
  Tensor<T> rewards{};            ///< [E, T, A]
  Tensor<T> terminals{};          ///< [E, T], 1 at an episode's last step if it ended early, else 0
  Tensor<T> next_observations{};  ///< optional [E, T, A, O]
  Tensor<T> states{};             ///< optional [E, T, S]
  Tensor<T> costs{};              ///< optional [E, T, A]
  /// optional [E, T]: 1 at the last step of an episode cut short without ending (a truncated window, as
  /// D4RL's timeouts): the steps after it are ignored, but its last transition is not terminal.
  Tensor<T> timeouts{};
  std::string meta = "{}";        ///< a JSON object (env, quality, seed, reference returns, ...)

  index_t episodes() const { return observations.dim(0); }
  index_t steps() const { return observations.dim(1); }
  index_t agents() const { return observations.dim(2); }
  index_t obs_dim() const { return observations.dim(3); }
  index_t act_dim() const { return actions.dim(3); }

  /// Number of valid steps of episode e: up to and including its first terminal or timeout, else T.
  index_t episode_length(index_t e) const {
    for (index_t t = 0; t < steps(); ++t)
      if (terminals(e, t) != T(0) || (!timeouts.empty() && timeouts(e, t) != T(0))) return t + 1;
    return steps();
  }

  /// The episodes listed (in that order, repeats allowed), every array cut alike; meta is kept.
  OfflineDataset select_episodes(const std::vector<index_t>& which) const {
    const index_t E = episodes();
    for (index_t e : which) require<ShapeError>(e >= 0 && e < E, "select_episodes: episode ", e, " of ", E);
    OfflineDataset out;
    out.meta = meta;
    for (auto [from, to] : {std::pair{&observations, &out.observations}, std::pair{&actions, &out.actions},
                            std::pair{&rewards, &out.rewards}, std::pair{&terminals, &out.terminals},
                            std::pair{&next_observations, &out.next_observations}, std::pair{&states, &out.states},
                            std::pair{&costs, &out.costs}, std::pair{&timeouts, &out.timeouts}})
      if (!from->empty()) *to = take_rows(*from, which);
    return out;
  }

  /// Checks ranks, agreeing extents, finiteness and 0/1 terminals; `where` prefixes messages.
  void validate(const std::string& where = "dataset") const {
    require<ShapeError>(observations.rank() == 4 && observations.size() > 0, where,
                        ": observations must be a non-empty [E, T, A, O] array, found ", to_string(observations.shape()));
    const index_t E = episodes(), Tn = steps(), A = agents(), O = obs_dim();
    require<ShapeError>(actions.rank() == 4 && actions.dim(0) == E && actions.dim(1) == Tn && actions.dim(2) == A, where,
                        ": actions must be [", E, ", ", Tn, ", ", A, ", U] like observations, found ",
                        to_string(actions.shape()));
    require_shape(rewards.shape(), {E, Tn, A}, where + ": rewards");
    require_shape(terminals.shape(), {E, Tn}, where + ": terminals");
    if (!next_observations.empty()) require_shape(next_observations.shape(), {E, Tn, A, O}, where + ": next_observations");
    if (!states.empty())
      require<ShapeError>(states.rank() == 3 && states.dim(0) == E && states.dim(1) == Tn, where, ": states must be [", E,
                          ", ", Tn, ", S], found ", to_string(states.shape()));
    if (!costs.empty()) require_shape(costs.shape(), {E, Tn, A}, where + ": costs");
    if (!timeouts.empty()) require_shape(timeouts.shape(), {E, Tn}, where + ": timeouts");
    const std::pair<const char*, const Tensor<T>*> all[] = {{"observations", &observations}, {"actions", &actions},
                                                            {"rewards", &rewards},           {"terminals", &terminals},
                                                            {"next_observations", &next_observations},
                                                            {"states", &states},             {"costs", &costs},
                                                            {"timeouts", &timeouts}};
    for (const auto& [name, t] : all)
      if (!t->empty()) require_finite(*t, where + ": " + name);
    for (const auto& [name, flags] : {std::pair{"terminals", &terminals}, std::pair{"timeouts", &timeouts}})
      for (index_t i = 0; i < flags->size(); ++i)
        require<NumericError>((*flags)[i] == T(0) || (*flags)[i] == T(1), where, ": ", name, " must be 0 or 1, found ",
                              (*flags)[i], " at episode ", i / Tn, " step ", i % Tn);
  }

  static OfflineDataset load(const std::filesystem::path& path) {
    const auto f = io::NpzFile::load(path);
    OfflineDataset d;
    d.observations = f.tensor<T>("observations");
    d.actions = f.tensor<T>("actions");
    d.rewards = f.tensor<T>("rewards");
    d.terminals = f.tensor<T>("terminals");
    if (f.contains("next_observations")) d.next_observations = f.tensor<T>("next_observations");
    if (f.contains("states")) d.states = f.tensor<T>("states");
    if (f.contains("costs")) d.costs = f.tensor<T>("costs");
    if (f.contains("timeouts")) d.timeouts = f.tensor<T>("timeouts");
    if (f.contains("meta")) {
      const auto m = f.strings("meta");
      require<FormatError>(m.size() == 1, path.string(), ": meta must hold one JSON string, found ", m.size());
      d.meta = m.front();
    }
    d.validate(path.string());
    return d;
  }

  /// Validates, then writes atomically (np.savez_compressed layout by default).
  void save(const std::filesystem::path& path, bool compressed = true) const {
    validate(path.string());
    io::NpzWriter w;
    w.add("observations", observations).add("actions", actions).add("rewards", rewards).add("terminals", terminals);
    if (!next_observations.empty()) w.add("next_observations", next_observations);
    if (!states.empty()) w.add("states", states);
    if (!costs.empty()) w.add("costs", costs);
    if (!timeouts.empty()) w.add("timeouts", timeouts);
    w.add_strings("meta", {meta});
    w.save(path, compressed);
  }
};

/// Per-dimension mean and std of the observations of the first `episodes` episodes (all when < 0), over
/// each episode's valid steps (episode_length), for a fixed input standardisation; std 1 and mean 0 where a
/// dimension is constant (e.g. spread's silent communication channels).
template <class T>
std::pair<Tensor<T>, Tensor<T>> observation_moments(const OfflineDataset<T>& d, index_t episodes = -1) {
  const index_t E = episodes < 0 ? d.episodes() : std::min(episodes, d.episodes());
  const index_t O = d.obs_dim(), per_step = d.agents() * O;
  std::vector<double> s1(static_cast<std::size_t>(O)), s2(static_cast<std::size_t>(O));
  index_t rows = 0;
  for (index_t e = 0; e < E; ++e) {
    const index_t len = d.episode_length(e);
    const T* x = d.observations.data() + e * d.steps() * per_step;
    for (index_t r = 0; r < len * d.agents(); ++r)
      for (index_t k = 0; k < O; ++k) {
        const double v = x[r * O + k];
        s1[static_cast<std::size_t>(k)] += v, s2[static_cast<std::size_t>(k)] += v * v;
      }
    rows += len * d.agents();
  }
  require<ShapeError>(rows > 0, "observation_moments: no observations");
  Tensor<T> mean({O}), sd({O});
  for (index_t k = 0; k < O; ++k) {
    const double m = s1[static_cast<std::size_t>(k)] / static_cast<double>(rows);
    const double var = s2[static_cast<std::size_t>(k)] / static_cast<double>(rows) - m * m;
    const bool constant = var < 1e-8;
    mean[k] = static_cast<T>(constant ? 0.0 : m);
    sd[k] = static_cast<T>(constant ? 1.0 : std::sqrt(var));
  }
  return {mean, sd};
}

}  // namespace coordiff::data
