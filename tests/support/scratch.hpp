#pragma once
// Scratch directories and exception-message capture for tests.
#include <filesystem>
#include <functional>
#include <string>

#include <doctest/doctest.h>

namespace coordiff::testing {

/// A fresh, empty directory under the system temp dir (removed first if it exists).
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / ("coordiff_test_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

/// Runs f, which must throw E, and returns the exception's message.
template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected exception not thrown");
  return {};
}

}  // namespace coordiff::testing
