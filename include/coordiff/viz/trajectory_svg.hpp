#pragma once
// SVG pictures of multi-agent trajectories in the plane: a static scene (one or more layers of trails,
// e.g. original vs generated, with each entity drawn at its last position) and an animated scene
// (SMIL <animate>, plays in any browser). Positions are world coordinates, y up.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/io/atomic_file.hpp"
#include "coordiff/viz/svg_plot.hpp"

namespace coordiff::viz {

struct EntityStyle {
  std::string label;
  double radius = 0.05;  ///< world units (MPE: agents 0.15 in spread, landmarks 0.05)
  std::string fill = "#1f77b4";
  bool trail = true;     ///< draw the path (landmarks: false)
};

/// One set of trajectories: positions [T, E, 2] of the E entities over T steps.
struct TrajectoryLayer {
  Tensor<double> positions;
  bool dashed = false;   ///< e.g. the original data under a generated layer
  double opacity = 1.0;
};

struct SceneOptions {
  std::string title;
  double extent = 0;  ///< half-width of the square view in world units; <= 0: fit the data (+10 %)
  int size = 480;     ///< pixels
  double seconds_per_step = 0.2;  ///< animation speed
};

namespace detail {
struct View {
  double cx = 0, cy = 0, half = 1, px = 480;
  double x(double wx) const { return (wx - cx + half) / (2 * half) * px; }
  double y(double wy) const { return (cy + half - wy) / (2 * half) * px; }
  double r(double wr) const { return wr / (2 * half) * px; }
};

inline void check_layer(const TrajectoryLayer& l, std::size_t entities, const char* who) {
  require<ShapeError>(l.positions.rank() == 3 && l.positions.dim(2) == 2 && l.positions.dim(0) >= 1 &&
                          l.positions.dim(1) == static_cast<index_t>(entities),
                      who, ": positions must be [T >= 1, ", entities, " entities, 2], got ", to_string(l.positions.shape()));
  require_finite(l.positions, std::string(who) + " positions");
}

inline View fit_view(const std::vector<TrajectoryLayer>& layers, const std::vector<EntityStyle>& ents,
                     const SceneOptions& opt) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& l : layers)
    for (index_t i = 0; i < l.positions.size() / 2; ++i) {
      const double r = ents[static_cast<std::size_t>(i % static_cast<index_t>(ents.size()))].radius;
      x0 = std::min(x0, l.positions[2 * i] - r), x1 = std::max(x1, l.positions[2 * i] + r);
      y0 = std::min(y0, l.positions[2 * i + 1] - r), y1 = std::max(y1, l.positions[2 * i + 1] + r);
    }
  View v;
  v.px = opt.size;
  v.cx = (x0 + x1) / 2, v.cy = (y0 + y1) / 2;
  v.half = opt.extent > 0 ? opt.extent : std::max({(x1 - x0) / 2, (y1 - y0) / 2, 1e-6}) * 1.1;
  if (opt.extent > 0) v.cx = v.cy = 0;
  return v;
}

/// One polyline per entity with a trail.
inline void append_trails(std::ostringstream& s, const TrajectoryLayer& l, const std::vector<EntityStyle>& entities,
                          const View& v) {
  const index_t T = l.positions.dim(0);
  for (std::size_t e = 0; e < entities.size(); ++e) {
    const auto& st = entities[e];
    if (!st.trail || T < 2) continue;
    s << "<polyline fill=\"none\" stroke=\"" << escape_xml(st.fill) << "\" stroke-width=\"2\" opacity=\""
      << fmt_num(l.opacity) << "\"" << (l.dashed ? " stroke-dasharray=\"5,4\"" : "") << " points=\"";
    for (index_t t = 0; t < T; ++t)
      s << (t ? " " : "") << fmt_num(v.x(l.positions(t, static_cast<index_t>(e), 0))) << ","
        << fmt_num(v.y(l.positions(t, static_cast<index_t>(e), 1)));
    s << "\"/>\n";
  }
}

inline std::string header(const SceneOptions& opt) {
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << opt.size << "\" height=\"" << opt.size + 24
    << "\" viewBox=\"0 -24 " << opt.size << " " << opt.size + 24 << "\">\n"
    << "<rect x=\"0\" y=\"0\" width=\"" << opt.size << "\" height=\"" << opt.size << "\" fill=\"#fafafa\" stroke=\"#ccc\"/>\n";
  if (!opt.title.empty()) s << "<text x=\"4\" y=\"-7\" font-family=\"sans-serif\" font-size=\"14\">" << escape_xml(opt.title) << "</text>\n";
  return s.str();
}
}  // namespace detail

/// Static scene: every layer's trails, each entity as a circle at its last position in the top layer.
inline std::string trajectory_svg(const std::vector<TrajectoryLayer>& layers, const std::vector<EntityStyle>& entities,
                                  const SceneOptions& opt = {}) {
  require<ConfigError>(!layers.empty() && !entities.empty(), "trajectory_svg: needs at least one layer and one entity");
  for (const auto& l : layers) detail::check_layer(l, entities.size(), "trajectory_svg");
  const detail::View v = detail::fit_view(layers, entities, opt);
  std::ostringstream s;
  s << detail::header(opt);
  for (const auto& l : layers) detail::append_trails(s, l, entities, v);
  const auto& top = layers.back().positions;
  const index_t last = top.dim(0) - 1;
  for (std::size_t e = 0; e < entities.size(); ++e) {
    const auto& st = entities[e];
    const auto ei = static_cast<index_t>(e);
    s << "<circle cx=\"" << detail::fmt_num(v.x(top(last, ei, 0))) << "\" cy=\"" << detail::fmt_num(v.y(top(last, ei, 1)))
      << "\" r=\"" << detail::fmt_num(v.r(st.radius)) << "\" fill=\"" << detail::escape_xml(st.fill)
      << "\" fill-opacity=\"0.6\" stroke=\"#333\"><title>" << detail::escape_xml(st.label) << "</title></circle>\n";
  }
  s << "</svg>\n";
  return s.str();
}

/// Panels (each an <svg> from trajectory_svg, `size` pixels wide) laid out in a grid of `columns`
/// columns, as one SVG document.
inline std::string svg_grid(const std::vector<std::string>& panels, int columns, int size, const std::string& title = "") {
  require<ConfigError>(!panels.empty() && columns >= 1 && size >= 1, "svg_grid: needs panels, columns >= 1, size >= 1");
  const std::string open = "<svg xmlns=\"http://www.w3.org/2000/svg\" ";
  const int rows = (static_cast<int>(panels.size()) + columns - 1) / columns, cell_h = size + 24, top = title.empty() ? 0 : 28;
  const int width = std::min<int>(columns, static_cast<int>(panels.size())) * (size + 8);
  std::ostringstream s;
  s << open << "width=\"" << width << "\" height=\"" << top + rows * (cell_h + 8) << "\">\n";
  if (!title.empty())
    s << "<text x=\"4\" y=\"20\" font-family=\"sans-serif\" font-size=\"16\">" << detail::escape_xml(title) << "</text>\n";
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const std::string& p = panels[i];
    require<ConfigError>(p.rfind(open, 0) == 0, "svg_grid: panel ", i, " is not an <svg> document");
    const int x = static_cast<int>(i % static_cast<std::size_t>(columns)) * (size + 8);
    const int y = top + static_cast<int>(i / static_cast<std::size_t>(columns)) * (cell_h + 8);
    s << "<svg x=\"" << x << "\" y=\"" << y << "\" " << p.substr(open.size());
  }
  s << "</svg>\n";
  return s.str();
}

/// Animated scene of one trajectory set: each entity moves along its path, one step per seconds_per_step,
/// looping; trails are drawn faintly underneath.
inline std::string animated_trajectory_svg(const TrajectoryLayer& layer, const std::vector<EntityStyle>& entities,
                                           const SceneOptions& opt = {}) {
  require<ConfigError>(!entities.empty() && opt.seconds_per_step > 0, "animated_trajectory_svg: needs entities and "
                       "seconds_per_step > 0");
  detail::check_layer(layer, entities.size(), "animated_trajectory_svg");
  const detail::View v = detail::fit_view({layer}, entities, opt);
  const index_t T = layer.positions.dim(0);
  std::ostringstream s;
  TrajectoryLayer faint = layer;
  faint.opacity = 0.25;
  s << detail::header(opt);
  detail::append_trails(s, faint, entities, v);
  const std::string dur = detail::fmt_num(opt.seconds_per_step * static_cast<double>(T)) + "s";
  for (std::size_t e = 0; e < entities.size(); ++e) {
    const auto ei = static_cast<index_t>(e);
    const auto& st = entities[e];
    std::string xs, ys;
    for (index_t t = 0; t < T; ++t) {
      xs += (t ? ";" : "") + detail::fmt_num(v.x(layer.positions(t, ei, 0)));
      ys += (t ? ";" : "") + detail::fmt_num(v.y(layer.positions(t, ei, 1)));
    }
    s << "<circle cx=\"" << detail::fmt_num(v.x(layer.positions(0, ei, 0))) << "\" cy=\""
      << detail::fmt_num(v.y(layer.positions(0, ei, 1))) << "\" r=\"" << detail::fmt_num(v.r(st.radius)) << "\" fill=\""
      << detail::escape_xml(st.fill) << "\" fill-opacity=\"0.7\" stroke=\"#333\"><title>" << detail::escape_xml(st.label)
      << "</title>\n  <animate attributeName=\"cx\" calcMode=\"discrete\" dur=\"" << dur << "\" repeatCount=\"indefinite\" values=\""
      << xs << "\"/>\n  <animate attributeName=\"cy\" calcMode=\"discrete\" dur=\"" << dur
      << "\" repeatCount=\"indefinite\" values=\"" << ys << "\"/>\n</circle>\n";
  }
  s << "</svg>\n";
  return s.str();
}

/// Writes an SVG document atomically.
inline void save_svg(const std::filesystem::path& path, const std::string& svg) {
  io::write_file_atomic(path, svg.data(), svg.size());
}

}  // namespace coordiff::viz
