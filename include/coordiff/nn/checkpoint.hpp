#pragma once
// Versioned, checksummed training checkpoints, written atomically.
//
// Layout (little-endian): "CDIFFCKP" | u32 format version | u64 payload size | u32 CRC32(payload) | payload
// payload: str architecture | u64 step | u32 n_meta, (str key, str value)* |
//          u32 n_model, u32 n_tensors, (str name, u8 dtype 0=f32 1=f64, u32 rank, i64 dims[rank], raw data)*
// str = u32 length + bytes. The n_model model parameters come first in order, then named extra tensors
// (optimizer moments, EMA weights). The model part must match exactly; extras are loaded by name when
// asked for (so a model can be restored without its optimizer). Loading validates everything before it
// writes into the model.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "coordiff/io/atomic_file.hpp"
#include "coordiff/io/zip.hpp"
#include "coordiff/nn/parameter.hpp"

namespace coordiff::nn {

inline constexpr std::uint32_t kCheckpointVersion = 1;

struct CheckpointMeta {
  std::string architecture;  // free-form description; compared on load only through tensor names/shapes
  std::uint64_t step = 0;
  std::map<std::string, std::string> metadata;
};

template <class T>
using NamedTensors = std::vector<std::pair<std::string, Tensor<T>*>>;

namespace detail {
inline void put_u(std::vector<unsigned char>& b, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
inline void put_str(std::vector<unsigned char>& b, const std::string& s) {
  put_u(b, s.size(), 4);
  b.insert(b.end(), s.begin(), s.end());
}
template <class T>
void put_tensor(std::vector<unsigned char>& b, const std::string& name, const Tensor<T>& t) {
  put_str(b, name);
  b.push_back(sizeof(T) == 4 ? 0 : 1);
  put_u(b, t.rank(), 4);
  for (index_t d : t.shape()) put_u(b, static_cast<std::uint64_t>(d), 8);
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  b.insert(b.end(), p, p + static_cast<std::size_t>(t.size()) * sizeof(T));
}

struct CkptCursor {
  const unsigned char* d;
  std::size_t n, pos = 0;
  std::string ctx;
  void need(std::size_t k) const {
    if (k > n - pos) throw FormatError(ctx + ": truncated checkpoint (needs " + std::to_string(k) + " more bytes at offset " + std::to_string(pos) + ")");
  }
  std::uint64_t u(int bytes) {
    need(static_cast<std::size_t>(bytes));
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | d[pos + static_cast<std::size_t>(i)];
    pos += static_cast<std::size_t>(bytes);
    return v;
  }
  std::string str() {
    const std::size_t len = u(4);
    need(len);
    std::string s(reinterpret_cast<const char*>(d + pos), len);
    pos += len;
    return s;
  }
};

struct StoredTensor {
  std::string name;
  int dtype;
  Shape shape;
  const unsigned char* data;
};
}  // namespace detail

template <class T>
void save_checkpoint(const std::filesystem::path& path, const ParameterList<T>& model, const CheckpointMeta& meta,
                     const NamedTensors<T>& extra = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "checkpoints hold float or double tensors");
  std::vector<unsigned char> payload;
  detail::put_str(payload, meta.architecture);
  detail::put_u(payload, meta.step, 8);
  detail::put_u(payload, meta.metadata.size(), 4);
  for (const auto& [k, v] : meta.metadata) detail::put_str(payload, k), detail::put_str(payload, v);
  detail::put_u(payload, model.size(), 4);
  detail::put_u(payload, model.size() + extra.size(), 4);
  for (const auto& p : model) detail::put_tensor(payload, p.name, p.param->value);
  for (const auto& [name, t] : extra) detail::put_tensor(payload, name, *t);
  std::vector<unsigned char> file = {'C', 'D', 'I', 'F', 'F', 'C', 'K', 'P'};
  detail::put_u(file, kCheckpointVersion, 4);
  detail::put_u(file, payload.size(), 8);
  detail::put_u(file, io::zip::detail::crc32_of(payload.data(), payload.size()), 4);
  file.insert(file.end(), payload.begin(), payload.end());
  io::write_file_atomic(path, file);
}

namespace detail {
/// Checks magic, version, size and CRC of a checkpoint's bytes and reads its header; returns the header and
/// a cursor on the first byte after it (the tensor counts).
inline std::pair<CheckpointMeta, CkptCursor> open_checkpoint(const std::vector<unsigned char>& bytes, const std::string& ctx) {
  if (bytes.size() < 24 || std::memcmp(bytes.data(), "CDIFFCKP", 8) != 0)
    throw FormatError(ctx + ": not a coordiff checkpoint (bad magic)");
  CkptCursor head{bytes.data(), bytes.size(), 8, ctx};
  const auto version = head.u(4);
  if (version > kCheckpointVersion)
    throw FormatError(ctx + ": checkpoint format version " + std::to_string(version) + " is newer than supported (" +
                      std::to_string(kCheckpointVersion) + ")");
  const auto size = head.u(8);
  const auto crc = static_cast<std::uint32_t>(head.u(4));
  if (size != bytes.size() - head.pos)
    throw FormatError(ctx + ": truncated checkpoint (payload " + std::to_string(bytes.size() - head.pos) + " of " +
                      std::to_string(size) + " bytes)");
  if (io::zip::detail::crc32_of(bytes.data() + head.pos, size) != crc) throw FormatError(ctx + ": CRC32 mismatch (corrupt checkpoint)");
  CkptCursor c{bytes.data() + head.pos, static_cast<std::size_t>(size), 0, ctx};
  CheckpointMeta meta;
  meta.architecture = c.str();
  meta.step = c.u(8);
  const auto nmeta = c.u(4);
  for (std::uint64_t i = 0; i < nmeta; ++i) {
    std::string k = c.str();
    meta.metadata[k] = c.str();
  }
  return {std::move(meta), c};
}
}  // namespace detail

/// Loads into `model` (and `extra`), converting float <-> double. Throws FormatError for a damaged or
/// foreign file and ShapeError/FormatError naming the first tensor that differs from the model.
/// `check_header`, when given, sees the verified header before anything is written, so a caller can refuse
/// a checkpoint by its metadata (by throwing) and leave the model untouched, reading the file once.
template <class T>
CheckpointMeta load_checkpoint(const std::filesystem::path& path, const ParameterList<T>& model,
                               const NamedTensors<T>& extra = {},
                               const std::function<void(const CheckpointMeta&)>& check_header = {}) {
  const std::string ctx = path.string();
  const auto bytes = io::read_file(path);
  auto [meta, c] = detail::open_checkpoint(bytes, ctx);
  if (check_header) check_header(meta);
  const auto nmodel = c.u(4);
  const auto ntensors = c.u(4);
  if (nmodel > ntensors) throw FormatError(ctx + ": corrupt tensor counts");
  std::vector<detail::StoredTensor> stored;
  for (std::uint64_t i = 0; i < ntensors; ++i) {
    detail::StoredTensor s;
    s.name = c.str();
    s.dtype = static_cast<int>(c.u(1));
    if (s.dtype > 1) throw FormatError(ctx + ": tensor '" + s.name + "' has unknown dtype code " + std::to_string(s.dtype));
    const auto rank = c.u(4);
    if (rank > 16) throw FormatError(ctx + ": tensor '" + s.name + "' has implausible rank " + std::to_string(rank));
    index_t count = 1;
    for (std::uint64_t r = 0; r < rank; ++r) {
      const auto dim = static_cast<index_t>(c.u(8));
      if (dim < 0 || (dim > 0 && count > (index_t(1) << 40) / dim)) throw FormatError(ctx + ": tensor '" + s.name + "' has an implausible shape");
      s.shape.push_back(dim);
      count *= dim;
    }
    const std::size_t nbytes = static_cast<std::size_t>(count) * (s.dtype == 0 ? 4 : 8);
    c.need(nbytes);
    s.data = c.d + c.pos;
    c.pos += nbytes;
    stored.push_back(std::move(s));
  }
  // The model part must match in order; report the first difference.
  for (std::size_t i = 0; i < std::max<std::size_t>(model.size(), nmodel); ++i) {
    if (i >= nmodel)
      throw FormatError(ctx + ": architecture mismatch at tensor #" + std::to_string(i) + ": the model expects '" +
                        model[i].name + "' " + to_string(model[i].param->shape()) +
                        ", the checkpoint has no more model tensors (architecture '" + meta.architecture + "')");
    if (i >= model.size())
      throw FormatError(ctx + ": architecture mismatch at tensor #" + std::to_string(i) + ": the checkpoint has extra tensor '" +
                        stored[i].name + "' " + to_string(stored[i].shape) + " the model does not have");
    if (stored[i].name != model[i].name)
      throw FormatError(ctx + ": architecture mismatch at tensor #" + std::to_string(i) + ": the model expects '" +
                        model[i].name + "', the checkpoint has '" + stored[i].name + "'");
    if (stored[i].shape != model[i].param->shape())
      throw ShapeError(ctx + ": tensor '" + model[i].name + "' has shape " + to_string(stored[i].shape) +
                       " in the checkpoint, the model expects " + to_string(model[i].param->shape()));
  }
  std::vector<const detail::StoredTensor*> extra_src;
  for (const auto& [name, t] : extra) {
    const detail::StoredTensor* found = nullptr;
    for (std::size_t i = nmodel; i < stored.size(); ++i)
      if (stored[i].name == name) found = &stored[i];
    if (!found) throw FormatError(ctx + ": the checkpoint has no tensor '" + name + "'");
    if (found->shape != t->shape())
      throw ShapeError(ctx + ": tensor '" + name + "' has shape " + to_string(found->shape) + " in the checkpoint, expected " +
                       to_string(t->shape()));
    extra_src.push_back(found);
  }
  auto decode = [](const detail::StoredTensor& s) {
    Tensor<T> t(s.shape);
    for (index_t i = 0; i < t.size(); ++i) {
      if (s.dtype == 0) {
        float v;
        std::memcpy(&v, s.data + 4 * i, 4);
        t[i] = static_cast<T>(v);
      } else {
        double v;
        std::memcpy(&v, s.data + 8 * i, 8);
        t[i] = static_cast<T>(v);
      }
    }
    return t;
  };
  for (std::size_t i = 0; i < model.size(); ++i) model[i].param->value = decode(stored[i]);
  for (std::size_t i = 0; i < extra.size(); ++i) *extra[i].second = decode(*extra_src[i]);
  return meta;
}

}  // namespace coordiff::nn
