#pragma once
// A user schedule given as its beta array (e.g. read from a checkpoint or a Python run).
#include <vector>

#include "coordiff/core/tensor.hpp"
#include "coordiff/schedule/table.hpp"

namespace coordiff::schedule {

class FromBetas : public BetaTable {
 public:
  explicit FromBetas(std::vector<double> betas) : BetaTable(std::move(betas), "schedule::FromBetas") {}
  template <class T>
  explicit FromBetas(const Tensor<T>& betas) : BetaTable(to_vector(betas), "schedule::FromBetas") {}

 private:
  template <class T>
  static std::vector<double> to_vector(const Tensor<T>& t) {
    require<ShapeError>(t.rank() == 1, "schedule::FromBetas: expected a 1-D beta array, got ", to_string(t.shape()));
    return std::vector<double>(t.begin(), t.end());
  }
};

}  // namespace coordiff::schedule
