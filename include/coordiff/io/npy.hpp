#pragma once
// NumPy .npy arrays: parsing and writing of format versions 1.0-3.0, little- and big-endian numeric
// dtypes (bool, uint8, int8, int16, int32, int64, float32, float64) and unicode strings ('<U'),
// C and Fortran order on read. Validation is strict; every error names the file (and key for npz).
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include "coordiff/core/tensor.hpp"
#include "coordiff/io/atomic_file.hpp"

namespace coordiff::io {

enum class DType { Bool, UInt8, Int8, Int16, Int32, Int64, Float32, Float64, Unicode };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::Bool: return "bool";
    case DType::UInt8: return "uint8";
    case DType::Int8: return "int8";
    case DType::Int16: return "int16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Unicode: return "unicode";
  }
  return "?";
}

template <class T>
constexpr DType dtype_of() {
  // bool arrays are read/written through uint8 tensors (std::vector<bool> has no data()); see NpyArray::as_bool.
  if constexpr (std::is_same_v<T, std::uint8_t>) return DType::UInt8;
  else if constexpr (std::is_same_v<T, std::int8_t>) return DType::Int8;
  else if constexpr (std::is_same_v<T, std::int16_t>) return DType::Int16;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::Int32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::Int64;
  else if constexpr (std::is_same_v<T, float>) return DType::Float32;
  else if constexpr (std::is_same_v<T, double>) return DType::Float64;
  else static_assert(sizeof(T) == 0, "coordiff::io: unsupported element type for .npy (use uint8, int8/16/32/64, float, double)");
}

/// A decoded array: C-order little-endian bytes. For Unicode, unicode_len is the number of UCS-4
/// code points per element.
struct NpyArray {
  DType dtype = DType::Float32;
  Shape shape;
  std::vector<unsigned char> bytes;
  std::int64_t unicode_len = 0;

  std::size_t itemsize() const {
    switch (dtype) {
      case DType::Bool: case DType::UInt8: case DType::Int8: return 1;
      case DType::Int16: return 2;
      case DType::Int32: case DType::Float32: return 4;
      case DType::Int64: case DType::Float64: return 8;
      case DType::Unicode: return static_cast<std::size_t>(4 * unicode_len);
    }
    return 0;
  }
  index_t size() const { return numel(shape); }

  /// Element i converted to double (numeric dtypes only).
  double value(index_t i) const {
    const unsigned char* p = bytes.data() + static_cast<std::size_t>(i) * itemsize();
    auto load = [p](auto v) {
      std::memcpy(&v, p, sizeof v);
      return static_cast<double>(v);
    };
    switch (dtype) {
      case DType::Bool: return *p ? 1.0 : 0.0;
      case DType::UInt8: return load(std::uint8_t{});
      case DType::Int8: return load(std::int8_t{});
      case DType::Int16: return load(std::int16_t{});
      case DType::Int32: return load(std::int32_t{});
      case DType::Int64: return load(std::int64_t{});
      case DType::Float32: return load(float{});
      case DType::Float64: return load(double{});
      case DType::Unicode: break;
    }
    return 0;
  }

  /// Converts a numeric array to Tensor<T>; `context` names the source in errors.
  template <class T>
  Tensor<T> to_tensor(const std::string& context) const {
    if (dtype == DType::Unicode)
      throw FormatError(context + ": expected a numeric array, found a unicode string array");
    Tensor<T> t(shape);
    if (dtype == dtype_of<T>()) {
      if (!bytes.empty()) std::memcpy(t.data(), bytes.data(), bytes.size());
      return t;
    }
    for (index_t i = 0; i < t.size(); ++i) t[i] = static_cast<T>(value(i));
    return t;
  }

  /// Unicode array -> UTF-8 strings (trailing NULs stripped, as NumPy does).
  std::vector<std::string> to_strings(const std::string& context) const {
    if (dtype != DType::Unicode)
      throw FormatError(context + ": expected a unicode string array, found " + dtype_name(dtype));
    std::vector<std::string> out;
    for (index_t i = 0; i < size(); ++i) {
      std::string s;
      for (std::int64_t c = 0; c < unicode_len; ++c) {
        std::uint32_t cp;
        std::memcpy(&cp, bytes.data() + static_cast<std::size_t>(i) * itemsize() + static_cast<std::size_t>(4 * c), 4);
        if (cp == 0) break;
        if (cp < 0x80) s += static_cast<char>(cp);
        else if (cp < 0x800) s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
        else if (cp < 0x10000)
          s += static_cast<char>(0xE0 | (cp >> 12)), s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
              s += static_cast<char>(0x80 | (cp & 0x3F));
        else
          s += static_cast<char>(0xF0 | (cp >> 18)), s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
              s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  template <class T>
  static NpyArray from_tensor(const Tensor<T>& t) {
    NpyArray a;
    a.dtype = dtype_of<T>();
    a.shape = t.shape();
    a.bytes.resize(static_cast<std::size_t>(t.size()) * sizeof(T));
    if (!a.bytes.empty()) std::memcpy(a.bytes.data(), t.data(), a.bytes.size());
    return a;
  }

  /// A uint8 tensor of 0/1 stored as NumPy bool ('|b1').
  static NpyArray as_bool(const Tensor<std::uint8_t>& t) {
    NpyArray a = from_tensor(t);
    a.dtype = DType::Bool;
    for (auto& b : a.bytes) b = b ? 1 : 0;
    return a;
  }

  /// UTF-8 strings -> a '<U' array of the given shape (default: 1-D).
  static NpyArray from_strings(const std::vector<std::string>& strings, Shape shape = {}) {
    if (shape.empty()) shape = {static_cast<index_t>(strings.size())};
    require<ShapeError>(numel(shape) == static_cast<index_t>(strings.size()), "NpyArray::from_strings: ",
                        strings.size(), " strings for shape ", to_string(shape));
    std::vector<std::vector<std::uint32_t>> cps;
    std::int64_t maxlen = 1;
    for (const auto& s : strings) {
      std::vector<std::uint32_t> v;
      for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        require<FormatError>(n > 0 && i + static_cast<std::size_t>(n) <= s.size(), "from_strings: invalid UTF-8 in '", s, "'");
        std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
        for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) & 0x3F);
        v.push_back(cp);
        i += static_cast<std::size_t>(n);
      }
      maxlen = std::max<std::int64_t>(maxlen, static_cast<std::int64_t>(v.size()));
      cps.push_back(std::move(v));
    }
    NpyArray a;
    a.dtype = DType::Unicode;
    a.shape = std::move(shape);
    a.unicode_len = maxlen;
    a.bytes.assign(strings.size() * a.itemsize(), 0);
    for (std::size_t i = 0; i < cps.size(); ++i)
      std::memcpy(a.bytes.data() + i * a.itemsize(), cps[i].data(), cps[i].size() * 4);
    return a;
  }
};

namespace detail {

inline std::string descr_of(const NpyArray& a) {
  switch (a.dtype) {
    case DType::Bool: return "|b1";
    case DType::UInt8: return "|u1";
    case DType::Int8: return "|i1";
    case DType::Int16: return "<i2";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Unicode: return "<U" + std::to_string(a.unicode_len);
  }
  return "";
}

// Parses NumPy's header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct NpyHeader {
  std::string descr;
  bool fortran = false;
  Shape shape;
};

inline NpyHeader parse_header_dict(const std::string& h, const std::string& ctx) {
  auto bad = [&](const std::string& what) -> FormatError {
    return FormatError(ctx + ": corrupt .npy header (" + what + "): " + h.substr(0, 120));
  };
  auto value_after = [&](const std::string& key) -> std::size_t {
    const std::size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) throw bad("missing '" + key + "'");
    std::size_t c = h.find(':', k);
    if (c == std::string::npos) throw bad("no ':' after '" + key + "'");
    ++c;
    while (c < h.size() && h[c] == ' ') ++c;
    return c;
  };
  NpyHeader out;
  std::size_t p = value_after("descr");
  if (p >= h.size() || (h[p] != '\'' && h[p] != '"')) throw bad("descr is not a string");
  const std::size_t e = h.find(h[p], p + 1);
  if (e == std::string::npos) throw bad("unterminated descr");
  out.descr = h.substr(p + 1, e - p - 1);
  p = value_after("fortran_order");
  if (h.compare(p, 4, "True") == 0) out.fortran = true;
  else if (h.compare(p, 5, "False") == 0) out.fortran = false;
  else throw bad("fortran_order is neither True nor False");
  p = value_after("shape");
  if (p >= h.size() || h[p] != '(') throw bad("shape is not a tuple");
  const std::size_t close = h.find(')', p);
  if (close == std::string::npos) throw bad("unterminated shape");
  std::string num;
  for (std::size_t i = p + 1; i <= close; ++i) {
    const char c = h[i];
    if (c >= '0' && c <= '9') {
      num += c;
      if (num.size() > 15) throw bad("dimension too large");
    } else if (c == ',' || c == ')' || c == ' ' || c == 'L') {
      if (!num.empty()) out.shape.push_back(std::stoll(num)), num.clear();
    } else {
      throw bad(std::string("unexpected character '") + c + "' in shape");
    }
  }
  return out;
}

inline bool parse_descr(const std::string& d, NpyArray& a, bool& big_endian) {
  if (d.size() < 3) return false;
  const char order = d[0], kind = d[1];
  if (order != '<' && order != '>' && order != '|' && order != '=') return false;
  big_endian = order == '>';
  const std::string size = d.substr(2);
  for (char c : size)
    if (c < '0' || c > '9') return false;
  if (size.size() > 9) return false;
  const long n = std::stol(size);
  if (kind == 'U') {
    if (n < 1) return false;
    a.dtype = DType::Unicode;
    a.unicode_len = n;
    return true;
  }
  if (kind == 'b' && n == 1) a.dtype = DType::Bool;
  else if (kind == 'u' && n == 1) a.dtype = DType::UInt8;
  else if (kind == 'i' && n == 1) a.dtype = DType::Int8;
  else if (kind == 'i' && n == 2) a.dtype = DType::Int16;
  else if (kind == 'i' && n == 4) a.dtype = DType::Int32;
  else if (kind == 'i' && n == 8) a.dtype = DType::Int64;
  else if (kind == 'f' && n == 4) a.dtype = DType::Float32;
  else if (kind == 'f' && n == 8) a.dtype = DType::Float64;
  else return false;
  return true;
}

}  // namespace detail

/// Parses a complete .npy image; `context` (file name, or "file.npz:key") prefixes every error.
inline NpyArray parse_npy(const unsigned char* data, std::size_t size, const std::string& context) {
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(data, magic, 6) != 0) throw FormatError(context + ": not a .npy file (bad magic)");
  const int major = data[6];
  std::size_t header_len, header_start;
  if (major == 1) {
    header_len = data[8] | (static_cast<std::size_t>(data[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw FormatError(context + ": truncated .npy header");
    header_len = data[8] | (static_cast<std::size_t>(data[9]) << 8) | (static_cast<std::size_t>(data[10]) << 16) |
                 (static_cast<std::size_t>(data[11]) << 24);
    header_start = 12;
  } else {
    throw FormatError(context + ": unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > size - header_start) throw FormatError(context + ": truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(data + header_start), header_len);
  auto h = detail::parse_header_dict(header, context);
  NpyArray a;
  bool big = false;
  if (!detail::parse_descr(h.descr, a, big))
    throw FormatError(context + ": unsupported dtype '" + h.descr +
                      "' (supported: bool, uint8, int8, int16, int32, int64, float32, float64, unicode)");
  a.shape = h.shape;
  index_t count = 1;
  for (index_t d : a.shape) {
    if (d < 0 || (d > 0 && count > (index_t(1) << 50) / d)) throw FormatError(context + ": implausible shape");
    count *= d;
  }
  const std::size_t item = a.itemsize(), need = static_cast<std::size_t>(count) * item;
  const std::size_t avail = size - header_start - header_len;
  if (avail < need)
    throw FormatError(context + ": truncated data (shape " + to_string(a.shape) + " of " + dtype_name(a.dtype) +
                      " needs " + std::to_string(need) + " bytes, found " + std::to_string(avail) + ")");
  const unsigned char* src = data + header_start + header_len;
  a.bytes.assign(src, src + need);
  const std::size_t swap_unit = a.dtype == DType::Unicode ? 4 : item;
  if (big && swap_unit > 1)
    for (std::size_t i = 0; i < need; i += swap_unit)
      for (std::size_t j = 0; j < swap_unit / 2; ++j) std::swap(a.bytes[i + j], a.bytes[i + swap_unit - 1 - j]);
  if (h.fortran && a.shape.size() > 1 && count > 0) {
    // Column-major -> row-major: element with index (i0..ik) lives at sum i_j * fstride_j.
    std::vector<unsigned char> c(need);
    const std::size_t r = a.shape.size();
    Shape fstride(r);
    index_t acc = 1;
    for (std::size_t j = 0; j < r; ++j) fstride[j] = acc, acc *= a.shape[j];
    std::vector<index_t> idx(r, 0);
    for (index_t flat = 0; flat < count; ++flat) {
      index_t off = 0;
      for (std::size_t j = 0; j < r; ++j) off += idx[j] * fstride[j];
      std::memcpy(c.data() + static_cast<std::size_t>(flat) * item, a.bytes.data() + static_cast<std::size_t>(off) * item, item);
      for (std::size_t j = r; j-- > 0;) {
        if (++idx[j] < a.shape[j]) break;
        idx[j] = 0;
      }
    }
    a.bytes.swap(c);
  }
  return a;
}

/// Serialises to a version 1.0 .npy image (header padded to a multiple of 64 bytes, as NumPy does).
inline std::vector<unsigned char> serialize_npy(const NpyArray& a) {
  std::string shape = "(";
  for (std::size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + (a.shape.size() == 1 ? "," : i + 1 < a.shape.size() ? ", " : "");
  shape += ")";
  std::string dict = "{'descr': '" + detail::descr_of(a) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t total = ((10 + dict.size() + 1 + 63) / 64) * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict.push_back('\n');
  require<IoError>(dict.size() < 65536, "serialize_npy: header too long");
  std::vector<unsigned char> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(dict.size() & 0xFF),
                                    static_cast<unsigned char>(dict.size() >> 8)};
  out.insert(out.end(), dict.begin(), dict.end());
  out.insert(out.end(), a.bytes.begin(), a.bytes.end());
  return out;
}

inline NpyArray read_npy(const std::filesystem::path& path) {
  const auto bytes = read_file(path);
  return parse_npy(bytes.data(), bytes.size(), path.string());
}
inline void write_npy(const std::filesystem::path& path, const NpyArray& a) { write_file_atomic(path, serialize_npy(a)); }

template <class T>
Tensor<T> load_npy(const std::filesystem::path& path) {
  return read_npy(path).to_tensor<T>(path.string());
}
template <class T>
void save_npy(const std::filesystem::path& path, const Tensor<T>& t) {
  write_npy(path, NpyArray::from_tensor(t));
}

}  // namespace coordiff::io
