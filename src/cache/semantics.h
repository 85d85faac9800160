// cache internals: the small text tools the HTTP caching rules are written with. Everything
// here works on string_views over the caller's header fields and allocates nothing, because
// it runs on the hit path (Vary matching, conditional requests) as well as on stores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ringmaster/cache/cache.h"

namespace ringmaster::cache::detail {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Index just past the quoted-string that opens at s[i] == '"' (backslash escapes honoured);
// s.size() when it is unterminated.
inline size_t skip_quoted(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// Calls f(element) for each trimmed, non-empty element of a comma-separated list
// (RFC 9110 5.6.1); commas inside quoted strings do not split.
template <class F>
void for_each_element(std::string_view list, F&& f) {
  size_t start = 0;
  size_t i = 0;
  while (i <= list.size()) {
    if (i == list.size() || list[i] == ',') {
      std::string_view element = trim(list.substr(start, i - start));
      if (!element.empty()) f(element);
      start = ++i;
    } else if (list[i] == '"') {
      i = skip_quoted(list, i);
    } else {
      ++i;
    }
  }
}

// A Cache-Control directive (RFC 9111 5.2): name, and the argument as token or the inside
// of a quoted-string (escapes left as sent: no argument we interpret may contain one).
struct Directive {
  std::string_view name;
  std::string_view argument;
  bool has_argument = false;
};

template <class F>
void for_each_directive(std::string_view value, F&& f) {
  for_each_element(value, [&](std::string_view element) {
    Directive d;
    size_t eq = element.find('=');
    if (eq == std::string_view::npos) {
      d.name = element;
    } else {
      d.name = trim(element.substr(0, eq));
      std::string_view arg = trim(element.substr(eq + 1));
      if (arg.size() >= 2 && arg.front() == '"' && arg.back() == '"') arg = arg.substr(1, arg.size() - 2);
      d.argument = arg;
      d.has_argument = true;
    }
    if (!d.name.empty()) f(d);
  });
}

// delta-seconds (RFC 9111 1.2.2): digits only, at least one; values past 2^31 saturate.
inline bool parse_delta_seconds(std::string_view s, int64_t& seconds) {
  constexpr int64_t kMax = int64_t{1} << 31;
  if (s.empty()) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
    if (v > kMax) v = kMax;
  }
  seconds = v;
  return true;
}

// Calls f(line, name, value) for each field line of a stored head ("Name: value\r\n";
// `line` includes the CRLF), after the status line.
template <class F>
void for_each_stored_field(const Entry& e, F&& f) {
  std::string_view head = e.head;
  size_t line_start = head.find("\r\n");  // skip the status line
  if (line_start == std::string_view::npos) return;
  line_start += 2;
  while (line_start < head.size()) {
    size_t line_end = head.find("\r\n", line_start);
    if (line_end == std::string_view::npos) break;
    std::string_view line = head.substr(line_start, line_end + 2 - line_start);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      f(line, line.substr(0, colon), trim(line.substr(colon + 1, line.size() - 2 - (colon + 1))));
    }
    line_start = line_end + 2;
  }
}

// HTTP-date (RFC 9110 5.6.7) in any of its three forms — IMF-fixdate, RFC 850, asctime —
// to seconds since the Unix epoch. A two-digit RFC 850 year is 20yy below 70, else 19yy.
bool parse_http_date(std::string_view text, int64_t& unix_seconds);

// The standard reason phrase for a status ("" when it has none we know).
std::string_view reason_phrase(uint16_t status);

// The request's value for a Vary-ed field: every occurrence, trimmed, joined with ", "
// (empty when absent). `name` is lowercase.
void join_field_values(const Fields* fields, std::string_view name, std::string& out);
// Whether the request's occurrences of `name`, joined as join_field_values would, equal
// `stored` — computed without building the joined string.
bool field_values_equal(const Fields* fields, std::string_view name, std::string_view stored);
// Whether every Vary-ed field of the entry has the same value in `fields`.
bool vary_matches(const Entry& e, const Fields* fields);

}  // namespace ringmaster::cache::detail
