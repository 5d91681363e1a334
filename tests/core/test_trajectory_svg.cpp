// Trajectory SVGs: geometry (world -> pixel), layers, styles, animation frames, escaping and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "coordiff/viz/trajectory_svg.hpp"
#include "support/scratch.hpp"

using namespace coordiff;

namespace {
std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = 0; (p = s.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}
/// T = 3 steps of 3 entities: agent 0 moves from (0,0) to (1,1), agent 1 from (-1,0) to (-1,-1), a fixed landmark.
Tensor<double> positions() {
  return Tensor<double>({3, 3, 2}, {0, 0, -1, 0, 0.5, 0.5,  //
                                    0.5, 0.5, -1, -0.5, 0.5, 0.5,  //
                                    1, 1, -1, -1, 0.5, 0.5});
}
std::vector<viz::EntityStyle> styles() {
  return {{"agent <0> & co", 0.15, "#d62728", true}, {"agent 1", 0.15, "#1f77b4", true}, {"landmark", 0.05, "#2ca02c", false}};
}
}  // namespace

TEST_CASE("trajectory_svg: layers of trails, entities at their last position, world-to-pixel geometry") {
  viz::SceneOptions opt;
  opt.extent = 1.0;  // view [-1, 1]^2 on 400 px: 200 px per unit, y up
  opt.size = 400;
  opt.title = "original vs generated";
  viz::TrajectoryLayer original{positions(), true, 0.5}, generated{positions(), false, 1.0};
  const std::string svg = viz::trajectory_svg({original, generated}, styles(), opt);
  CHECK(count(svg, "<polyline") == 4);  // 2 layers x 2 entities with trails
  CHECK(count(svg, "stroke-dasharray") == 2);
  CHECK(count(svg, "<circle") == 3);
  CHECK(svg.find("points=\"200,200 300,100 400,0\"") != std::string::npos);  // agent 0: (0,0) (0.5,0.5) (1,1)
  CHECK(svg.find("cx=\"400\" cy=\"0\" r=\"30\"") != std::string::npos);      // last position, radius 0.15 -> 30 px
  CHECK(svg.find("r=\"10\"") != std::string::npos);                          // landmark radius 0.05
  CHECK(svg.find("agent &lt;0&gt; &amp; co") != std::string::npos);
  CHECK(count(svg, "<svg") == 1);
  CHECK(svg.rfind("</svg>") != std::string::npos);
  // Fitted view: every circle stays inside the picture.
  const std::string fitted = viz::trajectory_svg({generated}, styles());
  CHECK(fitted.find("cx=\"-") == std::string::npos);
}

TEST_CASE("animated_trajectory_svg: one frame per step for every entity, looping") {
  viz::SceneOptions opt;
  opt.extent = 1.0;
  opt.size = 400;
  opt.seconds_per_step = 0.5;
  const std::string svg = viz::animated_trajectory_svg({positions(), false, 1.0}, styles(), opt);
  CHECK(count(svg, "<animate ") == 6);  // cx and cy of 3 entities
  CHECK(count(svg, "dur=\"1.5s\"") == 6);
  CHECK(svg.find("values=\"200;300;400\"") != std::string::npos);  // agent 0's x frames
  CHECK(svg.find("values=\"200;100;0\"") != std::string::npos);    // agent 0's y frames
  CHECK(count(svg, "<polyline") == 2);                            // faint trails
}

TEST_CASE("trajectory SVGs: bad shapes and NaN positions are errors, files are written whole") {
  CHECK_THROWS_AS(viz::trajectory_svg({{Tensor<double>({3, 2, 2}), false, 1.0}}, styles()), ShapeError);
  CHECK_THROWS_AS(viz::animated_trajectory_svg({Tensor<double>({3, 3, 3}), false, 1.0}, styles()), ShapeError);
  auto p = positions();
  p(1, 1, 0) = std::nan("");
  CHECK_THROWS_AS(viz::trajectory_svg({{p, false, 1.0}}, styles()), NumericError);
  CHECK_THROWS_AS(viz::trajectory_svg({}, styles()), ConfigError);
  const auto dir = testing::scratch_dir("trajectory_svg");
  const std::string svg = viz::trajectory_svg({{positions(), false, 1.0}}, styles());
  viz::save_svg(dir / "scene.svg", svg);
  std::ifstream in(dir / "scene.svg");
  std::stringstream read;
  read << in.rdbuf();
  CHECK(read.str() == svg);
}
