// http/wire.h: HTTP/1.1's syntax as pieces — the lines a head is made of, a body's chunk
// framing, multipart/byteranges delimiters — for code that builds a message from stored or
// computed parts rather than from a parsed head: the cache's stored head and its hits (the
// 304/206/416 status lines, Content-Range, the fields every hit ends with), a background
// refresh's request, a body re-chunked while it fills the cache.
//
// message.h's writers make whole messages; these are the lines they are made of, so that the
// wire format is written in this module and nowhere else (ARCHITECTURE.md §3). Header-only
// templates where the request path calls them per field (the cache's stored head, a hit):
// they inline to the appends they replace. Out is std::string or base::ByteBuffer (anything
// with append(const char*, size_t)). The caller vouches for the bytes: names, values, targets
// and boundaries are written as given (the parsers and the cache's policy checked them).
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "ringmaster/base/byte_buffer.h"

namespace ringmaster::http::wire {

inline constexpr std::string_view kCrlf = "\r\n";

template <class Out>
void put(Out& out, std::string_view s) {
  out.append(s.data(), s.size());
}

template <class Out>
void put_decimal(Out& out, uint64_t v) {
  char digits[20];
  auto r = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, static_cast<size_t>(r.ptr - digits));
}

// "HTTP/1.1 <status> <reason>\r\n" (a response we answer with is always HTTP/1.1).
template <class Out>
void status_line(Out& out, uint16_t status, std::string_view reason) {
  put(out, "HTTP/1.1 ");
  put_decimal(out, status);
  put(out, " ");
  put(out, reason);
  put(out, kCrlf);
}

// "<method> <target> HTTP/1.<minor>\r\n"
template <class Out>
void request_line(Out& out, std::string_view method, std::string_view target, uint8_t version_minor) {
  put(out, method);
  put(out, " ");
  put(out, target);
  put(out, version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
}

// "<name>: <value>\r\n"
template <class Out>
void field(Out& out, std::string_view name, std::string_view value) {
  put(out, name);
  put(out, ": ");
  put(out, value);
  put(out, kCrlf);
}

// "<name>: <decimal>\r\n"
template <class Out>
void field(Out& out, std::string_view name, uint64_t value) {
  put(out, name);
  put(out, ": ");
  put_decimal(out, value);
  put(out, kCrlf);
}

// The blank line that ends a head.
template <class Out>
void end_of_head(Out& out) {
  put(out, kCrlf);
}

// "Content-Range: bytes <first>-<last>/<total>\r\n" (RFC 9110 §14.4), or for an unsatisfiable
// range "Content-Range: bytes */<total>\r\n".
template <class Out>
void content_range(Out& out, uint64_t first, uint64_t last, uint64_t total) {
  put(out, "Content-Range: bytes ");
  put_decimal(out, first);
  put(out, "-");
  put_decimal(out, last);
  put(out, "/");
  put_decimal(out, total);
  put(out, kCrlf);
}
template <class Out>
void unsatisfied_range(Out& out, uint64_t total) {
  put(out, "Content-Range: bytes */");
  put_decimal(out, total);
  put(out, kCrlf);
}

// multipart/byteranges (RFC 9110 §14.6): the Content-Type naming the boundary, the delimiter
// before each part ("\r\n--<boundary>\r\n", the part's fields follow) and the closing one.
template <class Out>
void multipart_content_type(Out& out, std::string_view boundary) {
  put(out, "Content-Type: multipart/byteranges; boundary=");
  put(out, boundary);
  put(out, kCrlf);
}
template <class Out>
void multipart_delimiter(Out& out, std::string_view boundary) {
  put(out, "\r\n--");
  put(out, boundary);
  put(out, kCrlf);
}
template <class Out>
void multipart_close(Out& out, std::string_view boundary) {
  put(out, "\r\n--");
  put(out, boundary);
  put(out, "--\r\n");
}

// One chunk of a chunked body ("<hex size>\r\n<data>\r\n", in one reservation; nothing for
// empty data), and the last chunk with no trailers ("0\r\n\r\n"). The response parser
// re-chunks through chunk() too.
inline void chunk(base::ByteBuffer& out, const char* data, size_t n) {
  if (n == 0) return;
  char digits[16];
  size_t d = sizeof digits;
  for (uint64_t v = n; v != 0; v >>= 4) digits[--d] = "0123456789abcdef"[v & 15];
  const size_t hex = sizeof digits - d;
  char* w = out.reserve_back(hex + 2 + n + 2);
  std::memcpy(w, digits + d, hex);
  w[hex] = '\r';
  w[hex + 1] = '\n';
  std::memcpy(w + hex + 2, data, n);
  w[hex + 2 + n] = '\r';
  w[hex + 3 + n] = '\n';
  out.commit(hex + 4 + n);
}
inline void last_chunk(base::ByteBuffer& out) { out.append("0\r\n\r\n", 5); }

// The fields every answer from the cache ends with, and the blank line: Content-Length (when
// content_length >= 0; the 304, 416 and multipart heads write their own), Age, Via,
// X-Request-Id, then "Connection: close" when close, "Connection: keep-alive" for a
// keep-alive HTTP/1.0 client. Written at one cursor into room reserved once (a fifth of a
// hit's writing was each append's capacity check, piece by piece), and inline: out of line,
// with a cursor writer's per-piece checks, it cost a hit 1.4% more instructions
// (perf/instructions --path /cached).
struct HitFields {
  int64_t content_length = -1;
  uint64_t age_s = 0;
  std::string_view request_id;
  bool close = false;
  bool http10 = false;
};
inline void hit_fields(base::ByteBuffer& out, const HitFields& f) {
  constexpr size_t kFixedBytes = 160;  // the literals below and two 20-digit numbers
  char* const start = out.reserve_back(kFixedBytes + f.request_id.size());
  char* p = start;
  auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  if (f.content_length >= 0) {
    put("Content-Length: ");
    p = std::to_chars(p, p + 20, static_cast<uint64_t>(f.content_length)).ptr;
    put(kCrlf);
  }
  put("Age: ");
  p = std::to_chars(p, p + 20, f.age_s).ptr;
  put("\r\nVia: 1.1 ringmaster\r\nX-Request-Id: ");
  put(f.request_id);
  if (f.close) {
    put("\r\nConnection: close\r\n\r\n");
  } else if (f.http10) {
    put("\r\nConnection: keep-alive\r\n\r\n");
  } else {
    put("\r\n\r\n");
  }
  out.commit(static_cast<size_t>(p - start));
}

}  // namespace ringmaster::http::wire
