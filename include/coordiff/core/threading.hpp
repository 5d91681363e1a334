#pragma once
// One knob for the CPU backend's parallelism (OpenMP loops and Eigen's GEMM).
#include <Eigen/Core>
#include <omp.h>

#include "coordiff/core/error.hpp"

namespace coordiff {

/// Sets the number of CPU threads used by coordiff's kernels and Eigen. Results do not depend on it.
inline void set_num_threads(int n) {
  require<ConfigError>(n >= 1, "set_num_threads: thread count must be >= 1, got ", n);
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
}
inline int num_threads() { return omp_get_max_threads(); }

}  // namespace coordiff
