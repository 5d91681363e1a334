// MASTARS data augmentation (paper 000, Algorithm 1) in library calls: load a dataset, load the trained
// models (or train them: --train), augment with the last-observation-value order, save the result.
//   mastars [--dataset D.npz] [--model DIR] [--train] [--num N] [--out AUG.npz]
// Defaults: the bundled Spread medium-replay data and models.
#include <cstdlib>
#include <iostream>
#include <string>

#include "coordiff/mastars/mastars.hpp"

namespace cd = coordiff;

int main(int argc, char** argv) try {
  std::string dataset = COORDIFF_DATA_DIR "/spread_medium_replay.npz", model_dir = COORDIFF_DATA_DIR "/mastars/spread_medium_replay";
  std::string out = "mastars_aug.npz";
  long num = 200;
  bool train = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--train") train = true;
    else if (a == "--dataset" && has_value) dataset = argv[++i];
    else if (a == "--model" && has_value) model_dir = argv[++i];
    else if (a == "--out" && has_value) out = argv[++i];
    else if (a == "--num" && has_value) num = std::strtol(argv[++i], nullptr, 10);
    else throw cd::ConfigError("mastars: unknown or incomplete flag '" + a + "'");
  }
  cd::require<cd::ConfigError>(num >= 1, "mastars: --num must be >= 1");

  const auto data = cd::data::OfflineDataset<float>::load(dataset);
  cd::mastars::Model<float> model;
  if (train) {  // the bundled model's settings, retrained from scratch on `dataset`
    const cd::mastars::Config config = cd::mastars::load_config(model_dir + "/config.json");
    model = cd::mastars::Model<float>::create(config, data.agents(), data.obs_dim(), data.act_dim());
    model.fit_normalizers(data);
    cd::mastars::train_diffusion(model, data, &std::cerr);
    cd::mastars::train_auxiliary(model, data, &std::cerr);
  } else {
    model = cd::mastars::Model<float>::load(model_dir);
  }

  model.config.augment.num = num;
  const auto augmented = cd::mastars::augment(model, data, cd::mastars::Method::Lov, &std::cerr);
  augmented.dataset.save(out);
  const auto& r = augmented.report;
  std::cout << "MASTARS-LOV on " << dataset << ": accepted " << r["windows_accepted"] << " of " << r["windows_tried"]
            << " windows (epsilon " << r["epsilon"] << "), generated fraction " << r["generated_fraction"]
            << ", DIRE original " << r["dire"]["original"] << " / generated " << r["dire"]["generated"] << "\nwrote "
            << out << " with " << augmented.dataset.episodes() << " episodes\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mastars: " << e.what() << "\n";
  return 1;
}
