#pragma once
// Settings of the MASTARS pipeline (diffusion model, auxiliary models, augmentation) and their JSON form.
// Defaults are the published ones (MASTARS configs/mpe, paper 000 appendix D; MADiff's MPE specs) unless
// marked; docs/mastars.md lists every key. Reading a config is strict: an unknown key or a value of the
// wrong type is a ConfigError naming the key, so a typo cannot silently fall back to a default.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordiff/core/error.hpp"
#include "coordiff/core/tensor.hpp"
#include "coordiff/io/json_file.hpp"

namespace coordiff::mastars {

struct DiffusionConfig {
  index_t horizon = 8;                        ///< H, steps per window (MASTARS: 8)
  index_t diffusion_steps = 200;              ///< K (cosine schedule)
  index_t dim = 128;                          ///< U-Net base channels (MADiff: 128)
  std::vector<index_t> dim_mults{1, 4, 8};
  index_t kernel_size = 5;
  index_t groups = 8;
  double returns_scale = 500;                 ///< condition = discounted return-to-go / returns_scale (spread 500, tag/world 600)
  double discount = 0.99;
  double condition_dropout = 0.25;            ///< classifier-free training
  double guidance_weight = 1.2;               ///< CFG weight w
  index_t train_steps = 100000;
  index_t batch_size = 32;
  index_t grad_accumulate = 2;
  double lr = 2e-4;
  double ema_decay = 0.995;
  index_t ema_every = 10;
  index_t ema_start = 2000;
  std::uint64_t seed = 0;
};

struct AuxiliaryConfig {
  index_t hidden = 256;  ///< two-layer MLPs of 256 (paper appendix D)
  index_t steps = 20000;
  index_t batch_size = 256;
  double lr = 1e-3;
  double heldout_fraction = 0.1;
  double gamma = 0.99;  ///< value model discount
  double tau = 0.005;   ///< value model target rate
  std::uint64_t seed = 0;
};

struct AugmentConfig {
  index_t num = 1000;            ///< generated windows to try (paper: 1,000 trajectories)
  index_t batch_size = 256;      ///< windows per generation batch (official code: 256)
  double epsilon = 0.01;         ///< dynamics-consistency threshold (official code: adapt_threshold 0.01)
  double target_return = 1.0;    ///< condition of every agent (official code: ones, the top normalised return)
  index_t sampling_steps = 0;    ///< reverse steps per inpainting pass; 0 = all K (official code), fewer = strided
  index_t resample_jump = 1;     ///< RePaint jump length; 1 with count 1 = no resampling (official code)
  index_t resample_count = 1;
  index_t dire_steps = 50;       ///< DDIM steps of the DIRE inversion (report only)
  bool cbf_filter = false;       ///< safe MASTARS: also keep only windows that satisfy the model's CBF (paper 001)
  std::uint64_t seed = 0;
};

/// Paper 001: the decentralised CBF trained with the model (whenever the dataset has costs) and what the
/// diffusion model is conditioned on.
struct SafetyConfig {
  std::string condition = "return";  ///< "return": y = return (MADiff); "cbf_return": y = (CBF satisfaction, return), eq. 10
  std::string cbf_label = "barrier"; ///< a window's CBF satisfaction: "barrier" (eq. 8 >= 0 with the learned CBF) or "cost" (no cost in it)
  double cost_penalty = 0.0;         ///< r_p of eq. 13, subtracted from an agent's reward at every step with a cost
  index_t cbf_hidden = 64;           ///< the CBF MLP's hidden width
  index_t cbf_steps = 4000;
  index_t cbf_batch_size = 512;
  double cbf_lr = 1e-3;
  double margin = 0.02;              ///< gamma of eq. 12
  double alpha = 1.0;                ///< linear class-K slope
  double dt = 0.1;                   ///< time between steps (the forward difference of h)
  double heldout_fraction = 0.1;     ///< the last episodes, for the CBF's held-out report
  /// The return part of the condition: "return_to_go" (the discounted return-to-go of eq. 13's penalised
  /// rewards) or "expectile" (the window's H - 1 penalised rewards, discounted, plus gamma^(H-1) V_r at its
  /// last step, V_r the tau-expectile value of eqs. 15-16 trained on the same rewards).
  std::string return_value = "return_to_go";
  double expectile_tau = 0.7;
  index_t expectile_steps = 5000;
  index_t expectile_hidden = 128;
  std::uint64_t seed = 0;
  bool conditions_on_cbf() const { return condition == "cbf_return"; }
  bool expectile_return() const { return return_value == "expectile"; }
};

struct Config {
  DiffusionConfig diffusion;
  AuxiliaryConfig auxiliary;
  AugmentConfig augment;
  SafetyConfig safety;
};

namespace detail {
/// Reads the keys of object `j` into the fields named in `read`; `where` prefixes error messages.
class JsonReader {
 public:
  JsonReader(const nlohmann::json& j, std::string where) : j_(j), where_(std::move(where)) {
    require<ConfigError>(j.is_object(), where_, ": expected a JSON object");
  }
  template <class V>
  JsonReader& get(const char* key, V& out) {
    seen_.insert(key);
    if (!j_.contains(key)) return *this;
    const auto& v = j_.at(key);
    try {
      if constexpr (std::is_same_v<V, bool>) {
        require<ConfigError>(v.is_boolean(), "");
        out = v.template get<V>();
      } else if constexpr (std::is_integral_v<V>) {
        require<ConfigError>(v.is_number_integer(), "");
        out = v.template get<V>();
      } else if constexpr (std::is_floating_point_v<V>) {
        require<ConfigError>(v.is_number(), "");
        out = v.template get<V>();
      } else {
        out = v.template get<V>();
      }
    } catch (const std::exception&) {
      throw ConfigError(where_ + "." + key + ": expected " + type_name<V>() + ", got " + v.dump());
    }
    return *this;
  }
  /// Every key of the object must have been asked for.
  void finish() const {
    for (const auto& [k, v] : j_.items())
      require<ConfigError>(seen_.count(k) != 0, where_, ": unknown key '", k, "'");
  }

 private:
  template <class V>
  static std::string type_name() {
    if constexpr (std::is_same_v<V, bool>) return "true or false";
    else if constexpr (std::is_integral_v<V>) return "an integer";
    else if constexpr (std::is_floating_point_v<V>) return "a number";
    else if constexpr (std::is_same_v<V, std::string>) return "a string";
    else return "a list of integers";
  }
  const nlohmann::json& j_;
  std::string where_;
  std::set<std::string> seen_;
};
}  // namespace detail

inline nlohmann::json to_json(const Config& c) {
  const auto& d = c.diffusion;
  const auto& a = c.auxiliary;
  const auto& g = c.augment;
  return {{"diffusion",
           {{"horizon", d.horizon}, {"diffusion_steps", d.diffusion_steps}, {"dim", d.dim}, {"dim_mults", d.dim_mults},
            {"kernel_size", d.kernel_size}, {"groups", d.groups}, {"returns_scale", d.returns_scale},
            {"discount", d.discount}, {"condition_dropout", d.condition_dropout}, {"guidance_weight", d.guidance_weight},
            {"train_steps", d.train_steps}, {"batch_size", d.batch_size}, {"grad_accumulate", d.grad_accumulate},
            {"lr", d.lr}, {"ema_decay", d.ema_decay}, {"ema_every", d.ema_every}, {"ema_start", d.ema_start},
            {"seed", d.seed}}},
          {"auxiliary",
           {{"hidden", a.hidden}, {"steps", a.steps}, {"batch_size", a.batch_size}, {"lr", a.lr},
            {"heldout_fraction", a.heldout_fraction}, {"gamma", a.gamma}, {"tau", a.tau}, {"seed", a.seed}}},
          {"augment",
           {{"num", g.num}, {"batch_size", g.batch_size}, {"epsilon", g.epsilon}, {"target_return", g.target_return},
            {"sampling_steps", g.sampling_steps}, {"resample_jump", g.resample_jump},
            {"resample_count", g.resample_count}, {"dire_steps", g.dire_steps}, {"cbf_filter", g.cbf_filter},
            {"seed", g.seed}}},
          {"safety",
           {{"condition", c.safety.condition}, {"cbf_label", c.safety.cbf_label}, {"cost_penalty", c.safety.cost_penalty},
            {"cbf_hidden", c.safety.cbf_hidden}, {"cbf_steps", c.safety.cbf_steps},
            {"cbf_batch_size", c.safety.cbf_batch_size}, {"cbf_lr", c.safety.cbf_lr}, {"margin", c.safety.margin},
            {"return_value", c.safety.return_value}, {"expectile_tau", c.safety.expectile_tau},
            {"expectile_steps", c.safety.expectile_steps}, {"expectile_hidden", c.safety.expectile_hidden},
            {"alpha", c.safety.alpha}, {"dt", c.safety.dt}, {"heldout_fraction", c.safety.heldout_fraction},
            {"seed", c.safety.seed}}}};
}

/// Checks ranges; `where` names the source (file) in messages.
inline void validate(const Config& c, const std::string& where = "config") {
  const auto& d = c.diffusion;
  require<ConfigError>(d.horizon >= 2 && d.diffusion_steps >= 1 && d.dim >= 4 && !d.dim_mults.empty() && d.train_steps >= 0 &&
                           d.batch_size >= 1 && d.grad_accumulate >= 1 && d.lr > 0 && d.returns_scale > 0 &&
                           d.discount > 0 && d.discount <= 1 && d.condition_dropout >= 0 && d.condition_dropout <= 1,
                       where, ": diffusion settings out of range (horizon >= 2, steps >= 1, dim >= 4, lr > 0, ...)");
  const auto& a = c.auxiliary;
  require<ConfigError>(a.hidden >= 1 && a.steps >= 1 && a.batch_size >= 1 && a.lr > 0 && a.heldout_fraction >= 0 &&
                           a.heldout_fraction < 1 && a.gamma >= 0 && a.gamma < 1 && a.tau > 0 && a.tau <= 1,
                       where, ": auxiliary settings out of range");
  const auto& g = c.augment;
  require<ConfigError>(g.num >= 1 && g.batch_size >= 1 && g.epsilon > 0 && g.resample_jump >= 1 && g.resample_count >= 1 &&
                           g.dire_steps >= 1 && g.sampling_steps >= 0 && g.sampling_steps <= d.diffusion_steps,
                       where, ": augment settings out of range (num, batch_size, resample_* and dire_steps >= 1, epsilon > 0)");
  const auto& s = c.safety;
  require<ConfigError>(s.condition == "return" || s.condition == "cbf_return", where, ": safety.condition must be 'return' "
                       "or 'cbf_return', got '", s.condition, "'");
  require<ConfigError>(s.cbf_label == "barrier" || s.cbf_label == "cost", where, ": safety.cbf_label must be 'barrier' or "
                       "'cost', got '", s.cbf_label, "'");
  require<ConfigError>(s.return_value == "return_to_go" || s.return_value == "expectile", where,
                       ": safety.return_value must be 'return_to_go' or 'expectile', got '", s.return_value, "'");
  require<ConfigError>(s.expectile_tau > 0 && s.expectile_tau < 1 && s.expectile_steps >= 0 && s.expectile_hidden >= 1, where,
                       ": safety.expectile_tau must be in (0, 1), expectile_steps >= 0 and expectile_hidden >= 1");
  require<ConfigError>(s.cost_penalty >= 0 && s.cbf_hidden >= 1 && s.cbf_steps >= 0 && s.cbf_batch_size >= 1 && s.cbf_lr > 0 &&
                           s.margin >= 0 && s.alpha > 0 && s.dt > 0 && s.heldout_fraction >= 0 && s.heldout_fraction < 1,
                       where, ": safety settings out of range (cost_penalty, margin >= 0; cbf_hidden, cbf_batch_size >= 1; "
                       "cbf_lr, alpha, dt > 0; heldout_fraction in [0, 1))");
}

/// A config from JSON: missing keys keep their defaults, unknown keys and wrong types are errors.
inline Config config_from_json(const nlohmann::json& j, const std::string& where = "config") {
  Config c;
  detail::JsonReader top(j, where);
  static const nlohmann::json empty = nlohmann::json::object();
  const auto section = [&](const char* name) -> const nlohmann::json& {
    nlohmann::json ignored;
    top.get(name, ignored);  // marks the key as known
    return j.contains(name) ? j.at(name) : empty;
  };
  {
    auto& d = c.diffusion;
    const nlohmann::json& s = section("diffusion");
    detail::JsonReader r(s, where + ".diffusion");
    r.get("horizon", d.horizon).get("diffusion_steps", d.diffusion_steps).get("dim", d.dim).get("dim_mults", d.dim_mults);
    r.get("kernel_size", d.kernel_size).get("groups", d.groups).get("returns_scale", d.returns_scale);
    r.get("discount", d.discount).get("condition_dropout", d.condition_dropout).get("guidance_weight", d.guidance_weight);
    r.get("train_steps", d.train_steps).get("batch_size", d.batch_size).get("grad_accumulate", d.grad_accumulate);
    r.get("lr", d.lr).get("ema_decay", d.ema_decay).get("ema_every", d.ema_every).get("ema_start", d.ema_start);
    r.get("seed", d.seed).finish();
  }
  {
    auto& a = c.auxiliary;
    detail::JsonReader r(section("auxiliary"), where + ".auxiliary");
    r.get("hidden", a.hidden).get("steps", a.steps).get("batch_size", a.batch_size).get("lr", a.lr);
    r.get("heldout_fraction", a.heldout_fraction).get("gamma", a.gamma).get("tau", a.tau).get("seed", a.seed).finish();
  }
  {
    auto& g = c.augment;
    detail::JsonReader r(section("augment"), where + ".augment");
    r.get("num", g.num).get("batch_size", g.batch_size).get("epsilon", g.epsilon).get("target_return", g.target_return);
    r.get("sampling_steps", g.sampling_steps).get("resample_jump", g.resample_jump);
    r.get("resample_count", g.resample_count).get("dire_steps", g.dire_steps).get("cbf_filter", g.cbf_filter);
    r.get("seed", g.seed).finish();
  }
  {
    auto& f = c.safety;
    detail::JsonReader r(section("safety"), where + ".safety");
    r.get("condition", f.condition).get("cbf_label", f.cbf_label).get("cost_penalty", f.cost_penalty);
    r.get("cbf_hidden", f.cbf_hidden).get("cbf_steps", f.cbf_steps).get("cbf_batch_size", f.cbf_batch_size);
    r.get("cbf_lr", f.cbf_lr).get("margin", f.margin).get("alpha", f.alpha).get("dt", f.dt);
    r.get("return_value", f.return_value).get("expectile_tau", f.expectile_tau).get("expectile_steps", f.expectile_steps);
    r.get("expectile_hidden", f.expectile_hidden);
    r.get("heldout_fraction", f.heldout_fraction).get("seed", f.seed).finish();
  }
  top.finish();
  validate(c, where);
  return c;
}

using io::read_json_file;
using io::write_json_file;

inline Config load_config(const std::filesystem::path& path) { return config_from_json(read_json_file(path), path.string()); }

inline void save_config(const Config& c, const std::filesystem::path& path) { write_json_file(path, to_json(c)); }

}  // namespace coordiff::mastars
