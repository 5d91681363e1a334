// Host side of bench_cuda: reads the PyTorch peer's npz (kept out of the CUDA translation unit).
#include "bench_cuda_weights.hpp"

#include "coordiff/io/npz.hpp"

namespace coordiff::bench {

NpzContents read_npz(const std::string& path) {
  const auto npz = io::NpzFile::load(path);
  NpzContents out;
  for (const auto& key : npz.keys()) out.emplace_back(key, npz.tensor<float>(key));
  return out;
}

}  // namespace coordiff::bench
