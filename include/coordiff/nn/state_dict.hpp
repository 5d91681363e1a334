#pragma once
// Moving named parameters between modules and .npz files keyed by PyTorch state_dict names.
#include <filesystem>
#include <set>
#include <string>

#include "coordiff/io/npz.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

/// Copies every parameter from `npz[key_prefix + name]`. All keys are validated before anything is
/// written, so a failed load leaves the module unchanged. strict: keys under the prefix that match no
/// parameter are an error too (as torch's load_state_dict(strict=True)).
template <class T>
void load_state_dict(const ParameterList<T>& params, const io::NpzFile& npz, const std::string& key_prefix = "",
                     bool strict = true, bool check_finite = false) {
  const std::string file = npz.path().string();
  std::vector<Tensor<T>> staged;
  staged.reserve(params.size());
  std::set<std::string> used;
  for (const auto& p : params) {
    const std::string key = key_prefix + p.name;
    if (!npz.contains(key))
      throw FormatError(file + ": missing parameter '" + key + "' (expected shape " + to_string(p.param->shape()) + ")");
    const auto& a = npz.array(key);
    if (a.shape != p.param->shape())
      throw ShapeError(file + ": parameter '" + key + "' has shape " + to_string(a.shape) + ", the model expects " +
                       to_string(p.param->shape()));
    staged.push_back(a.to_tensor<T>(file + ":" + key));
    if (check_finite) require_finite(staged.back(), file + ":" + key);
    used.insert(key);
  }
  if (strict) {
    std::string extra;
    for (const auto& k : npz.keys())
      if (k.compare(0, key_prefix.size(), key_prefix) == 0 && !used.count(k)) extra += (extra.empty() ? "" : ", ") + k;
    if (!extra.empty()) throw FormatError(file + ": unexpected parameters not in the model: " + extra);
  }
  for (std::size_t i = 0; i < params.size(); ++i) params[i].param->value = std::move(staged[i]);
}

template <class T>
io::NpzWriter& add_state_dict(io::NpzWriter& w, const ParameterList<T>& params, const std::string& key_prefix = "") {
  for (const auto& p : params) w.add(key_prefix + p.name, p.param->value);
  return w;
}

template <class T>
void save_state_dict(const std::filesystem::path& path, const ParameterList<T>& params, bool compressed = true) {
  io::NpzWriter w;
  add_state_dict(w, params);
  w.save(path, compressed);
}

}  // namespace coordiff::nn
