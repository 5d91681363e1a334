#pragma once
// Minimal ZIP archive reader/writer on zlib, enough for NumPy's .npz (np.savez writes ZIP64 records
// for every member). Every size and offset read from a file is bounds-checked: corrupt or truncated
// archives raise FormatError naming the archive and the problem.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "coordiff/core/error.hpp"

namespace coordiff::io::zip {

struct Member {
  std::string name;
  std::vector<unsigned char> data;
};

namespace detail {

class Reader {
 public:
  Reader(const unsigned char* d, std::size_t n, const std::string& ctx) : d_(d), n_(n), ctx_(ctx) {}
  void need(std::uint64_t off, std::uint64_t len, const char* what) const {
    if (off > n_ || len > n_ - off)
      throw FormatError(ctx_ + ": truncated or corrupt archive (" + what + " at offset " + std::to_string(off) +
                        " needs " + std::to_string(len) + " bytes, file has " + std::to_string(n_) + ")");
  }
  std::uint64_t le(std::uint64_t off, int bytes, const char* what) const {
    need(off, static_cast<std::uint64_t>(bytes), what);
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | d_[off + static_cast<std::uint64_t>(i)];
    return v;
  }
  const unsigned char* at(std::uint64_t off) const { return d_ + off; }
  std::size_t size() const { return n_; }
  const std::string& ctx() const { return ctx_; }

 private:
  const unsigned char* d_;
  std::size_t n_;
  std::string ctx_;
};

inline void put(std::vector<unsigned char>& b, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

inline std::uint32_t crc32_of(const unsigned char* p, std::size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt chunk = static_cast<uInt>(n > (1u << 30) ? (1u << 30) : n);
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(c);
}

inline std::vector<unsigned char> inflate_raw(const unsigned char* src, std::size_t n, std::size_t out_size,
                                              const std::string& what) {
  std::vector<unsigned char> out(out_size);
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw FormatError(what + ": zlib inflateInit2 failed");
  zs.next_in = const_cast<Bytef*>(src);
  zs.avail_in = static_cast<uInt>(n);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out_size);
  const int rc = inflate(&zs, Z_FINISH);
  const std::size_t produced = zs.total_out;
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || produced != out_size)
    throw FormatError(what + ": corrupt deflate data (zlib code " + std::to_string(rc) + ", " +
                      std::to_string(produced) + " of " + std::to_string(out_size) + " bytes)");
  return out;
}

inline std::vector<unsigned char> deflate_raw(const std::vector<unsigned char>& in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw IoError("zlib deflateInit2 failed");
  std::vector<unsigned char> out(deflateBound(&zs, static_cast<uLong>(in.size())));
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw IoError("zlib deflate failed (code " + std::to_string(rc) + ")");
  return out;
}

}  // namespace detail

/// Reads every member of a ZIP archive held in memory; `context` (the file name) prefixes errors.
inline std::vector<Member> read_archive(const unsigned char* data, std::size_t size, const std::string& context) {
  detail::Reader r(data, size, context);
  if (size < 22) throw FormatError(context + ": not a ZIP archive (file is " + std::to_string(size) + " bytes)");
  // End of central directory: last 22+ bytes, possibly followed by a comment of up to 65535 bytes.
  std::uint64_t eocd = UINT64_MAX;
  const std::size_t lowest = size >= 22 + 65535 ? size - 22 - 65535 : 0;
  for (std::size_t off = size - 22 + 1; off-- > lowest;) {
    if (r.le(off, 4, "EOCD") == 0x06054b50u) {
      eocd = off;
      break;
    }
  }
  if (eocd == UINT64_MAX) throw FormatError(context + ": not a ZIP archive or truncated (no end-of-central-directory record)");
  std::uint64_t entries = r.le(eocd + 10, 2, "EOCD"), cd_size = r.le(eocd + 12, 4, "EOCD"),
                cd_off = r.le(eocd + 16, 4, "EOCD");
  if (eocd >= 20 && r.le(eocd - 20, 4, "ZIP64 locator") == 0x07064b50u) {
    const std::uint64_t z64 = r.le(eocd - 20 + 8, 8, "ZIP64 locator");
    if (r.le(z64, 4, "ZIP64 EOCD") != 0x06064b50u) throw FormatError(context + ": corrupt ZIP64 end-of-central-directory record");
    entries = r.le(z64 + 32, 8, "ZIP64 EOCD");
    cd_size = r.le(z64 + 40, 8, "ZIP64 EOCD");
    cd_off = r.le(z64 + 48, 8, "ZIP64 EOCD");
  }
  r.need(cd_off, cd_size, "central directory");
  std::vector<Member> members;
  std::uint64_t p = cd_off;
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (r.le(p, 4, "central directory entry") != 0x02014b50u)
      throw FormatError(context + ": corrupt central directory (entry " + std::to_string(e) + ")");
    const std::uint64_t flags = r.le(p + 8, 2, "central directory entry"), method = r.le(p + 10, 2, "cd");
    const std::uint32_t crc = static_cast<std::uint32_t>(r.le(p + 16, 4, "cd"));
    std::uint64_t csize = r.le(p + 20, 4, "cd"), usize = r.le(p + 24, 4, "cd");
    const std::uint64_t nlen = r.le(p + 28, 2, "cd"), xlen = r.le(p + 30, 2, "cd"), clen = r.le(p + 32, 2, "cd");
    std::uint64_t local = r.le(p + 42, 4, "cd");
    r.need(p + 46, nlen + xlen + clen, "central directory entry name");
    std::string name(reinterpret_cast<const char*>(r.at(p + 46)), nlen);
    // ZIP64 extra field: 64-bit values for the fields saturated at 0xFFFFFFFF, in this order.
    for (std::uint64_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {
      const std::uint64_t id = r.le(x, 2, "extra"), len = r.le(x + 2, 2, "extra");
      if (x + 4 + len > p + 46 + nlen + xlen) throw FormatError(context + ": corrupt extra field of '" + name + "'");
      if (id == 0x0001) {
        std::uint64_t q = x + 4;
        auto take = [&](std::uint64_t& field) {
          if (field == 0xFFFFFFFFu) {
            if (q + 8 > x + 4 + len) throw FormatError(context + ": short ZIP64 extra field of '" + name + "'");
            field = r.le(q, 8, "ZIP64 extra");
            q += 8;
          }
        };
        take(usize);
        take(csize);
        take(local);
      }
      x += 4 + len;
    }
    if (flags & 1u) throw FormatError(context + ": member '" + name + "' is encrypted (not supported)");
    if (r.le(local, 4, "local header") != 0x04034b50u)
      throw FormatError(context + ": corrupt local header of member '" + name + "'");
    const std::uint64_t data_off = local + 30 + r.le(local + 26, 2, "local header") + r.le(local + 28, 2, "local header");
    r.need(data_off, csize, ("data of member '" + name + "'").c_str());
    Member m;
    m.name = name;
    const std::string what = context + ": member '" + name + "'";
    if (method == 0) {
      if (csize != usize) throw FormatError(what + ": stored sizes disagree");
      m.data.assign(r.at(data_off), r.at(data_off) + csize);
    } else if (method == 8) {
      if (usize > csize * 1032 + 1024)  // deflate cannot expand beyond ~1032:1
        throw FormatError(what + ": implausible uncompressed size " + std::to_string(usize));
      m.data = detail::inflate_raw(r.at(data_off), csize, usize, what);
    } else {
      throw FormatError(what + ": unsupported compression method " + std::to_string(method) + " (stored and deflate are supported)");
    }
    if (detail::crc32_of(m.data.data(), m.data.size()) != crc) throw FormatError(what + ": CRC mismatch (corrupt data)");
    members.push_back(std::move(m));
    p += 46 + nlen + xlen + clen;
  }
  return members;
}

/// Serialises members into a ZIP archive (stored or deflated); readable by Python's zipfile / np.load.
inline std::vector<unsigned char> write_archive(const std::vector<Member>& members, bool compress) {
  using detail::put;
  std::vector<unsigned char> out, cd;
  for (const auto& m : members) {
    require<IoError>(m.data.size() < 0xFFFFFFFFull && m.name.size() < 0xFFFF, "zip: member '", m.name,
                     "' too large for a non-ZIP64 archive");
    const std::uint32_t crc = detail::crc32_of(m.data.data(), m.data.size());
    std::vector<unsigned char> deflated;
    const bool use_deflate = compress && !m.data.empty();
    if (use_deflate) deflated = detail::deflate_raw(m.data);
    const auto& payload = use_deflate ? deflated : m.data;
    const std::uint64_t local = out.size();
    const int method = use_deflate ? 8 : 0;
    const int version = 20;
    // Fixed DOS date 1980-01-01 00:00 keeps archives byte-reproducible.
    auto header_common = [&](std::vector<unsigned char>& b) {
      put(b, 0, 2);           // flags
      put(b, static_cast<std::uint64_t>(method), 2);
      put(b, 0, 2);           // time
      put(b, (0u << 9) | (1u << 5) | 1u, 2);  // date
      put(b, crc, 4);
      put(b, payload.size(), 4);
      put(b, m.data.size(), 4);
      put(b, m.name.size(), 2);
      put(b, 0, 2);           // extra length
    };
    put(out, 0x04034b50u, 4);
    put(out, static_cast<std::uint64_t>(version), 2);
    header_common(out);
    out.insert(out.end(), m.name.begin(), m.name.end());
    out.insert(out.end(), payload.begin(), payload.end());
    put(cd, 0x02014b50u, 4);
    put(cd, static_cast<std::uint64_t>(version), 2);  // made by
    put(cd, static_cast<std::uint64_t>(version), 2);  // needed
    header_common(cd);
    put(cd, 0, 2);  // comment length
    put(cd, 0, 2);  // disk
    put(cd, 0, 2);  // internal attributes
    put(cd, 0, 4);  // external attributes
    put(cd, local, 4);
    cd.insert(cd.end(), m.name.begin(), m.name.end());
  }
  const std::uint64_t cd_off = out.size();
  out.insert(out.end(), cd.begin(), cd.end());
  put(out, 0x06054b50u, 4);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, members.size(), 2);
  put(out, members.size(), 2);
  put(out, cd.size(), 4);
  put(out, cd_off, 4);
  put(out, 0, 2);
  return out;
}

}  // namespace coordiff::io::zip
