#pragma once
// Whole-file reads and atomic writes: data goes to a unique temporary file in the target's directory,
// is flushed to disk, then renamed over the target, so readers never see a partial file and a failed
// write leaves the previous file (if any) untouched and no temporary behind.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"

namespace coordiff::io {

inline std::string errno_text(int e) { return std::strerror(e); }

inline void write_file_atomic(const std::filesystem::path& path, const void* data, std::size_t size) {
  namespace fs = std::filesystem;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  if (fd < 0) {
    const int e = errno;
    throw IoError("cannot create a temporary file to write '" + path.string() + "': " + errno_text(e));
  }
  const std::string tmp(name.data());
  auto fail = [&](const std::string& what, int e) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw IoError("writing '" + path.string() + "': " + what + ": " + errno_text(e));
  };
  const char* p = static_cast<const char*>(data);
  std::size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed", errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("fsync failed", errno);
  ::fchmod(fd, 0644);
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw IoError("writing '" + path.string() + "': close failed: " + errno_text(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw IoError("cannot move the temporary file over '" + path.string() + "': " + errno_text(e));
  }
}

inline void write_file_atomic(const std::filesystem::path& path, const std::vector<unsigned char>& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

inline std::vector<unsigned char> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path.string() + "' for reading: " + errno_text(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff n = in.tellg();
  if (n < 0) throw IoError("cannot determine the size of '" + path.string() + "'");
  in.seekg(0);
  std::vector<unsigned char> buf(static_cast<std::size_t>(n));
  if (n > 0 && !in.read(reinterpret_cast<char*>(buf.data()), n))
    throw IoError("reading '" + path.string() + "' failed after " + std::to_string(in.gcount()) + " bytes");
  return buf;
}

}  // namespace coordiff::io
