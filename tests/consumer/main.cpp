// A downstream project that finds an installed coordiff with find_package and runs the README example:
// a MADiff-layout multi-agent denoiser, its state dict written and read back as npz, one training step,
// and MASTARS-style generation with the network.
#include <coordiff/coordiff.hpp>

#include <cstdio>
#include <filesystem>

int main() {
  namespace cd = coordiff;
  cd::Rng rng(/*seed=*/0);
  cd::nn::UNetConfig cfg{.horizon = 8, .transition_dim = 6, .dim = 32, .dim_mults = {1, 2, 4}, .returns_condition = true};
  cd::nn::MultiAgentUNet<float> net(cfg, /*n_agents=*/3, rng);
  auto params = cd::nn::parameters_of<float>(net);
  const auto path = std::filesystem::temp_directory_path() / "coordiff_consumer_weights.npz";
  cd::nn::save_state_dict(path, params);
  cd::nn::load_state_dict(params, cd::io::NpzFile::load(path));

  auto x = rng.normal<float>({4, 8, 3, 6});  // [batch, horizon, agents, features]
  cd::Tensor<float> t({4}, 10.0f), returns({4, 3}, 0.9f);
  auto eps = net.forward(x, t, &returns);
  cd::nn::optim::Adam<float> adam(params, cd::nn::optim::AdamOptions{.lr = 2e-4});
  net.backward(eps);  // gradient of 0.5 * |eps|^2
  adam.step();
  if (eps.shape() != x.shape()) return 1;

  namespace dd = cd::diffusion;  // the README's generation example, with a short plan
  auto gen = cd::make_generator(cd::schedule::Cosine(200), std::move(net), cd::mask::AfterSubgoal{},
                                cd::order::LastObsValue{}, cd::filter::AcceptAll{}, cd::guidance::ClassifierFree{1.2},
                                dd::TimestepPlan::strided(200, 4), dd::SamplerOptions{}, /*seed=*/0);
  auto values = rng.uniform<float>({4, 8, 3}, 0.0f, 1.0f);
  auto out = gen.generate({.data = x, .condition = {.value = returns}, .values = values});
  if (out.samples.shape() != x.shape() || out.stats.rounds != 3) return 1;
  std::printf("consumer ok: %lld parameters, eps[0] = %g\n", static_cast<long long>(cd::nn::parameter_count(params)),
              static_cast<double>(eps[0]));
  return 0;
}
