#pragma once
// Everything MASTARS generates with, trained on one dataset: the observation and action normalisers
// (MADiff's empirical-CDF map to [-1, 1], agents pooled), the return-conditioned MultiAgentUNet over
// windows of normalised observations (EMA weights), and the auxiliary models in normalised space
// (inverse dynamics, transition, reward, value), and the decentralised CBF of paper 001 over normalised
// observations (trained when the dataset has costs; it conditions, guides and filters safe generation).
//
// A model directory holds config.json, normalizers.npz, diffusion.npz (the EMA weights under MADiff's
// state_dict names), auxiliary.npz ("inverse.*", "transition.*", "reward.*", "value.*"), sizes.json and,
// barrier.npz ("barrier.*"), after training, report.json. Every file is written atomically.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "coordiff/auxiliary/auxiliary.hpp"
#include "coordiff/core/philox.hpp"
#include "coordiff/data/dataset.hpp"
#include "coordiff/data/normalizer.hpp"
#include "coordiff/io/atomic_file.hpp"
#include "coordiff/mastars/config.hpp"
#include "coordiff/nn/multi_agent_unet.hpp"
#include "coordiff/nn/state_dict.hpp"
#include "coordiff/safety/barrier.hpp"
#include "coordiff/safety/cbf_training.hpp"
#include "coordiff/safety/expectile_value.hpp"

namespace coordiff::mastars {

/// Points kept per feature by the CDF normalisers (bounds the model size; see CdfNormalizer::fit).
inline constexpr index_t kNormalizerPoints = 2048;

template <class T = float>
struct Model {
  Config config;
  index_t agents = 0, obs_dim = 0, act_dim = 0;
  data::CdfNormalizer obs_norm, act_norm;
  nn::MultiAgentUNet<T> net;
  auxiliary::InverseDynamics<T> inverse;
  auxiliary::TransitionModel<T> transition;
  auxiliary::RewardModel<T> reward;
  auxiliary::ValueModel<T> value;
  safety::MlpBarrier<T> barrier;
  safety::ExpectileValue<T> return_value;  ///< V_r / Q_r of eqs. 15-16 (safety.return_value "expectile")
  nlohmann::json report = nlohmann::json::object();

  /// A freshly initialised model for A agents with O-dim observations and U-dim actions.
  static Model create(const Config& cfg, index_t A, index_t O, index_t U) {
    validate(cfg);
    require<ConfigError>(A >= 1 && O >= 1 && U >= 1, "mastars::Model: agents, obs_dim and act_dim must be >= 1");
    Model m;
    m.config = cfg, m.agents = A, m.obs_dim = O, m.act_dim = U;
    Rng rng(cfg.diffusion.seed, 0);
    m.net = nn::MultiAgentUNet<T>(unet_config(cfg, O), A, rng);
    const auto& a = cfg.auxiliary;
    m.inverse = auxiliary::InverseDynamics<T>(O, U, a.hidden, a.seed + 1);
    m.transition = auxiliary::TransitionModel<T>(O, U, a.hidden, a.seed + 2);
    m.reward = auxiliary::RewardModel<T>(A, O, U, a.hidden, a.seed + 3);
    m.value = auxiliary::ValueModel<T>(O, a.hidden, a.seed + 4);
    Rng barrier_rng(cfg.safety.seed, 0x43424600u);
    m.barrier = safety::MlpBarrier<T>(O, cfg.safety.cbf_hidden, barrier_rng);
    Rng value_rng(cfg.safety.seed, 0x56520000u);  // "VR"
    m.return_value = safety::ExpectileValue<T>(O, U, m.expectile_options(), value_rng);
    return m;
  }

  static nn::UNetConfig unet_config(const Config& cfg, index_t O) {
    nn::UNetConfig u;
    u.horizon = cfg.diffusion.horizon;
    u.transition_dim = O;
    u.dim = cfg.diffusion.dim;
    u.dim_mults = cfg.diffusion.dim_mults;
    u.kernel_size = cfg.diffusion.kernel_size;
    u.groups = cfg.diffusion.groups;
    u.returns_condition = true;
    u.condition_dim = cfg.safety.conditions_on_cbf() ? 2 : 1;
    u.validate(/*with_agent_attention=*/true);
    return u;
  }

  /// Whether the CBF has been trained (its report is stored under report["cbf"]).
  bool has_cbf() const { return report.contains("cbf"); }

  /// Whether V_r has been trained (its report is stored under report["return_value"]).
  bool has_return_value() const { return report.contains("return_value"); }

  /// The settings of V_r / Q_r from the config: in condition units (rewards / returns_scale), the
  /// diffusion discount.
  safety::ExpectileOptions expectile_options() const {
    safety::ExpectileOptions o;
    o.tau = config.safety.expectile_tau, o.gamma = config.diffusion.discount, o.steps = config.safety.expectile_steps;
    o.hidden = config.safety.expectile_hidden, o.seed = config.safety.seed + 5;
    return o;
  }

  /// The condition value of B windows in which every agent asks for return `target_return` and, in models
  /// conditioned on (CBF satisfaction, return) (eq. 10), CBF satisfaction `target_cbf`: [B, A] or [B, A, 2].
  Tensor<T> condition_value(index_t B, double target_return, double target_cbf = 1.0) const {
    if (!config.safety.conditions_on_cbf()) return Tensor<T>({B, agents}, static_cast<T>(target_return));
    Tensor<T> v({B, agents, 2});
    for (index_t i = 0; i < B * agents; ++i) v[2 * i] = static_cast<T>(target_cbf), v[2 * i + 1] = static_cast<T>(target_return);
    return v;
  }

  /// The CBF condition's settings (eq. 12's margin, class-K slope, forward-difference step) from the config.
  safety::CbfLossOptions cbf_options() const { return {config.safety.margin, config.safety.alpha, config.safety.dt}; }

  /// Fits both normalisers on a dataset (observations and actions, agents pooled).
  void fit_normalizers(const data::OfflineDataset<T>& d) {
    require_compatible(d, "fit_normalizers");
    obs_norm = data::CdfNormalizer::fit(d.observations, kNormalizerPoints);
    act_norm = data::CdfNormalizer::fit(d.actions, kNormalizerPoints);
  }

  /// Raw environment observations [..., obs_dim] (double, as environments step) mapped to [-1, 1] in T.
  Tensor<T> normalize_observations(const Tensor<double>& raw) const {
    Tensor<T> x(raw.shape());
    for (index_t k = 0; k < raw.size(); ++k) x[k] = static_cast<T>(raw[k]);
    return obs_norm.normalize(x);
  }

  /// The dataset with observations, next observations and actions mapped to [-1, 1].
  data::OfflineDataset<T> normalized(const data::OfflineDataset<T>& d) const {
    require_compatible(d, "normalized");
    data::OfflineDataset<T> n = d;
    n.observations = obs_norm.normalize(d.observations);
    if (!d.next_observations.empty()) n.next_observations = obs_norm.normalize(d.next_observations);
    n.actions = act_norm.normalize(d.actions);
    return n;
  }

  void require_compatible(const data::OfflineDataset<T>& d, const char* who) const {
    require<ShapeError>(d.agents() == agents && d.obs_dim() == obs_dim && d.act_dim() == act_dim, "mastars::Model::", who,
                        ": the model is for ", agents, " agents, observations ", obs_dim, ", actions ", act_dim,
                        "; the dataset has ", d.agents(), ", ", d.obs_dim(), ", ", d.act_dim());
  }

  void save(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    save_config(config, dir / "config.json");
    write_json_file(dir / "sizes.json", {{"agents", agents}, {"obs_dim", obs_dim}, {"act_dim", act_dim}});
    io::NpzWriter norms;
    obs_norm.save(norms, "obs.");
    act_norm.save(norms, "act.");
    norms.save(dir / "normalizers.npz");
    nn::save_state_dict(dir / "diffusion.npz", nn::parameters_of<T>(net));
    io::NpzWriter aux;
    nn::add_state_dict(aux, inverse.parameters(), "inverse.");
    nn::add_state_dict(aux, transition.parameters(), "transition.");
    nn::add_state_dict(aux, reward.parameters(), "reward.");
    nn::add_state_dict(aux, value.parameters(), "value.");
    aux.save(dir / "auxiliary.npz");
    io::NpzWriter cbf;
    nn::add_state_dict(cbf, nn::parameters_of<T>(barrier), "barrier.");
    cbf.save(dir / "barrier.npz");
    if (has_return_value()) nn::save_state_dict(dir / "return_value.npz", nn::parameters_of<T>(return_value, "return_value"));
    write_json_file(dir / "report.json", report);
  }

  /// Loads a model directory; errors name the file and what is missing or mismatched.
  static Model load(const std::filesystem::path& dir) {
    require<IoError>(std::filesystem::is_directory(dir), dir.string(), ": not a model directory");
    const Config cfg = load_config(dir / "config.json");
    const nlohmann::json sizes = read_json_file(dir / "sizes.json");
    const auto size = [&](const char* k) {
      require<FormatError>(sizes.contains(k) && sizes.at(k).is_number_integer(), (dir / "sizes.json").string(), ": no integer '",
                           k, "'");
      return sizes.at(k).get<index_t>();
    };
    Model m = create(cfg, size("agents"), size("obs_dim"), size("act_dim"));
    const auto norms = io::NpzFile::load(dir / "normalizers.npz");
    m.obs_norm = data::CdfNormalizer::load(norms, "obs.");
    m.act_norm = data::CdfNormalizer::load(norms, "act.");
    require<FormatError>(m.obs_norm.features() == m.obs_dim && m.act_norm.features() == m.act_dim,
                         (dir / "normalizers.npz").string(), ": normalisers do not match the model sizes");
    nn::load_state_dict(nn::parameters_of<T>(m.net), io::NpzFile::load(dir / "diffusion.npz"), "", true, true);
    const auto aux = io::NpzFile::load(dir / "auxiliary.npz");
    nn::load_state_dict(m.inverse.parameters(), aux, "inverse.", false, true);
    nn::load_state_dict(m.transition.parameters(), aux, "transition.", false, true);
    nn::load_state_dict(m.reward.parameters(), aux, "reward.", false, true);
    nn::load_state_dict(m.value.parameters(), aux, "value.", false, true);
    // Models saved before the CBF existed have no barrier.npz; they keep the untrained one (has_cbf false).
    if (std::filesystem::exists(dir / "barrier.npz"))
      nn::load_state_dict(nn::parameters_of<T>(m.barrier), io::NpzFile::load(dir / "barrier.npz"), "barrier.", false, true);
    if (std::filesystem::exists(dir / "report.json")) m.report = read_json_file(dir / "report.json");
    if (m.has_return_value()) {
      require<IoError>(std::filesystem::exists(dir / "return_value.npz"), (dir / "return_value.npz").string(),
                       ": missing (the report says V_r was trained)");
      nn::load_state_dict(nn::parameters_of<T>(m.return_value, "return_value"), io::NpzFile::load(dir / "return_value.npz"), "",
                          true, true);
    }
    return m;
  }
};

}  // namespace coordiff::mastars
