#pragma once
// Pictures of MPE episodes: entity styles per scenario and a recorder of one environment's positions,
// drawn with viz/trajectory_svg.hpp (static scene with trails, or animated).
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/env/mpe/batched_env.hpp"
#include "coordiff/viz/trajectory_svg.hpp"

namespace coordiff::env::mpe {

/// Learners blue (spread) or red (adversaries), prey green, colliding landmarks dark grey, other
/// landmarks light grey (spread targets), food amber, forests pale green. Only agents leave trails.
template <class Env>
std::vector<viz::EntityStyle> entity_styles() {
  std::vector<viz::EntityStyle> s;
  const auto& spec = Env::entities();
  const bool has_prey = Env::kPrey > 0;
  for (index_t e = 0; e < Env::kEntities; ++e) {
    const auto& en = spec[static_cast<std::size_t>(e)];
    viz::EntityStyle st;
    st.radius = en.size;
    if (e < Env::kLearners) {
      st.label = (has_prey ? "adversary " : "agent ") + std::to_string(e);
      st.fill = has_prey ? "#d62728" : "#1f77b4";
    } else if (e < Env::kAgents) {
      st.label = "prey " + std::to_string(e - Env::kLearners);
      st.fill = "#2ca02c";
    } else {
      st.trail = false;
      const index_t l = e - Env::kAgents;
      if (en.collide) {
        st.label = "obstacle " + std::to_string(l), st.fill = "#555555";
      } else if (!has_prey) {
        st.label = "landmark " + std::to_string(l), st.fill = "#aaaaaa";
      } else if (en.size < 0.1) {
        st.label = "food " + std::to_string(l), st.fill = "#ff9f1c";
      } else {
        st.label = "forest " + std::to_string(l), st.fill = "#b7e4b0";
      }
    }
    s.push_back(std::move(st));
  }
  return s;
}

/// Collects the positions of environment `env_index` of a batch, one frame per record() call.
class EpisodeRecorder {
 public:
  explicit EpisodeRecorder(index_t env_index = 0) : env_(env_index) {}
  template <class Env>
  void record(const Env& env) {
    require<ConfigError>(env_ >= 0 && env_ < env.batch(), "EpisodeRecorder: environment ", env_, " not in a batch of ",
                         env.batch());
    require<ConfigError>(entities_ < 0 || entities_ == Env::kEntities, "EpisodeRecorder: entity count changed");
    entities_ = Env::kEntities;
    for (index_t e = 0; e < Env::kEntities; ++e)
      for (index_t c = 0; c < 2; ++c) frames_.push_back(env.positions()(env_, e, c));
  }
  /// Positions [T, E, 2] of the recorded frames.
  Tensor<double> positions() const {
    require<ConfigError>(entities_ > 0, "EpisodeRecorder: nothing recorded");
    return Tensor<double>({static_cast<index_t>(frames_.size()) / (2 * entities_), entities_, 2}, frames_);
  }

 private:
  index_t env_;
  index_t entities_ = -1;
  std::vector<double> frames_;
};

/// Static SVG of a recorded episode (trails and final positions) of scenario Env.
template <class Env>
std::string episode_svg(const EpisodeRecorder& rec, viz::SceneOptions opt = {}) {
  if (opt.title.empty()) opt.title = std::string("MPE ") + Env::name();
  if (opt.extent <= 0) opt.extent = 1.3;  // the arena [-1, 1]^2 plus margin, so episodes compare
  return viz::trajectory_svg({viz::TrajectoryLayer{rec.positions()}}, entity_styles<Env>(), opt);
}

/// Animated SVG of a recorded episode.
template <class Env>
std::string animated_episode_svg(const EpisodeRecorder& rec, viz::SceneOptions opt = {}) {
  if (opt.title.empty()) opt.title = std::string("MPE ") + Env::name();
  if (opt.extent <= 0) opt.extent = 1.3;
  return viz::animated_trajectory_svg(viz::TrajectoryLayer{rec.positions()}, entity_styles<Env>(), opt);
}

}  // namespace coordiff::env::mpe
