#pragma once
// A toy (CBF, return)-conditioned model on double-integrator data, its normalisers fitted and its CBF
// trained (eq. 12), for the tests of what consumes a model's CBF (planning, shields).
#include "coordiff/data/dataset.hpp"
#include "coordiff/mastars/training.hpp"

namespace coordiff::testing {

inline mastars::Model<float> toy_safe_model(const data::OfflineDataset<float>& d, index_t cbf_hidden, index_t cbf_steps) {
  mastars::Config cfg;
  cfg.diffusion.horizon = 4, cfg.diffusion.dim = 16, cfg.diffusion.dim_mults = {1, 2}, cfg.diffusion.groups = 4;
  cfg.diffusion.kernel_size = 3, cfg.diffusion.diffusion_steps = 10, cfg.diffusion.returns_scale = 10;
  cfg.auxiliary.hidden = 16;
  cfg.safety.condition = "cbf_return", cfg.safety.cbf_hidden = cbf_hidden, cfg.safety.cbf_steps = cbf_steps;
  auto m = mastars::Model<float>::create(cfg, d.agents(), d.obs_dim(), d.act_dim());
  m.fit_normalizers(d);
  mastars::train_barrier(m, d);
  return m;
}

}  // namespace coordiff::testing
