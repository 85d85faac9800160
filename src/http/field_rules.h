// Character classes and field-value grammar shared by the request and response parsers.
// Everything here is a pure function over bytes the parser already owns: no allocation, no
// state. Char classes are 256-entry tables so a check costs one load per byte and no
// branches on the character's range.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace ringmaster::http::detail {

using CharTable = std::array<bool, 256>;

constexpr bool is_alpha(unsigned c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(unsigned c) { return c >= '0' && c <= '9'; }
constexpr bool is_hex(unsigned c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 9110 5.6.2 tchar: the bytes of a token (field names, methods, list elements).
inline constexpr CharTable kTchar = [] {
  CharTable t{};
  for (unsigned c = 0; c < 256; ++c) {
    t[c] = is_alpha(c) || is_digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                             std::string_view::npos;
  }
  return t;
}();

// RFC 9110 5.5 field-content plus the SP/HTAB allowed between its pieces: VCHAR, obs-text,
// SP, HTAB. Every other control (CR, LF, NUL, DEL, ...) is a smuggling vector: reject.
inline constexpr CharTable kFieldValueChar = [] {
  CharTable t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
  return t;
}();

// Bytes allowed in a request-target: visible ASCII only. '#' is excluded because a fragment
// never belongs on the wire (RFC 9112 3.2) and backends disagree on what follows it.
// Characters RFC 3986 wants percent-encoded but real clients send raw ('|', '{', '"', ...)
// are let through, as nginx does: the backend decides what they mean.
inline constexpr CharTable kTargetChar = [] {
  CharTable t{};
  for (unsigned c = 0x21; c < 0x7f; ++c) t[c] = c != '#';
  return t;
}();

// RFC 3986 reg-name: unreserved / sub-delims / pct-encoded ('%' checked separately). An IPv4
// literal is a subset of it.
inline constexpr CharTable kRegNameChar = [] {
  CharTable t{};
  for (unsigned c = 0; c < 256; ++c) {
    t[c] = is_alpha(c) || is_digit(c) ||
           std::string_view("-._~!$&'()*+,;=%").find(static_cast<char>(c)) != std::string_view::npos;
  }
  return t;
}();

inline constexpr std::array<uint8_t, 256> kLower = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = static_cast<uint8_t>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return t;
}();

inline bool all_of(std::string_view s, const CharTable& table) {
  for (unsigned char c : s) {
    if (!table[c]) return false;
  }
  return true;
}

// Word-at-a-time prefilters for the two long strings of a head (field values and the
// request-target). Each 8-byte word is tested with a few ALU operations for "might hold a
// byte outside the class"; only such words (rare in real traffic) go through the exact
// table. The tests are the classic exact presence tests (Hacker's Delight 6-1):
//   has_less(w, n): some byte < n (n <= 128);  has_byte(w, c): some byte == c.
namespace swar {
inline constexpr uint64_t kOnes = 0x0101010101010101ull;
inline constexpr uint64_t kHigh = 0x8080808080808080ull;
inline uint64_t load(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
inline uint64_t has_less(uint64_t w, uint8_t n) { return (w - kOnes * n) & ~w & kHigh; }
inline uint64_t has_byte(uint64_t w, uint8_t c) {
  uint64_t x = w ^ (kOnes * c);
  return (x - kOnes) & ~x & kHigh;
}
}  // namespace swar

// Runs word_ok over s in 8-byte words; a last partial word is taken as the final 8 bytes
// of s (overlapping the previous word) so no byte-at-a-time tail is needed. Strings under
// 8 bytes use the table.
template <class WordOk>
inline bool all_words(std::string_view s, const CharTable& table, WordOk word_ok) {
  const char* p = s.data();
  size_t n = s.size();
  if (n < 8) return all_of(s, table);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    if (!word_ok(p + i)) return false;
  }
  return (n & 7) == 0 || word_ok(p + n - 8);
}

// field-content: every byte in kFieldValueChar. HTAB is the one allowed control byte, so a
// word holding one takes the exact table path.
inline bool is_field_value(std::string_view s) {
  return all_words(s, kFieldValueChar, [](const char* p) {
    uint64_t w = swar::load(p);
    return (swar::has_less(w, 0x20) | swar::has_byte(w, 0x7f)) == 0 || all_of({p, 8}, kFieldValueChar);
  });
}

// request-target: every byte in kTargetChar (0x21-0x7e except '#'); exact without a table.
inline bool is_target(std::string_view s) {
  return all_words(s, kTargetChar, [](const char* p) {
    uint64_t w = swar::load(p);
    return (swar::has_less(w, 0x21) | (w & swar::kHigh) | swar::has_byte(w, 0x7f) | swar::has_byte(w, '#')) == 0;
  });
}

// Case-insensitive equality against a lowercase literal (every caller passes one).
inline bool iequals_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (kLower[static_cast<unsigned char>(s[i])] != static_cast<unsigned char>(lower[i])) return false;
  }
  return true;
}

// Case-insensitive equality of two arbitrary strings (Connection tokens against field names).
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (kLower[static_cast<unsigned char>(a[i])] != kLower[static_cast<unsigned char>(b[i])]) return false;
  }
  return true;
}

inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trim_ows(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && is_ows(s[b])) ++b;
  while (e > b && is_ows(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// 1*DIGIT that fits in uint64_t: no sign, no whitespace, no list. False on overflow.
inline bool parse_decimal(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (unsigned char c : s) {
    if (!is_digit(c)) return false;
    uint64_t d = c - '0';
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

// uri-host [ ":" port ] as used in Host and in an absolute-form authority (RFC 9110 7.2):
// a reg-name or IPv4 literal, or a bracketed IPv6 literal; the port is 1-5 digits <= 65535.
// No userinfo: '@' is not a host character.
inline bool is_valid_host_port(std::string_view s) {
  if (s.empty()) return false;
  size_t host_end;
  if (s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close < 3) return false;  // at least "[::]"
    bool colon = false;
    for (size_t i = 1; i < close; ++i) {
      unsigned char c = s[i];
      if (c == ':') {
        colon = true;
      } else if (!is_hex(c) && c != '.') {
        return false;
      }
    }
    if (!colon) return false;
    host_end = close + 1;
  } else {
    host_end = s.find(':');
    if (host_end == std::string_view::npos) host_end = s.size();
    if (host_end == 0) return false;
    for (size_t i = 0; i < host_end; ++i) {
      unsigned char c = s[i];
      if (!kRegNameChar[c]) return false;
      if (c == '%' && (i + 2 >= host_end || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))) return false;
    }
  }
  if (host_end == s.size()) return true;
  if (s[host_end] != ':') return false;
  std::string_view port = s.substr(host_end + 1);
  uint64_t v = 0;
  return port.size() <= 5 && parse_decimal(port, v) && v <= 65535;
}

// Calls f(token) for each element of a comma-separated list (RFC 9110 5.6.1), skipping empty
// elements as the list rule allows. False when an element is not a single token.
template <class F>
inline bool for_each_token(std::string_view list, F&& f) {
  size_t i = 0;
  while (i <= list.size()) {
    size_t comma = list.find(',', i);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view element = trim_ows(list.substr(i, comma - i));
    if (!element.empty()) {
      if (!all_of(element, kTchar)) return false;
      f(element);
    }
    i = comma + 1;
  }
  return true;
}

// Fields the proxy treats specially. Anything not listed is end-to-end and copied.
enum class FieldKind : uint8_t {
  other,
  host,
  content_length,
  transfer_encoding,
  connection,
  keep_alive,
  proxy_connection,
  te,
  trailer,
  upgrade,
  http2_settings,
  expect,
  x_forwarded_for,
  x_forwarded_proto,
  x_request_id,  // the proxy's own (README "Request id"): never copied as a plain field
  via,
};

// A switch on the length first: most end-to-end names are rejected after one compare.
inline FieldKind classify_field(std::string_view name) {
  switch (name.size()) {
    case 2:
      if (iequals_lower(name, "te")) return FieldKind::te;
      break;
    case 3:
      if (iequals_lower(name, "via")) return FieldKind::via;
      break;
    case 4:
      if (iequals_lower(name, "host")) return FieldKind::host;
      break;
    case 6:
      if (iequals_lower(name, "expect")) return FieldKind::expect;
      break;
    case 7:
      if (iequals_lower(name, "trailer")) return FieldKind::trailer;
      if (iequals_lower(name, "upgrade")) return FieldKind::upgrade;
      break;
    case 10:
      if (iequals_lower(name, "connection")) return FieldKind::connection;
      if (iequals_lower(name, "keep-alive")) return FieldKind::keep_alive;
      break;
    case 12:
      if (iequals_lower(name, "x-request-id")) return FieldKind::x_request_id;
      break;
    case 14:
      if (iequals_lower(name, "content-length")) return FieldKind::content_length;
      if (iequals_lower(name, "http2-settings")) return FieldKind::http2_settings;
      break;
    case 15:
      if (iequals_lower(name, "x-forwarded-for")) return FieldKind::x_forwarded_for;
      break;
    case 16:
      if (iequals_lower(name, "proxy-connection")) return FieldKind::proxy_connection;
      break;
    case 17:
      if (iequals_lower(name, "transfer-encoding")) return FieldKind::transfer_encoding;
      if (iequals_lower(name, "x-forwarded-proto")) return FieldKind::x_forwarded_proto;
      break;
    default:
      break;
  }
  return FieldKind::other;
}

// What a Transfer-Encoding value means for us.
//   chunked:     exactly the token "chunked" (any case): the only coding we de-frame.
//   unsupported: a clean list of registered codings ending in chunked ("gzip, chunked"):
//                well-formed, but we would have to forward a coding we cannot verify, so it
//                is refused as not implemented (501 for a request, RFC 9112 6.1).
//   invalid:     everything else: chunked not last or repeated, unknown or empty codings,
//                parameters, junk. The body length is unknowable: 400 (RFC 9112 6.3),
//                never a guess another hop might make differently.
enum class TransferCoding : uint8_t { chunked, unsupported, invalid };

inline TransferCoding classify_transfer_encoding(std::string_view value) {
  if (iequals_lower(value, "chunked")) return TransferCoding::chunked;
  size_t count = 0;
  size_t chunked_at = 0;
  bool known = true;
  bool ok = for_each_token(value, [&](std::string_view coding) {
    ++count;
    if (iequals_lower(coding, "chunked")) {
      if (chunked_at == 0) chunked_at = count;
      else known = false;  // chunked twice
      return;
    }
    if (!iequals_lower(coding, "gzip") && !iequals_lower(coding, "deflate") &&
        !iequals_lower(coding, "compress") && !iequals_lower(coding, "x-gzip") &&
        !iequals_lower(coding, "x-compress")) {
      known = false;
    }
  });
  if (ok && known && count > 1 && chunked_at == count) return TransferCoding::unsupported;
  return TransferCoding::invalid;
}

}  // namespace ringmaster::http::detail
