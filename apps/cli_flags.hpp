#pragma once
// Command-line flags of the coordiff tool: `--name value` pairs, each checked with a message that names it.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"

namespace coordiff::cli {

namespace cd = coordiff;

/// --flag value pairs; unknown flags and missing values are errors naming the flag.
inline std::map<std::string, std::string> parse_flags(int argc, char** argv, int first, const std::vector<std::string>& known) {
  std::map<std::string, std::string> f;
  for (int i = first; i < argc; ++i) {
    const std::string k = argv[i];
    cd::require<cd::ConfigError>(k.rfind("--", 0) == 0, "unexpected argument '", k, "'");
    const std::string name = k.substr(2);
    cd::require<cd::ConfigError>(std::find(known.begin(), known.end(), name) != known.end(), "unknown flag --", name);
    cd::require<cd::ConfigError>(i + 1 < argc, "flag --", name, " needs a value");
    f[name] = argv[++i];
  }
  return f;
}

inline long long integer_flag(const std::map<std::string, std::string>& f, const std::string& name, long long fallback, long long min) {
  const auto it = f.find(name);
  if (it == f.end()) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  cd::require<cd::ConfigError>(end && *end == '\0' && !it->second.empty(), "--", name, " must be an integer, got '", it->second, "'");
  cd::require<cd::ConfigError>(v >= min, "--", name, " must be >= ", min, ", got ", v);
  return v;
}

inline std::string required(const std::map<std::string, std::string>& f, const std::string& name) {
  const auto it = f.find(name);
  cd::require<cd::ConfigError>(it != f.end(), "missing required flag --", name);
  return it->second;
}

inline double number_flag(const std::map<std::string, std::string>& f, const std::string& name, double fallback) {
  const auto it = f.find(name);
  if (it == f.end()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  cd::require<cd::ConfigError>(end && *end == '\0' && !it->second.empty() && std::isfinite(v), "--", name,
                               " must be a number, got '", it->second, "'");
  return v;
}

/// A comma-separated list flag ("a,b,c"); empty items are errors.
inline std::vector<std::string> list_flag(const std::map<std::string, std::string>& f, const std::string& name,
                                          const std::vector<std::string>& fallback) {
  const auto it = f.find(name);
  if (it == f.end()) return fallback;
  std::vector<std::string> out;
  std::string item;
  for (std::size_t i = 0; i <= it->second.size(); ++i) {
    if (i == it->second.size() || it->second[i] == ',') {
      cd::require<cd::ConfigError>(!item.empty(), "--", name, " must be a comma-separated list, got '", it->second, "'");
      out.push_back(item);
      item.clear();
    } else {
      item += it->second[i];
    }
  }
  return out;
}

}  // namespace coordiff::cli
