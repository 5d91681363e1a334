#pragma once
// JSON files: read with errors that name the path, written atomically (docs/formats.md).
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "coordiff/core/error.hpp"
#include "coordiff/io/atomic_file.hpp"

namespace coordiff::io {

/// A JSON file; a missing file is an IoError, invalid JSON a FormatError, both naming the path.
inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  require<IoError>(in.good(), path.string(), ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(path.string() + ": not valid JSON: " + e.what());
  }
}

/// Writes j indented, atomically.
inline void write_json_file(const std::filesystem::path& path, const nlohmann::json& j) {
  const std::string text = j.dump(2) + "\n";
  io::write_file_atomic(path, text.data(), text.size());
}

}  // namespace coordiff::io
