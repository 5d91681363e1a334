#pragma once
// Training windows cut from an offline dataset as MADiff's SequenceDataset does: a window of H steps
// starts at every step of an episode (with padding: at every start < length - 1, the future past the
// episode's end filled by repeating its last step; without: starts 0 .. length - H), and each agent's
// condition is its discounted reward-to-go from the window start to the episode's end, divided by
// returns_scale (MADiff: gamma 0.99; scale 500-700 for MPE).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "coordiff/data/dataset.hpp"

namespace coordiff::data {

struct WindowOptions {
  index_t horizon = 8;
  bool pad = true;
  double discount = 0.99;
  double returns_scale = 1.0;
};

template <class T>
struct Windows {
  Tensor<T> observations;         ///< [N, H, A, O]
  Tensor<T> returns;              ///< [N, A], discounted reward-to-go / returns_scale
  Tensor<std::int64_t> origin;    ///< [N, 2]: (episode, start step)
};

template <class T>
Windows<T> make_windows(const OfflineDataset<T>& d, const WindowOptions& opt) {
  require<ConfigError>(opt.horizon >= 1, "make_windows: horizon must be >= 1, got ", opt.horizon);
  require<ConfigError>(opt.discount > 0 && opt.discount <= 1 && opt.returns_scale > 0, "make_windows: need discount in (0, 1]"
                       " and returns_scale > 0, got ", opt.discount, " and ", opt.returns_scale);
  const index_t E = d.episodes(), A = d.agents(), O = d.obs_dim(), H = opt.horizon;
  std::vector<std::pair<index_t, index_t>> starts;
  std::vector<index_t> lengths(static_cast<std::size_t>(E));
  for (index_t e = 0; e < E; ++e) {
    const index_t len = lengths[static_cast<std::size_t>(e)] = d.episode_length(e);
    const index_t last_start = opt.pad ? len - 2 : len - H;
    for (index_t s = 0; s <= last_start; ++s) starts.emplace_back(e, s);
    if (opt.pad && len == 1) starts.emplace_back(e, 0);  // a one-step episode still yields its window
  }
  const index_t N = static_cast<index_t>(starts.size());
  require<ConfigError>(N > 0, "make_windows: no window of ", H, " steps fits (episodes of ", d.steps(),
                       " steps, padding ", opt.pad ? "on" : "off", ")");
  Windows<T> w{Tensor<T>({N, H, A, O}), Tensor<T>({N, A}), Tensor<std::int64_t>({N, 2})};
  for (index_t n = 0; n < N; ++n) {
    const auto [e, s] = starts[static_cast<std::size_t>(n)];
    const index_t len = lengths[static_cast<std::size_t>(e)];
    w.origin(n, 0) = e;
    w.origin(n, 1) = s;
    for (index_t h = 0; h < H; ++h) {
      const index_t t = std::min(s + h, len - 1);  // repeat the last valid step past the end
      for (index_t a = 0; a < A; ++a)
        for (index_t o = 0; o < O; ++o) w.observations(n, h, a, o) = d.observations(e, t, a, o);
    }
    for (index_t a = 0; a < A; ++a) {
      double g = 0, f = 1;
      for (index_t t = s; t < len; ++t, f *= opt.discount) g += f * static_cast<double>(d.rewards(e, t, a));
      w.returns(n, a) = static_cast<T>(g / opt.returns_scale);
    }
  }
  return w;
}

}  // namespace coordiff::data
