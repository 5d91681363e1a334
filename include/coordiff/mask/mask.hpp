#pragma once
// The MaskStrategy family: which entries of a round are known (kept, pasted in at every step) and
// which are generated. Requirements and a minimal user mask: docs/concepts.md.
#include <concepts>
#include <cstdint>

#include "coordiff/diffusion/batch.hpp"

namespace coordiff::mask {

/// known(batch, round) -> uint8 [B, H, A, F], 1 = known. Entries of agents outside round.agents[b] must be
/// known (a round only generates its own agents); the strategy decides which entries of the round's
/// agents are generated.
template <class M, class T>
concept MaskStrategy = requires(const M& m, const diffusion::Batch<T>& batch, const diffusion::Round& round) {
  { m.known(batch, round) } -> std::same_as<Tensor<std::uint8_t>>;
};

template <class M, class T>
constexpr bool check_mask_strategy() {
  static_assert(requires(const M& m, const diffusion::Batch<T>& batch, const diffusion::Round& round) {
    { m.known(batch, round) } -> std::same_as<Tensor<std::uint8_t>>;
  }, "coordiff MaskStrategy: missing `Tensor<std::uint8_t> known(const diffusion::Batch<T>&, const diffusion::Round&)"
     " const` (see docs/concepts.md#maskstrategy)");
  return true;
}

/// Known flags [B, H, A, F] with every entry known except those for which unknown(b, t, a) holds for an
/// agent a of the round (shared by the shipped strategies).
template <class T, class Pred>
Tensor<std::uint8_t> known_except(const diffusion::Batch<T>& batch, const diffusion::Round& round, Pred unknown) {
  const index_t B = batch.batch_size(), H = batch.horizon(), A = batch.agents(), F = batch.features();
  Tensor<std::uint8_t> known({B, H, A, F}, std::uint8_t(1));
  for (index_t b = 0; b < B; ++b)
    for (index_t a : round.agents[static_cast<std::size_t>(b)])
      for (index_t t = 0; t < H; ++t)
        if (unknown(b, t, a))
          for (index_t f = 0; f < F; ++f) known(b, t, a, f) = 0;
  return known;
}

}  // namespace coordiff::mask
