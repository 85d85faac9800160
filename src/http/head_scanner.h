// HeadScanner: a byte-level check of a head's line structure that runs just ahead of llhttp.
//
// Why it exists: llhttp 8.1.0, even with LLHTTP_STRICT_MODE, accepts things a proxy must not
// (all verified against the Debian build this project links):
//   * obs-fold: "X: a\r\n b\r\n" is accepted and delivered as two value spans, "a" and " b",
//     exactly as if the input had been split between them, so no callback can tell;
//   * a bare LF ending the request line or the status line ("GET / HTTP/1.1\nHost: ..."),
//     and a bare LF as the final empty line ("...\r\n\n"), also at the end of trailers;
//   * other protocols and versions: "GET / RTSP/1.0", "HTTP/2.0", "HTTP/0.9", and a request
//     line with no version at all ("GET /\r\n");
//   * double spaces in the request line, and status codes outside 100-599 or not three
//     digits in a status line, and control bytes in the reason phrase.
// Rather than patch llhttp, the parsers feed every head byte through this scanner first and
// hand llhttp only the bytes before the first problem the scanner finds, so an error is
// always reported at the first bad byte whichever check finds it, and the result does not
// depend on how the input was split. The scanner also enforces the head's size limits, so
// llhttp (and the parser's copy of the head) never sees more than the limits allow.
//
// Cost: the start line is walked byte by byte (it is short); field lines are skipped with
// a vector search for LF, so a typical head costs one pass plus a few branches per line.
// Bare CRs inside field lines are left to llhttp, which rejects them all in strict mode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "http/field_rules.h"

namespace ringmaster::http::detail {

// First byte equal to a or b in [p, end), or end. Inline, because head lines are short
// (tens of bytes) and a libc memchr call costs more to set up than it saves on them. SSE2
// is baseline on x86-64; elsewhere the plain loop is used.
inline const unsigned char* find_either(const unsigned char* p, const unsigned char* end, unsigned char a,
                                        unsigned char b) {
#if defined(__SSE2__)
  const __m128i va = _mm_set1_epi8(static_cast<char>(a));
  const __m128i vb = _mm_set1_epi8(static_cast<char>(b));
  for (; end - p >= 16; p += 16) {
    __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(block, va), _mm_cmpeq_epi8(block, vb));
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(hit));
    if (mask != 0) return p + __builtin_ctz(mask);
  }
#endif
  while (p < end && *p != a && *p != b) ++p;
  return p;
}

inline const unsigned char* find_lf(const unsigned char* p, const unsigned char* end) {
  return find_either(p, end, '\n', '\n');
}

class HeadScanner {
 public:
  enum class Mode : uint8_t { request, response, trailers };
  enum class Verdict : uint8_t { need_more, end, error };
  enum class Error : uint8_t {
    none,
    bare_lf,
    bare_cr,
    obs_fold,
    start_line_too_long,
    head_too_large,
    too_many_fields,
    bad_start_line,
    bad_version,
    unsupported_version,
    bad_status_code,
    bad_reason,
  };
  // need_more: every byte given was scanned (offset == len). end: the head ends just before
  // offset (after its final LF). error: the byte at offset is the first bad one.
  struct Result {
    Verdict verdict;
    size_t offset;
  };

  void reset(Mode mode, uint32_t start_line_bytes_max, uint32_t bytes_max, uint32_t fields_max) {
    state_ = mode == Mode::request ? State::request_start
             : mode == Mode::response ? State::proto
                                      : State::line_start;
    error_ = Error::none;
    proto_index_ = 0;
    major_ = 0;
    code_digits_ = 0;
    status_code_ = 0;
    is_response_ = mode == Mode::response;
    prev_cr_ = false;
    start_line_bytes_ = 0;
    scanned_ = 0;
    fields_ = 0;
    start_line_bytes_max_ = start_line_bytes_max;
    bytes_max_ = bytes_max;
    fields_max_ = fields_max;
  }

  Error error() const { return error_; }

  Result scan(const char* data, size_t len) {
    if (error_ != Error::none) return {Verdict::error, 0};
    // Never look past the head-size limit: the byte after it is an error by itself.
    size_t room = bytes_max_ - scanned_;
    size_t window = len < room ? len : room;
    Result r = scan_window(reinterpret_cast<const unsigned char*>(data), window);
    if (r.verdict == Verdict::need_more && window < len) r = fail(Error::head_too_large, window);
    scanned_ += static_cast<uint32_t>(r.verdict == Verdict::need_more ? window : r.offset);
    return r;
  }

 private:
  enum class State : uint8_t {
    request_start,  // before the request line: empty lines (CRLF) are skipped (RFC 9112 2.2)
    leading_lf,     // CR of such an empty line seen
    method,
    target,
    proto,  // matching "HTTP/"
    major,
    dot,
    minor,
    start_cr,     // the start line's CR
    start_lf,     // the start line's LF
    status_sp,    // response: SP after the version
    status_code,  // response: three digits
    after_code,   // response: SP before the reason, or CR
    reason,
    line_start,  // first byte of a field line, or the CR of the final empty line
    in_line,
    final_lf,
  };

  Result fail(Error e, size_t offset) {
    error_ = e;
    return {Verdict::error, offset};
  }

  bool count_start_line_byte() { return ++start_line_bytes_ <= start_line_bytes_max_; }

  // The common case, a well-formed request line wholly inside this read, checked in one
  // straight pass. Returns the bytes it accepted (the line with its CRLF), or 0 to leave the
  // line to the byte-at-a-time machine below, which accepts exactly the same lines and
  // finds the exact offset of the first problem in the others.
  size_t fast_request_line(const unsigned char* p, size_t n) {
    const unsigned char* lf = find_lf(p, p + n);
    if (lf == p + n || lf == p || lf[-1] != '\r') return 0;
    size_t line = static_cast<size_t>(lf - p) - 1;  // without CRLF
    if (line < 12 || line > start_line_bytes_max_) return 0;
    const unsigned char* version = p + line - 9;  // " HTTP/1.x"
    if (std::memcmp(version, " HTTP/1.", 8) != 0 || (version[8] != '0' && version[8] != '1')) return 0;
    // method SP target: one SP, a non-empty method and target, no CR in either.
    const unsigned char* sp = find_either(p, version, ' ', '\r');
    if (sp == p || sp == version || *sp != ' ' || sp + 1 == version) return 0;
    if (find_either(sp + 1, version, ' ', '\r') != version) return 0;
    start_line_bytes_ = static_cast<uint32_t>(line);
    state_ = State::line_start;
    return line + 2;
  }

  // The same for a status line: "HTTP/1.x NNN[ reason]" CRLF.
  size_t fast_status_line(const unsigned char* p, size_t n) {
    const unsigned char* lf = find_lf(p, p + n);
    if (lf == p + n || lf == p || lf[-1] != '\r') return 0;
    size_t line = static_cast<size_t>(lf - p) - 1;
    if (line < 12 || std::memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ') return 0;
    if (!is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11])) return 0;
    unsigned code = (p[9] - '0') * 100u + (p[10] - '0') * 10u + (p[11] - '0');
    if (code < 100 || code > 599) return 0;
    if (line > 12 && (p[12] != ' ' || !is_field_value({reinterpret_cast<const char*>(p) + 13, line - 13}))) return 0;
    status_code_ = static_cast<uint16_t>(code);
    start_line_bytes_ = static_cast<uint32_t>(line);
    state_ = State::line_start;
    return line + 2;
  }

  Result scan_window(const unsigned char* p, size_t n) {
    size_t i = 0;
    if (state_ == State::request_start && n > 0 && p[0] != '\r') {
      i = fast_request_line(p, n);
    } else if (state_ == State::proto && is_response_ && proto_index_ == 0) {
      i = fast_status_line(p, n);
    }
    while (i < n) {
      unsigned char c = p[i];
      switch (state_) {
        case State::request_start:
          if (c == '\r') {
            state_ = State::leading_lf;
            ++i;
            continue;
          }
          if (c == '\n') return fail(Error::bare_lf, i);
          state_ = State::method;
          continue;  // reprocess as the first method byte
        case State::leading_lf:
          if (c != '\n') return fail(Error::bare_cr, i);
          state_ = State::request_start;
          ++i;
          continue;
        case State::method:
          if (c == ' ') {
            if (start_line_bytes_ == 0) return fail(Error::bad_start_line, i);
            state_ = State::target;
          } else if (c == '\r' || c == '\n') {
            return fail(Error::bad_start_line, i);
          }
          if (!count_start_line_byte()) return fail(Error::start_line_too_long, i);
          ++i;
          continue;
        case State::target: {
          // The long part of a request line: skip ordinary bytes in a tight loop.
          size_t j = i;
          while (j < n && p[j] != ' ' && p[j] != '\r' && p[j] != '\n') ++j;
          size_t run = j - i;
          if (start_line_bytes_ + run > start_line_bytes_max_) {
            return fail(Error::start_line_too_long, i + (start_line_bytes_max_ - start_line_bytes_));
          }
          start_line_bytes_ += static_cast<uint32_t>(run);
          i = j;
          if (i == n) continue;
          if (p[i] != ' ') return fail(Error::bad_start_line, i);  // no version: HTTP/0.9 style
          if (!count_start_line_byte()) return fail(Error::start_line_too_long, i);
          state_ = State::proto;
          ++i;
          continue;
        }
        case State::proto:
          if (c != static_cast<unsigned char>("HTTP/"[proto_index_])) return fail(Error::bad_start_line, i);
          if (!count_start_line_byte()) return fail(Error::start_line_too_long, i);
          if (++proto_index_ == 5) state_ = State::major;
          ++i;
          continue;
        case State::major:
          if (!is_digit(c)) return fail(Error::bad_version, i);
          if (!count_start_line_byte()) return fail(Error::start_line_too_long, i);
          major_ = static_cast<uint8_t>(c - '0');
          state_ = State::dot;
          ++i;
          continue;
        case State::dot:
          if (c != '.') return fail(Error::bad_version, i);
          if (!count_start_line_byte()) return fail(Error::start_line_too_long, i);
          state_ = State::minor;
          ++i;
          continue;
        case State::minor:
          if (!is_digit(c)) return fail(Error::bad_version, i);
          // Judged at the minor digit, before llhttp sees it: llhttp rejects "1.2" itself at
          // this very byte, as a generic error, and we want 505 for a well-formed version we
          // do not speak.
          if (major_ != 1 || c > '1') return fail(Error::unsupported_version, i);
          if (!count_start_line_byte()) return fail(Error::start_line_too_long, i);
          state_ = is_response_ ? State::status_sp : State::start_cr;
          ++i;
          continue;
        case State::start_cr:
          if (c != '\r') return fail(c == '\n' ? Error::bare_lf : Error::bad_version, i);
          state_ = State::start_lf;
          ++i;
          continue;
        case State::start_lf:
          if (c != '\n') return fail(Error::bare_cr, i);
          state_ = State::line_start;
          ++i;
          continue;
        case State::status_sp:
          if (c != ' ') return fail(Error::bad_start_line, i);
          state_ = State::status_code;
          ++i;
          continue;
        case State::status_code:
          if (!is_digit(c)) return fail(Error::bad_status_code, i);
          status_code_ = static_cast<uint16_t>(status_code_ * 10 + (c - '0'));
          if (++code_digits_ == 3) {
            if (status_code_ < 100 || status_code_ > 599) return fail(Error::bad_status_code, i);
            state_ = State::after_code;
          }
          ++i;
          continue;
        case State::after_code:
          // The SP before an empty reason is required by RFC 9112 4, but servers that omit
          // it exist and nothing is ambiguous about "HTTP/1.1 204\r\n": accept it.
          if (c == ' ') {
            state_ = State::reason;
          } else if (c == '\r') {
            state_ = State::start_lf;
          } else {
            return fail(c == '\n' ? Error::bare_lf : Error::bad_status_code, i);
          }
          ++i;
          continue;
        case State::reason:
          if (c == '\r') {
            state_ = State::start_lf;
          } else if (c == '\n') {
            return fail(Error::bare_lf, i);
          } else if (!kFieldValueChar[c]) {
            return fail(Error::bad_reason, i);
          }
          ++i;
          continue;
        case State::line_start:
          if (c == '\r') {
            state_ = State::final_lf;
            ++i;
            continue;
          }
          if (c == '\n') return fail(Error::bare_lf, i);
          if (c == ' ' || c == '\t') return fail(Error::obs_fold, i);
          if (++fields_ > fields_max_) return fail(Error::too_many_fields, i);
          state_ = State::in_line;
          prev_cr_ = false;
          continue;
        case State::in_line:
          // Runs from line to line while each starts with an ordinary byte (the common
          // case), leaving only for the end of the read or a line start that needs a look.
          for (;;) {
            const unsigned char* lf = find_lf(p + i, p + n);
            if (lf == p + n) {
              prev_cr_ = p[n - 1] == '\r';
              i = n;
              break;
            }
            size_t at = static_cast<size_t>(lf - p);
            bool cr_before = at > i ? p[at - 1] == '\r' : prev_cr_;
            if (!cr_before) return fail(Error::bare_lf, at);
            i = at + 1;
            unsigned char next = i < n ? p[i] : '\r';
            if (i == n || next == '\r' || next == '\n' || next == ' ' || next == '\t') {
              state_ = State::line_start;
              break;
            }
            if (++fields_ > fields_max_) return fail(Error::too_many_fields, i);
            prev_cr_ = false;
          }
          continue;
        case State::final_lf:
          if (c != '\n') return fail(Error::bare_cr, i);
          return {Verdict::end, i + 1};
      }
    }
    return {Verdict::need_more, n};
  }

  State state_ = State::request_start;
  Error error_ = Error::none;
  uint8_t proto_index_ = 0;
  uint8_t major_ = 0;
  uint8_t code_digits_ = 0;
  bool is_response_ = false;
  bool prev_cr_ = false;  // the last byte of the previous call, inside a field line, was CR
  uint16_t status_code_ = 0;
  uint32_t start_line_bytes_ = 0;
  uint32_t scanned_ = 0;
  uint32_t fields_ = 0;
  uint32_t start_line_bytes_max_ = 0;
  uint32_t bytes_max_ = 0;
  uint32_t fields_max_ = 0;
};

}  // namespace ringmaster::http::detail
