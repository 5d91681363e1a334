// The joint baseline (MADiff*: all agents regenerated together after their first step) one level down:
// compose the generator from the model, run it on a batch of dataset windows, and look at the filter's
// verdicts and the actions the inverse dynamics model recovers.
//   joint_baseline [--dataset D.npz] [--model DIR] [--batch B]
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

#include "coordiff/mastars/mastars.hpp"

namespace cd = coordiff;

int main(int argc, char** argv) try {
  std::string dataset = COORDIFF_DATA_DIR "/spread_medium_replay.npz", model_dir = COORDIFF_DATA_DIR "/mastars/spread_medium_replay";
  long B = 16;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--dataset") dataset = argv[i + 1];
    else if (a == "--model") model_dir = argv[i + 1];
    else if (a == "--batch") B = std::strtol(argv[i + 1], nullptr, 10);
    else throw cd::ConfigError("joint_baseline: unknown flag '" + a + "'");
  }
  cd::require<cd::ConfigError>(B >= 1, "joint_baseline: --batch must be >= 1");

  const auto data = cd::data::OfflineDataset<float>::load(dataset);
  auto model = cd::mastars::Model<float>::load(model_dir);
  auto joint = cd::mastars::make_joint_baseline(model);  // a Generator<Cosine, Ref<MultiAgentUNet>, ...>

  // A batch: the first B windows of the dataset (normalised), every agent conditioned on return 1.
  const auto windows = cd::mastars::diffusion_windows(model, data);
  cd::diffusion::Batch<float> batch;
  batch.data = cd::Tensor<float>({B, windows.horizon(), windows.agents(), windows.features()});
  std::copy(windows.x.data(), windows.x.data() + batch.data.size(), batch.data.data());
  batch.condition.value = cd::Tensor<float>({B, windows.agents()}, 1.0f);

  const auto out = joint.generate(batch);
  const auto actions = model.act_norm.unnormalize(model.inverse.actions(out.samples));
  std::cout << "joint baseline: " << out.stats.rounds << " round, " << out.stats.denoiser_calls << " denoiser calls, "
            << out.stats.total_seconds << " s; generated fraction " << out.stats.generated_fraction << ", accepted "
            << out.stats.accepted << " of " << B << "\n";
  for (long b = 0; b < std::min<long>(B, 4); ++b)
    std::cout << "  window " << b << ": " << (out.keep[static_cast<std::size_t>(b)] ? "kept" : out.reason[static_cast<std::size_t>(b)])
              << "; agent 0's first action (" << actions(b, 0, 0, 0) << ", " << actions(b, 0, 0, 1) << ")\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "joint_baseline: " << e.what() << "\n";
  return 1;
}
