// Shared pieces of the libFuzzer targets: how an input is cut into a configuration prefix and
// a byte stream fed in pieces, a strict decoder for the chunked bodies the parsers write, and
// FUZZ_CHECK, which turns a broken invariant into an abort (libFuzzer saves the input).
//
// Input layout (request_fuzz, response_fuzz):
//   byte 0        configuration: bits 0-2 = k, the number of piece sizes that follow;
//                 the other bits are the target's own switches
//   bytes 1..k    piece sizes: byte b means a piece of (b % 64) + 1 bytes; the stream is fed
//                 in pieces of these sizes, cycling (k = 0: one byte at a time)
//   the rest      the bytes a peer sends on one connection
// Every input is also fed in one piece, and both runs must end the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* cond, const std::string& detail) {
  std::fprintf(stderr, "\n==== INVARIANT VIOLATED at %s:%d: %s\n", file, line, cond);
  if (!detail.empty()) std::fprintf(stderr, "%s\n", detail.c_str());
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_CHECK(cond, detail)                               \
  do {                                                         \
    if (!(cond)) ::fuzz::fail(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)

// Printable form of bytes for failure reports ("\r\n" shown as escapes).
inline std::string escaped(std::string_view s, size_t max = 2000) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

struct Input {
  uint8_t config = 0;
  std::vector<size_t> pieces;  // empty: one byte at a time
  const char* data = nullptr;  // the stream
  size_t size = 0;
};

// Splits an input as described at the top of this file.
inline Input split_input(const uint8_t* bytes, size_t n) {
  Input in;
  if (n == 0) return in;
  in.config = bytes[0];
  size_t k = in.config & 7u;
  if (k > n - 1) k = n - 1;
  for (size_t i = 0; i < k; ++i) in.pieces.push_back(bytes[1 + i] % 64u + 1);
  in.data = reinterpret_cast<const char*>(bytes + 1 + k);
  in.size = n - 1 - k;
  return in;
}

// Feeds [data, data+size) in pieces of the given sizes (cycling; empty: 1 byte each), or in
// one piece when `whole`. Calls feed(ptr, len) for each piece; stops early when feed
// returns false.
template <class Feed>
void for_each_piece(const char* data, size_t size, const std::vector<size_t>& pieces, bool whole, Feed&& feed) {
  size_t pos = 0;
  size_t i = 0;
  while (pos < size) {
    size_t n = whole ? size - pos : (pieces.empty() ? 1 : pieces[i++ % pieces.size()]);
    if (n > size - pos) n = size - pos;
    if (!feed(data + pos, n)) return;
    pos += n;
  }
}

// Decodes chunked bytes as the parsers write them, strictly: "<hex>\r\n<data>\r\n" per chunk
// with lowercase hex, no leading zeros, no extensions, size > 0; then "0\r\n\r\n" (no
// trailers) when `complete`, nothing at all after it. Returns false (with `why`) on any
// deviation.
inline bool decode_chunked_strict(std::string_view in, bool complete, std::string& out, std::string& why) {
  size_t i = 0;
  for (;;) {
    if (i == in.size()) {
      if (complete) {
        why = "missing last chunk";
        return false;
      }
      return true;
    }
    size_t line_end = in.find("\r\n", i);
    if (line_end == std::string_view::npos) {
      why = "chunk-size line without CRLF at " + std::to_string(i);
      return false;
    }
    std::string_view hex = in.substr(i, line_end - i);
    if (hex.empty() || hex.size() > 16 || (hex.size() > 1 && hex[0] == '0')) {
      why = "bad chunk-size \"" + escaped(hex) + "\"";
      return false;
    }
    uint64_t size = 0;
    for (char c : hex) {
      int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      if (v < 0) {
        why = "bad chunk-size digit in \"" + escaped(hex) + "\"";
        return false;
      }
      size = size * 16 + static_cast<uint64_t>(v);
    }
    i = line_end + 2;
    if (size == 0) {
      if (!complete) {
        why = "last chunk in an incomplete body";
        return false;
      }
      if (in.substr(i) != "\r\n") {
        why = "bytes after the last chunk: \"" + escaped(in.substr(i)) + "\"";
        return false;
      }
      return true;
    }
    if (size > in.size() - i || in.size() - i - size < 2 || in.substr(i + size, 2) != "\r\n") {
      why = "chunk data of " + std::to_string(size) + " bytes not followed by CRLF";
      return false;
    }
    out.append(in.substr(i, size));
    i += size + 2;
  }
}

}  // namespace fuzz
