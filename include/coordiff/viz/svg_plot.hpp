#pragma once
// Minimal SVG line plots (loss curves, metrics) with no dependencies. Written atomically.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"

namespace coordiff::viz {

struct LineSeries {
  std::string label;
  std::vector<double> x, y;
  std::string color = "#1f77b4";
};

struct PlotOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label;
  bool log_y = false;
  int width = 640, height = 400;
};

namespace detail {
inline std::string fmt_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
inline std::string escape_xml(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '&': r += "&amp;"; break;
      case '"': r += "&quot;"; break;
      default: r += c;
    }
  }
  return r;
}
}  // namespace detail

/// Renders the series as an SVG document (axes with min/max ticks, one polyline per series, legend).
inline std::string line_plot_svg(const std::vector<LineSeries>& series, const PlotOptions& opt) {
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  auto ty = [&](double v) { return opt.log_y ? std::log10(std::max(v, 1e-300)) : v; };
  for (const auto& s : series) {
    require<ShapeError>(s.x.size() == s.y.size(), "line_plot_svg: series '", s.label, "' has ", s.x.size(),
                        " x values and ", s.y.size(), " y values");
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, ty(s.y[i])), ymax = std::max(ymax, ty(s.y[i]));
    }
  }
  if (!(xmin < xmax)) xmin = 0, xmax = 1;
  if (!(ymin < ymax)) ymin -= 0.5, ymax += 0.5;
  const double left = 70, right = 20, top = 40, bottom = 50;
  const double pw = opt.width - left - right, ph = opt.height - top - bottom;
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * pw; };
  auto py = [&](double y) { return top + (1 - (ty(y) - ymin) / (ymax - ymin)) * ph; };
  auto untransform = [&](double v) { return opt.log_y ? std::pow(10.0, v) : v; };
  using detail::fmt_num;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(opt.width) + "\" height=\"" +
                  std::to_string(opt.height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + fmt_num(opt.width / 2.0) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" +
       detail::escape_xml(opt.title) + "</text>\n";
  s += "<rect x=\"" + fmt_num(left) + "\" y=\"" + fmt_num(top) + "\" width=\"" + fmt_num(pw) + "\" height=\"" +
       fmt_num(ph) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int k = 0; k <= 4; ++k) {  // 5 ticks per axis
    const double fx = xmin + (xmax - xmin) * k / 4.0, fy = ymin + (ymax - ymin) * k / 4.0;
    const double X = left + pw * k / 4.0, Y = top + ph * (1 - k / 4.0);
    s += "<text x=\"" + fmt_num(X) + "\" y=\"" + fmt_num(top + ph + 18) + "\" text-anchor=\"middle\">" + fmt_num(fx) +
         "</text>\n";
    s += "<text x=\"" + fmt_num(left - 6) + "\" y=\"" + fmt_num(Y + 4) + "\" text-anchor=\"end\">" +
         fmt_num(untransform(fy)) + "</text>\n";
    s += "<line x1=\"" + fmt_num(left) + "\" x2=\"" + fmt_num(left + pw) + "\" y1=\"" + fmt_num(Y) + "\" y2=\"" +
         fmt_num(Y) + "\" stroke=\"#ddd\"/>\n";
  }
  s += "<text x=\"" + fmt_num(left + pw / 2) + "\" y=\"" + fmt_num(opt.height - 10.0) + "\" text-anchor=\"middle\">" +
       detail::escape_xml(opt.x_label) + "</text>\n";
  s += "<text transform=\"translate(16," + fmt_num(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       detail::escape_xml(opt.y_label + (opt.log_y ? " (log)" : "")) + "</text>\n";
  int row = 0;
  for (const auto& ser : series) {
    s += "<polyline fill=\"none\" stroke=\"" + ser.color + "\" stroke-width=\"1.5\" points=\"";
    for (std::size_t i = 0; i < ser.x.size(); ++i)
      if (std::isfinite(ser.y[i])) s += fmt_num(px(ser.x[i])) + "," + fmt_num(py(ser.y[i])) + " ";
    s += "\"/>\n";
    s += "<text x=\"" + fmt_num(left + pw - 8) + "\" y=\"" + fmt_num(top + 16 + 16.0 * row++) +
         "\" text-anchor=\"end\" fill=\"" + ser.color + "\">" + detail::escape_xml(ser.label) + "</text>\n";
  }
  return s + "</svg>\n";
}

}  // namespace coordiff::viz
