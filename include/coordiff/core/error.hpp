#pragma once
// coordiff's error hierarchy. Every failure a user can cause (bad shapes, bad files, NaN, bad
// configuration) throws a subclass of coordiff::Error whose message names what was being done,
// what was expected and what was found.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace coordiff {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error("coordiff: " + what) {}
};

/// A tensor had the wrong rank or extent.
class ShapeError : public Error {
 public:
  explicit ShapeError(const std::string& what) : Error("shape error: " + what) {}
};

/// A file could not be opened, read or written, or its contents are malformed.
class IoError : public Error {
 public:
  explicit IoError(const std::string& what) : Error("I/O error: " + what) {}
};

/// A file was readable but its format is wrong (bad magic, corrupt header, unsupported dtype...).
class FormatError : public IoError {
 public:
  explicit FormatError(const std::string& what) : IoError(what) {}
};

/// A value is not finite or out of its valid numeric range.
class NumericError : public Error {
 public:
  explicit NumericError(const std::string& what) : Error("numeric error: " + what) {}
};

/// A configuration value, option or command-line flag is invalid.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error("config error: " + what) {}
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

/// Throws E with the streamed message unless `cond` holds.
template <class E = Error, class... Args>
inline void require(bool cond, Args&&... args) {
  if (!cond) throw E(detail::concat(std::forward<Args>(args)...));
}

}  // namespace coordiff
