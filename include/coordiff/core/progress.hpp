#pragma once
// A one-line text progress bar for long command-line jobs: "\r<label> [#####-----] done/total".
#include <algorithm>
#include <ostream>
#include <string>

#include "coordiff/core/tensor.hpp"

namespace coordiff {

/// Redraws the bar in place; ends the line once done == total.
inline void draw_progress(std::ostream& out, const std::string& label, index_t done, index_t total, int width = 30) {
  const index_t shown = std::clamp<index_t>(done, 0, std::max<index_t>(total, 1));
  const int filled = total > 0 ? static_cast<int>(width * shown / total) : width;
  out << '\r' << label << " [" << std::string(static_cast<std::size_t>(filled), '#')
      << std::string(static_cast<std::size_t>(width - filled), '-') << "] " << done << '/' << total;
  if (done >= total) out << '\n';
  out << std::flush;
}

}  // namespace coordiff
