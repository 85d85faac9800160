// The HTTP rules of a shared cache (RFC 9111), as pure functions over header fields: which
// requests may be answered from or stored into the cache, whether and for how long a
// response may be stored, Vary matching and conditional requests. Nothing here allocates
// except primary_key (into the caller's reused string) and join_field_values (stores only).
//
// Where the RFC leaves a choice we take the conservative one, because a wrong hit is worse
// than a miss: invalid freshness information means "not stored"; an Age that is not one
// non-negative integer (a list, a sign, a fraction, a parameter) means stale; a response already as old as its lifetime is not
// stored fresh. What needs revalidation before use ("no-cache", with or without a field
// list, or already stale) is stored only when it has a validator, with no freshness: each
// use asks the origin first. We never serve stale without revalidating.
//
// Freshness without explicit information is heuristic only as RFC 9111 4.2.2 allows: for a
// heuristically cacheable status (or "public"), 10% of the time since Last-Modified, at most
// a day. An operator may instead give every such response a fixed lifetime (--cache-ttl), an
// explicit opt-in that is safe only with content-version invalidation.
#include <cstring>

#include "cache/semantics.h"
#include "ringmaster/cache/cache.h"
#include "ringmaster/http/wire.h"

namespace ringmaster::cache {

using detail::Directive;
using detail::iequals;
using detail::trim;

// ---- Request side ----

// Request directives other than no-cache / no-store (max-age, min-fresh, max-stale) are not
// honoured, as nginx does not: a browser reload sends "max-age=0", and turning every reload
// into an origin request would defeat the cache; "no-cache" (a hard reload) does bypass it.
RequestPolicy classify_request(const RequestInfo& request) {
  RequestPolicy p;
  if (!request.is_get && !request.is_head) return p;
  p.lookup = true;
  p.store = request.is_get;  // a HEAD response has no body to store
  if (request.fields == nullptr) return p;
  for (const HeaderField& f : *request.fields) {
    if (iequals(f.name, "authorization")) {
      // Served only by the origin; the response may still be stored if it says it is shared.
      p.has_authorization = true;
      p.lookup = false;
    } else if (iequals(f.name, "range")) {
      // A partial response is not stored; a stored whole one answers the range.
      p.store = false;
      p.has_range = request.is_get;
    } else if (iequals(f.name, "cache-control")) {
      detail::for_each_directive(f.value, [&](const Directive& d) {
        if (iequals(d.name, "no-cache")) {
          p.lookup = false;
        } else if (iequals(d.name, "no-store")) {
          p.lookup = false;
          p.store = false;
        }
      });
    } else if (iequals(f.name, "pragma")) {
      detail::for_each_element(f.value, [&](std::string_view element) {
        if (iequals(element, "no-cache")) p.lookup = false;
      });
    }
  }
  return p;
}

void primary_key(const RequestInfo& request, std::string& out) {
  // Host names are case-insensitive; the target is compared exactly. Sized once and written
  // in place: a push_back per host byte was 5% of a cache hit's user instructions.
  const size_t host_bytes = request.host.size();
  out.resize(host_bytes + 1 + request.target.size());
  char* p = out.data();
  for (size_t i = 0; i < host_bytes; ++i) p[i] = detail::ascii_lower(request.host[i]);
  p[host_bytes] = '\n';
  if (!request.target.empty()) std::memcpy(p + host_bytes + 1, request.target.data(), request.target.size());
}

namespace {

// A wyhash-style hash: 16 bytes per step folded with 64x64->128 multiplies. Keys are
// short (host + path), so the point is few instructions per byte and good low and high bits
// (the cache picks its shard from the high half and its bucket from the low bits).
constexpr uint64_t kP0 = 0xa0761d6478bd642full;
constexpr uint64_t kP1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kP2 = 0x8ebc6af09c88c6e3ull;

inline uint64_t mix(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t read8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t read4(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

uint64_t hash_key(std::string_view key) {
  const char* p = key.data();
  size_t n = key.size();
  uint64_t seed = kP0 ^ mix(n ^ kP1, kP2);
  uint64_t a = 0;
  uint64_t b = 0;
  if (n <= 16) {
    if (n >= 4) {
      a = (read4(p) << 32) | read4(p + ((n >> 3) << 2));
      b = (read4(p + n - 4) << 32) | read4(p + n - 4 - ((n >> 3) << 2));
    } else if (n > 0) {
      a = (static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16) |
          (static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8) | static_cast<uint8_t>(p[n - 1]);
    }
  } else {
    size_t i = n;
    while (i > 16) {
      seed = mix(read8(p) ^ kP1, read8(p + 8) ^ seed);
      p += 16;
      i -= 16;
    }
    a = read8(p + i - 16);
    b = read8(p + i - 8);
  }
  return mix(kP1 ^ n, mix(a ^ kP1, b ^ seed));
}

// ---- Invalidation ----

bool invalidates_on_success(std::string_view method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS" && method != "TRACE";
}

bool reference_key(std::string_view host, std::string_view request_target, std::string_view reference,
                   std::string& out) {
  std::string_view ref = trim(reference);
  ref = ref.substr(0, ref.find('#'));
  if (ref.empty()) return false;
  // Absolute (http only: the proxy serves http) or network-path: the authority must be ours.
  std::string_view authority;
  bool has_authority = false;
  if (ref.size() > 7 && iequals(ref.substr(0, 7), "http://")) {
    ref.remove_prefix(7);
    has_authority = true;
  } else if (ref.substr(0, 2) == "//") {
    ref.remove_prefix(2);
    has_authority = true;
  } else {
    size_t colon = ref.find(':');
    size_t slash = ref.find_first_of("/?");
    if (colon != std::string_view::npos && colon < slash) return false;  // another scheme
  }
  if (has_authority) {
    size_t end = ref.find_first_of("/?");
    authority = ref.substr(0, end);
    if (!iequals(authority, host)) return false;
    ref = end == std::string_view::npos ? std::string_view("/") : ref.substr(end);
  }
  if (ref.find("/.") != std::string_view::npos || ref.substr(0, 1) == ".") return false;
  out.clear();
  for (char c : host) out.push_back(detail::ascii_lower(c));
  out.push_back('\n');
  if (ref.front() == '/') {
    out.append(ref);
  } else if (has_authority) {
    out.push_back('/');  // "http://host?q": the root's query
    out.append(ref);
  } else if (ref.front() == '?') {
    out.append(request_target.substr(0, request_target.find('?')));
    out.append(ref);
  } else {
    // A relative path: merged with the directory of the request's path.
    std::string_view path = request_target.substr(0, request_target.find('?'));
    out.append(path.substr(0, path.rfind('/') + 1));
    out.append(ref);
  }
  return true;
}

// ---- Response side ----

namespace {

// RFC 9111 4.2.2: a heuristic lifetime is a fraction of the time since Last-Modified, capped.
constexpr int64_t kHeuristicFractionDivisor = 10;
constexpr int64_t kHeuristicMaxMs = 24 * 3600 * 1000;

bool heuristically_cacheable(uint16_t status) {
  switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
      return true;
    default:
      return false;
  }
}

// What the response's fields say, gathered in one pass.
struct ResponseFacts {
  bool no_store = false;
  bool is_private = false;
  bool no_cache = false;
  bool is_public = false;
  bool must_revalidate = false;
  bool must_understand = false;
  bool has_max_age = false;
  bool max_age_valid = false;
  int64_t max_age_s = 0;
  bool has_s_maxage = false;
  bool s_maxage_valid = false;
  int64_t s_maxage_s = 0;
  bool set_cookie = false;
  // Surrogate-Control (W3C Edge Architecture): directives for surrogates, untargeted or
  // targeted at us; they take precedence over Cache-Control.
  bool surrogate_no_store = false;
  bool surrogate_has_max_age = false;
  bool surrogate_max_age_valid = false;
  int64_t surrogate_max_age_s = 0;
  bool vary_star = false;
  bool has_expires = false;
  std::string_view expires;
  bool has_date = false;
  std::string_view date;
  bool has_etag = false;
  bool has_last_modified = false;
  std::string_view last_modified;
  int age_count = 0;         // Age members seen, over every line
  bool age_valid = true;     // exactly one, a delta-seconds
  int64_t age_s = 0;
};

void read_cache_control(std::string_view value, ResponseFacts& r) {
  detail::for_each_directive(value, [&](const Directive& d) {
    if (iequals(d.name, "no-store")) {
      r.no_store = true;
    } else if (iequals(d.name, "private")) {
      r.is_private = true;  // with a field list too: we cannot store "all but these fields"
    } else if (iequals(d.name, "no-cache")) {
      r.no_cache = true;  // with a field list too: the whole response is revalidated
    } else if (iequals(d.name, "must-understand")) {
      r.must_understand = true;
    } else if (iequals(d.name, "public")) {
      r.is_public = true;
    } else if (iequals(d.name, "must-revalidate") || iequals(d.name, "proxy-revalidate")) {
      r.must_revalidate = true;  // we never serve stale, so this only matters for Authorization
    } else if (iequals(d.name, "s-maxage")) {
      if (!r.has_s_maxage) {  // first occurrence wins (RFC 9111 4.2.1)
        r.has_s_maxage = true;
        r.s_maxage_valid = d.has_argument && detail::parse_delta_seconds(d.argument, r.s_maxage_s);
      }
    } else if (iequals(d.name, "max-age")) {
      if (!r.has_max_age) {
        r.has_max_age = true;
        r.max_age_valid = d.has_argument && detail::parse_delta_seconds(d.argument, r.max_age_s);
      }
    }
  });
}

// "name[=value][;target]": a directive applies when it names no target or names ours.
void read_surrogate_control(std::string_view value, ResponseFacts& r) {
  detail::for_each_directive(value, [&](const Directive& d) {
    std::string_view name = d.name;
    std::string_view argument = d.argument;
    std::string_view target;
    std::string_view& carrier = d.has_argument ? argument : name;
    size_t semi = carrier.find(';');
    if (semi != std::string_view::npos) {
      target = trim(carrier.substr(semi + 1));
      carrier = trim(carrier.substr(0, semi));
    }
    if (!target.empty() && !iequals(target, kSurrogateToken)) return;
    if (iequals(name, "no-store")) {
      r.surrogate_no_store = true;
    } else if (iequals(name, "max-age") && !r.surrogate_has_max_age) {
      r.surrogate_has_max_age = true;
      // "max-age=N[+M]": M is how long it may serve stale; only N is freshness.
      r.surrogate_max_age_valid =
          d.has_argument && detail::parse_delta_seconds(argument.substr(0, argument.find('+')), r.surrogate_max_age_s);
    }
  });
}

ResponseFacts read_response(const Fields& fields) {
  ResponseFacts r;
  for (const HeaderField& f : fields) {
    std::string_view name = f.name;
    if (iequals(name, "cache-control")) {
      read_cache_control(f.value, r);
    } else if (iequals(name, "surrogate-control")) {
      read_surrogate_control(f.value, r);
    } else if (iequals(name, "set-cookie")) {
      r.set_cookie = true;
    } else if (iequals(name, "vary")) {
      detail::for_each_element(f.value, [&](std::string_view element) {
        if (element == "*") r.vary_star = true;
      });
    } else if (iequals(name, "expires")) {
      if (!r.has_expires) {
        r.has_expires = true;
        r.expires = trim(f.value);
      }
    } else if (iequals(name, "date")) {
      if (!r.has_date) {
        r.has_date = true;
        r.date = trim(f.value);
      }
    } else if (iequals(name, "etag")) {
      r.has_etag = true;
    } else if (iequals(name, "last-modified")) {
      if (!r.has_last_modified) {
        r.has_last_modified = true;
        r.last_modified = trim(f.value);
      }
    } else if (iequals(name, "age")) {
      // Age is a singleton. A list (one line "7200, 0" or several lines) says the response
      // passed caches that disagree, or was spliced: which member is true is a guess, and
      // a wrong guess may make an old response look young, so it counts as invalid.
      detail::for_each_element(f.value, [&](std::string_view element) {
        if (++r.age_count > 1 || !detail::parse_delta_seconds(element, r.age_s)) r.age_valid = false;
      });
      if (trim(f.value).empty()) r.age_valid = false;
    }
  }
  return r;
}

StoreDecision refuse(const char* reason) {
  StoreDecision d;
  d.reason = reason;
  return d;
}

// RFC 9111 3 with must-understand: the cache must know the status's semantics.
bool understood_status(uint16_t status) {
  return status != 206 && status != 304 && !detail::reason_phrase(status).empty();
}

// The heuristic lifetime (RFC 9111 4.2.2), 0 when there is none to give.
int64_t heuristic_freshness_ms(const ResponseFacts& r, int64_t now_unix_ms) {
  int64_t modified_s = 0;
  if (!r.has_last_modified || !detail::parse_http_date(r.last_modified, modified_s)) return 0;
  int64_t date_ms = now_unix_ms;
  int64_t date_s = 0;
  if (r.has_date && detail::parse_http_date(r.date, date_s)) date_ms = date_s * 1000;
  int64_t since_ms = date_ms - modified_s * 1000;
  if (since_ms <= 0) return 0;
  int64_t lifetime = since_ms / kHeuristicFractionDivisor;
  return lifetime < kHeuristicMaxMs ? lifetime : kHeuristicMaxMs;
}

}  // namespace

StoreDecision classify_response(uint16_t status, const Fields& response_fields, bool request_has_authorization,
                                int64_t default_ttl_ms, int64_t now_unix_ms) {
  // Final statuses only; a 206 is part of a representation and a 304 an answer to a
  // condition: neither is a whole response to store.
  if (status < 200 || status == 206 || status == 304) return refuse("status");
  ResponseFacts r = read_response(response_fields);
  // must-understand (RFC 9111 5.2.2.3): store only a status we know, and then no-store
  // (which the origin sends along for caches that don't know must-understand) yields.
  if (r.must_understand && !understood_status(status)) return refuse("must-understand");
  if (r.surrogate_no_store) return refuse("surrogate-no-store");
  // A Surrogate-Control max-age addressed to surrogates overrides Cache-Control's no-store
  // (meant for the caches after us) as it overrides its lifetime.
  const bool surrogate_lifetime = r.surrogate_has_max_age && r.surrogate_max_age_valid;
  if (r.no_store && !r.must_understand && !surrogate_lifetime) return refuse("no-store");
  if (r.is_private) return refuse("private");
  if (r.set_cookie) return refuse("set-cookie");
  if (r.vary_star) return refuse("vary-star");
  // RFC 9111 3.5: a shared cache stores a response to an authenticated request only when
  // the origin says it may be shared.
  if (request_has_authorization && !r.is_public && !r.has_s_maxage && !r.must_revalidate) {
    return refuse("authorization");
  }

  // A response that may not be used without revalidation (no-cache, or already stale) is
  // still worth storing when it has a validator: the next request then asks the origin
  // "has it changed?" and a 304 freshens it (RFC 9111 4.3). Without one it is useless.
  int64_t modified_s = 0;
  const bool has_validator =
      r.has_etag || (r.has_last_modified && detail::parse_http_date(r.last_modified, modified_s));
  auto stale_or_refuse = [&](const char* reason) {
    if (!has_validator) return refuse(reason);
    StoreDecision d;
    d.store = true;
    d.reason = reason;
    return d;  // freshness 0: stale from the start
  };
  if (r.no_cache) return stale_or_refuse("no-cache");

  // Lifetime (RFC 9111 4.2.1): s-maxage, then max-age, then Expires - Date; without any,
  // the operator's fixed lifetime if one was asked for, else a heuristic if one is allowed.
  int64_t freshness_ms = 0;
  if (surrogate_lifetime) {
    freshness_ms = r.surrogate_max_age_s * 1000;
  } else if (r.has_s_maxage) {
    if (!r.s_maxage_valid) return refuse("invalid-s-maxage");
    freshness_ms = r.s_maxage_s * 1000;
  } else if (r.has_max_age) {
    if (!r.max_age_valid) return refuse("invalid-max-age");
    freshness_ms = r.max_age_s * 1000;
  } else if (r.has_expires) {
    int64_t expires_s = 0;
    if (!detail::parse_http_date(r.expires, expires_s)) return stale_or_refuse("expired");  // RFC 9111 5.3
    int64_t date_ms = now_unix_ms;
    int64_t date_s = 0;
    if (r.has_date && detail::parse_http_date(r.date, date_s)) date_ms = date_s * 1000;
    freshness_ms = expires_s * 1000 - date_ms;
  } else if (!heuristically_cacheable(status) && !r.is_public) {
    return refuse("status");  // RFC 9111 3: no explicit freshness and no heuristic allowed
  } else if (default_ttl_ms > 0) {
    freshness_ms = default_ttl_ms;
  } else {
    freshness_ms = heuristic_freshness_ms(r, now_unix_ms);
    if (freshness_ms <= 0) return stale_or_refuse("no-freshness");
  }
  if (freshness_ms <= 0) return stale_or_refuse("expired");

  if (!r.age_valid) return stale_or_refuse("invalid-age");
  int64_t initial_age_ms = r.age_s * 1000;
  if (initial_age_ms >= freshness_ms) return stale_or_refuse("stale");

  StoreDecision d;
  d.store = true;
  d.freshness_ms = freshness_ms;
  d.initial_age_ms = initial_age_ms;
  return d;
}

// ---- Dates ----

namespace detail {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap_year(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap_year(y) ? 29 : kDays[m - 1];
}

// A cursor over the date text; every reader fails (returns false) without consuming on error.
class DateReader {
 public:
  explicit DateReader(std::string_view s) : s_(s) {}
  bool done() const { return i_ == s_.size(); }
  bool literal(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view lit) {
    if (s_.substr(i_, lit.size()) != lit) return false;
    i_ += lit.size();
    return true;
  }
  // Exactly `count` digits.
  bool digits(int count, unsigned& out) {
    if (i_ + count > s_.size()) return false;
    unsigned v = 0;
    for (int k = 0; k < count; ++k) {
      char c = s_[i_ + k];
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    i_ += count;
    out = v;
    return true;
  }
  // A run of letters.
  std::string_view word() {
    size_t start = i_;
    while (i_ < s_.size() && ((s_[i_] >= 'a' && s_[i_] <= 'z') || (s_[i_] >= 'A' && s_[i_] <= 'Z'))) ++i_;
    return s_.substr(start, i_ - start);
  }
  // "HH:MM:SS"
  bool time_of_day(unsigned& h, unsigned& m, unsigned& s) {
    return digits(2, h) && literal(':') && digits(2, m) && literal(':') && digits(2, s) && h < 24 && m < 60 &&
           s <= 60;  // 60: a leap second
  }
  bool month(unsigned& out) {
    static constexpr std::string_view kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::string_view w = word();
    for (unsigned k = 0; k < 12; ++k) {
      if (w == kMonths[k]) {
        out = k + 1;
        return true;
      }
    }
    return false;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

bool day_name(std::string_view w, bool long_form) {
  static constexpr std::string_view kShort[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kLong[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                "Friday", "Saturday", "Sunday"};
  for (int k = 0; k < 7; ++k) {
    if (w == (long_form ? kLong[k] : kShort[k])) return true;
  }
  return false;
}

bool assemble(int64_t year, unsigned month, unsigned day, unsigned h, unsigned m, unsigned s, int64_t& out) {
  if (day < 1 || day > days_in_month(year, month)) return false;
  out = days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s;
  return true;
}

}  // namespace

bool parse_http_date(std::string_view text, int64_t& unix_seconds) {
  text = trim(text);
  DateReader r(text);
  std::string_view dayname = r.word();
  unsigned day = 0, month = 0, year = 0, h = 0, m = 0, s = 0;
  if (r.literal(", ")) {
    if (day_name(dayname, false)) {
      // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
      if (r.digits(2, day) && r.literal(' ') && r.month(month) && r.literal(' ') && r.digits(4, year) &&
          r.literal(' ') && r.time_of_day(h, m, s) && r.literal(" GMT") && r.done()) {
        return assemble(year, month, day, h, m, s, unix_seconds);
      }
      return false;
    }
    if (day_name(dayname, true)) {
      // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
      if (r.digits(2, day) && r.literal('-') && r.month(month) && r.literal('-') && r.digits(2, year) &&
          r.literal(' ') && r.time_of_day(h, m, s) && r.literal(" GMT") && r.done()) {
        int64_t full_year = year < 70 ? 2000 + year : 1900 + year;
        return assemble(full_year, month, day, h, m, s, unix_seconds);
      }
    }
    return false;
  }
  // asctime: "Sun Nov  6 08:49:37 1994" (day space-padded)
  if (!day_name(dayname, false) || !r.literal(' ') || !r.month(month) || !r.literal(' ')) return false;
  if (r.literal(' ')) {
    if (!r.digits(1, day)) return false;
  } else if (!r.digits(2, day)) {
    return false;
  }
  if (r.literal(' ') && r.time_of_day(h, m, s) && r.literal(' ') && r.digits(4, year) && r.done()) {
    return assemble(year, month, day, h, m, s, unix_seconds);
  }
  return false;
}

// ---- Vary ----

void join_field_values(const Fields* fields, std::string_view name, std::string& out) {
  out.clear();
  if (fields == nullptr) return;
  bool first = true;
  for (const HeaderField& f : *fields) {
    if (!iequals(f.name, name)) continue;
    if (!first) out.append(", ");
    out.append(trim(f.value));
    first = false;
  }
}

bool field_values_equal(const Fields* fields, std::string_view name, std::string_view stored) {
  size_t pos = 0;
  bool first = true;
  if (fields != nullptr) {
    for (const HeaderField& f : *fields) {
      if (!iequals(f.name, name)) continue;
      if (!first) {
        if (stored.substr(pos, 2) != ", ") return false;
        pos += 2;
      }
      std::string_view v = trim(f.value);
      if (stored.substr(pos, v.size()) != v) return false;
      pos += v.size();
      first = false;
    }
  }
  return pos == stored.size();
}

bool vary_matches(const Entry& e, const Fields* fields) {
  for (size_t i = 0; i < e.vary_names.size(); ++i) {
    if (!field_values_equal(fields, e.vary_names[i], e.vary_values[i])) return false;
  }
  return true;
}

}  // namespace detail

// ---- Conditional requests (RFC 9110 13.1) ----

namespace {

std::string_view strip_weak(std::string_view tag) {
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
  return tag;
}

// Whether an If-None-Match field value lists `etag` (weak comparison) or is "*".
bool etag_list_matches(std::string_view value, std::string_view etag) {
  value = trim(value);
  if (value == "*") return true;  // any current representation: this entry
  std::string_view mine = strip_weak(trim(etag));
  if (mine.size() < 2 || mine.front() != '"') return false;
  size_t i = 0;
  while (i < value.size()) {
    char c = value[i];
    if (c == ',' || detail::is_ows(c)) {
      ++i;
      continue;
    }
    size_t start = i;
    if (value.substr(i, 2) == "W/") i += 2;
    if (i >= value.size() || value[i] != '"') return false;  // malformed: stop, no match
    size_t close = value.find('"', i + 1);
    if (close == std::string_view::npos) return false;
    if (strip_weak(value.substr(start, close + 1 - start)) == mine) return true;
    i = close + 1;
  }
  return false;
}

}  // namespace

bool not_modified(const Entry& e, const Fields& request_fields) {
  bool has_if_none_match = false;
  bool etag_matched = false;
  int if_modified_since_count = 0;
  std::string_view if_modified_since;
  for (const HeaderField& f : request_fields) {
    if (iequals(f.name, "if-none-match")) {
      has_if_none_match = true;
      if (etag_list_matches(f.value, e.etag)) etag_matched = true;
    } else if (iequals(f.name, "if-modified-since")) {
      ++if_modified_since_count;
      if_modified_since = f.value;
    }
  }
  if (has_if_none_match) return etag_matched;  // takes precedence over If-Modified-Since
  // If-Modified-Since: ignored unless exactly one valid HTTP-date (RFC 9110 13.1.3).
  if (if_modified_since_count != 1 || e.last_modified.empty()) return false;
  int64_t since_s = 0;
  int64_t modified_s = 0;
  if (!detail::parse_http_date(if_modified_since, since_s)) return false;
  if (!detail::parse_http_date(e.last_modified, modified_s)) return false;
  return modified_s <= since_s;
}

namespace {

// A decimal without sign, at most 18 digits (no overflow).
bool parse_position(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

// If-Range (RFC 9110 13.1.5): the stored response is current by a strong comparison.
bool if_range_holds(const Entry& e, std::string_view value) {
  value = trim(value);
  if (!value.empty() && (value.front() == '"' || value.substr(0, 2) == "W/")) {
    return value.front() == '"' && !e.etag.empty() && e.etag.front() == '"' && value == e.etag;
  }
  int64_t since = 0;
  int64_t modified = 0;
  return !e.last_modified.empty() && detail::parse_http_date(value, since) &&
         detail::parse_http_date(e.last_modified, modified) && since == modified;
}

}  // namespace

namespace {

enum class RangeSpec { satisfiable, unsatisfiable, invalid };

// One byte-range-spec or suffix-range (RFC 9110 14.1.2) against a body of `length` bytes.
RangeSpec parse_range_spec(std::string_view spec, uint64_t length, ByteRange& range) {
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeSpec::invalid;
  std::string_view first_text = trim(spec.substr(0, dash));
  std::string_view last_text = trim(spec.substr(dash + 1));
  uint64_t first = 0;
  uint64_t last = 0;
  if (first_text.empty()) {  // suffix: the last N bytes
    uint64_t suffix = 0;
    if (!parse_position(last_text, suffix)) return RangeSpec::invalid;
    if (suffix == 0 || length == 0) return RangeSpec::unsatisfiable;
    range.first = suffix >= length ? 0 : length - suffix;
    range.last = length - 1;
    return RangeSpec::satisfiable;
  }
  if (!parse_position(first_text, first)) return RangeSpec::invalid;
  if (last_text.empty()) {
    last = length == 0 ? 0 : length - 1;
  } else if (!parse_position(last_text, last) || last < first) {
    return RangeSpec::invalid;
  }
  if (first >= length) return RangeSpec::unsatisfiable;
  range.first = first;
  range.last = last < length ? last : length - 1;
  return RangeSpec::satisfiable;
}

}  // namespace

RangeAnswer select_range(const Entry& e, const Fields& request_fields, ByteRanges& ranges) {
  ranges.count = 0;
  if (e.status != 200) return RangeAnswer::whole;
  std::string_view spec;
  int range_fields = 0;
  for (const HeaderField& f : request_fields) {
    if (iequals(f.name, "range")) {
      spec = trim(f.value);
      ++range_fields;
    } else if (iequals(f.name, "if-range") && !if_range_holds(e, f.value)) {
      return RangeAnswer::whole;
    }
  }
  if (range_fields != 1 || spec.size() < 6 || !iequals(spec.substr(0, 6), "bytes=")) return RangeAnswer::whole;
  const uint64_t length = e.body.size();
  bool invalid = false;
  bool too_many = false;
  int elements = 0;
  uint64_t total = 0;
  detail::for_each_element(spec.substr(6), [&](std::string_view element) {
    ++elements;
    ByteRange r;
    switch (parse_range_spec(element, length, r)) {
      case RangeSpec::invalid:
        invalid = true;
        break;
      case RangeSpec::unsatisfiable:
        break;  // left out; the others may still be answered
      case RangeSpec::satisfiable:
        if (ranges.count == kByteRangesMax) {
          too_many = true;
        } else {
          ranges.range[ranges.count++] = r;
          total += r.last - r.first + 1;
        }
        break;
    }
  });
  if (invalid || too_many || elements == 0) {
    ranges.count = 0;
    return RangeAnswer::whole;  // a Range the server does not honour is ignored
  }
  if (ranges.count == 0) return RangeAnswer::unsatisfiable;
  if (ranges.count == 1) return RangeAnswer::partial;
  if (total > length) {
    ranges.count = 0;
    return RangeAnswer::whole;
  }
  return RangeAnswer::multipart;
}

MultipartRanges::MultipartRanges(const Entry& e, const ByteRanges& ranges, std::string_view boundary) {
  std::string_view content_type;
  detail::for_each_stored_field(e, [&](std::string_view line, std::string_view name, std::string_view value) {
    if (iequals(name, "content-type")) {
      content_type = value;
    } else {
      fields_.append(line);
    }
  });
  http::wire::multipart_content_type(fields_, boundary);
  count_ = ranges.count;
  for (size_t i = 0; i < count_; ++i) {
    const ByteRange& r = ranges.range[i];
    starts_[i] = text_.size();
    http::wire::multipart_delimiter(text_, boundary);
    if (!content_type.empty()) http::wire::field(text_, "Content-Type", content_type);
    http::wire::content_range(text_, r.first, r.last, e.body.size());
    http::wire::end_of_head(text_);
    body_bytes_ += r.last - r.first + 1;
  }
  starts_[count_] = text_.size();
  http::wire::multipart_close(text_, boundary);
  body_bytes_ += text_.size();
}

namespace {
// Every "If-*" field is a precondition (RFC 9110 13.1).
bool is_precondition(std::string_view name) { return name.size() >= 3 && iequals(name.substr(0, 3), "if-"); }
}  // namespace

bool is_conditional(const Fields& request_fields) {
  for (const HeaderField& f : request_fields) {
    if (is_precondition(f.name)) return true;
  }
  return false;
}

bool carried_by_refresh(std::string_view field_name) {
  return !is_precondition(field_name) && !iequals(field_name, "range");
}

void append_304_fields(const Entry& e, std::string& out) {
  static constexpr std::string_view kCarried[] = {"etag",  "cache-control", "expires",      "vary",
                                                  "content-location", "date", "last-modified"};
  detail::for_each_stored_field(e, [&](std::string_view line, std::string_view name, std::string_view) {
    for (std::string_view carried : kCarried) {
      if (iequals(name, carried)) {
        out.append(line);
        break;
      }
    }
  });
}

}  // namespace ringmaster::cache
