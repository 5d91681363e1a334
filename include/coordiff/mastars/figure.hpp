#pragma once
// The paper-1-style figure of an augmentation: for a few accepted windows, each agent's original path
// (dashed) under its generated path (solid); in spread also the three landmarks. MPE observations hold
// an agent's position at entries 2 and 3 and, in spread, the landmark offsets at entries 4..9.
#include <string>
#include <vector>

#include "coordiff/mastars/augment.hpp"
#include "coordiff/viz/trajectory_svg.hpp"

namespace coordiff::mastars {

inline std::string augmentation_figure(const Augmentation& a, const std::string& env, index_t count = 4) {
  const index_t N = a.original.dim(0), H = a.original.dim(1), A = a.original.dim(2);
  require<ShapeError>(a.original.dim(3) >= 4, "augmentation_figure: observations need positions at entries 2 and 3");
  const bool landmarks = env == "spread" && a.original.dim(3) >= 10;
  const char* colours[] = {"#2ca02c", "#d62728", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b"};
  std::vector<viz::EntityStyle> entities;
  for (index_t i = 0; i < A; ++i)
    entities.push_back({"agent " + std::to_string(i), env == "spread" ? 0.15 : 0.075, colours[i % 6], true});
  if (landmarks)
    for (int l = 0; l < 3; ++l) entities.push_back({"landmark " + std::to_string(l), 0.05, "#555555", false});
  const auto E = static_cast<index_t>(entities.size());
  std::vector<std::string> panels;
  for (index_t n = 0; n < N && static_cast<index_t>(panels.size()) < count; ++n) {
    if (!a.accepted[static_cast<std::size_t>(n)]) continue;
    viz::TrajectoryLayer original{Tensor<double>({H, E, 2}), true, 0.5}, generated{Tensor<double>({H, E, 2}), false, 1.0};
    for (index_t t = 0; t < H; ++t) {
      for (index_t i = 0; i < A; ++i)
        for (int c = 0; c < 2; ++c) {
          original.positions(t, i, c) = a.original(n, t, i, 2 + c);
          generated.positions(t, i, c) = a.generated(n, t, i, 2 + c);
        }
      if (landmarks)  // landmark = agent 0's position + its offset, at the window's first step
        for (index_t l = 0; l < 3; ++l)
          for (int c = 0; c < 2; ++c)
            original.positions(t, A + l, c) = generated.positions(t, A + l, c) =
                a.original(n, 0, 0, 2 + c) + a.original(n, 0, 0, 4 + 2 * l + c);
    }
    viz::SceneOptions opt;
    opt.title = "window " + std::to_string(n) + ": original (dashed) vs generated";
    opt.size = 320;
    panels.push_back(viz::trajectory_svg({original, generated}, entities, opt));
  }
  require<ConfigError>(!panels.empty(), "augmentation_figure: no accepted window to draw");
  return viz::svg_grid(panels, 2, 320, "coordiff augment (" + a.report.value("method", std::string("?")) + ")");
}

}  // namespace coordiff::mastars
