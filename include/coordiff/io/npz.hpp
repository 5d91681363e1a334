#pragma once
// NumPy .npz archives (np.savez and np.savez_compressed): read by key, write atomically.
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "coordiff/io/atomic_file.hpp"
#include "coordiff/io/npy.hpp"
#include "coordiff/io/zip.hpp"

namespace coordiff::io {

class NpzFile {
 public:
  /// Reads and validates every member; throws IoError / FormatError naming the file (and member).
  static NpzFile load(const std::filesystem::path& path) {
    const auto bytes = read_file(path);
    return from_bytes(bytes.data(), bytes.size(), path.string());
  }
  static NpzFile from_bytes(const unsigned char* data, std::size_t size, const std::string& name) {
    NpzFile f;
    f.path_ = name;
    for (auto& m : zip::read_archive(data, size, name)) {
      std::string key = m.name;
      if (key.size() > 4 && key.compare(key.size() - 4, 4, ".npy") == 0) key.resize(key.size() - 4);
      f.arrays_.emplace(key, parse_npy(m.data.data(), m.data.size(), name + ":" + key));
    }
    return f;
  }

  const std::filesystem::path& path() const { return path_; }
  bool contains(const std::string& key) const { return arrays_.count(key) != 0; }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& [name, a] : arrays_) k.push_back(name);
    return k;
  }
  const NpyArray& array(const std::string& key) const {
    auto it = arrays_.find(key);
    if (it == arrays_.end()) {
      std::string have;
      for (const auto& [name, a] : arrays_) have += (have.empty() ? "" : ", ") + name;
      throw FormatError(path_.string() + ": missing array '" + key + "' (available: " + (have.empty() ? "none" : have) + ")");
    }
    return it->second;
  }
  template <class T>
  Tensor<T> tensor(const std::string& key) const {
    return array(key).to_tensor<T>(path_.string() + ":" + key);
  }
  /// As tensor(key), also requiring the shape.
  template <class T>
  Tensor<T> tensor(const std::string& key, const Shape& expected) const {
    const auto& a = array(key);
    if (a.shape != expected)
      throw ShapeError(path_.string() + ":" + key + ": expected shape " + to_string(expected) + ", found " + to_string(a.shape));
    return a.to_tensor<T>(path_.string() + ":" + key);
  }
  std::vector<std::string> strings(const std::string& key) const { return array(key).to_strings(path_.string() + ":" + key); }

 private:
  std::filesystem::path path_;
  std::map<std::string, NpyArray> arrays_;
};

class NpzWriter {
 public:
  template <class T>
  NpzWriter& add(const std::string& key, const Tensor<T>& t) {
    return add(key, NpyArray::from_tensor(t));
  }
  NpzWriter& add(const std::string& key, NpyArray a) {
    require<ConfigError>(!key.empty(), "NpzWriter: empty array name");
    for (const auto& [k, v] : arrays_) require<ConfigError>(k != key, "NpzWriter: duplicate array name '", key, "'");
    arrays_.emplace_back(key, std::move(a));
    return *this;
  }
  NpzWriter& add_strings(const std::string& key, const std::vector<std::string>& s) {
    return add(key, NpyArray::from_strings(s));
  }
  std::vector<unsigned char> to_bytes(bool compressed = true) const {
    std::vector<zip::Member> members;
    for (const auto& [k, a] : arrays_) members.push_back({k + ".npy", serialize_npy(a)});
    return zip::write_archive(members, compressed);
  }
  /// Writes atomically (temp file + rename).
  void save(const std::filesystem::path& path, bool compressed = true) const {
    write_file_atomic(path, to_bytes(compressed));
  }

 private:
  std::vector<std::pair<std::string, NpyArray>> arrays_;
};

}  // namespace coordiff::io
