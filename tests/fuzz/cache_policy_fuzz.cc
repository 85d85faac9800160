// cache_policy_fuzz: the HTTP caching rules of the cache module (classify_request,
// classify_response, EntryBuilder, not_modified, append_304_fields, Age/freshness, Vary
// matching through Cache::insert/lookup) on fuzzed header fields. These functions read
// numbers (max-age, s-maxage, Age), HTTP dates (Expires, Date, If-Modified-Since,
// Last-Modified), lists and quoted strings from backend- and client-controlled text, so
// overflow, out-of-range reads and undefined behaviour are what this target hunts.
//
// Input layout:
//   bytes 0-1    response status: 100 + (little-endian value % 500)
//   byte  2      bit 0: GET (else HEAD), bit 1: lookup 1 s later (else at once)
//   bytes 3-6    wall clock offset in seconds from 2023-11-14 (little-endian)
//   bytes 7-10   default TTL in ms (little-endian, % 10^9)
//   the rest     "\n\n"-separated sections: response fields, request fields, the request
//                target; fields one a line, "name: value" (the value is trimmed, as the
//                http parser delivers it)
//
// Invariants: no crash / sanitizer report; a stored decision has non-negative freshness and
// age and a non-null reason; an entry stored for a request and still fresh is found again
// by a lookup with the same request (its Vary values came from that request).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "ringmaster/cache/cache.h"

namespace {

using namespace ringmaster;

uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

cache::Fields parse_fields(std::string_view section) {
  cache::Fields out;
  while (!section.empty()) {
    size_t nl = section.find('\n');
    std::string_view line = section.substr(0, nl);
    section = nl == std::string_view::npos ? std::string_view() : section.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    out.push_back({line.substr(0, colon), trim(line.substr(colon + 1))});
  }
  return out;
}

std::string_view take_section(std::string_view& rest) {
  size_t end = rest.find("\n\n");
  std::string_view s = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 11) return 0;
  const uint16_t status = static_cast<uint16_t>(100 + (bytes[0] | bytes[1] << 8) % 500);
  const bool is_get = bytes[2] & 1;
  const int64_t later_ms = (bytes[2] & 2) ? 1000 : 0;
  const int64_t now_unix_ms = (1700000000ll + le32(bytes + 3)) * 1000;
  const int64_t default_ttl_ms = le32(bytes + 7) % 1000000000u;
  std::string_view rest(reinterpret_cast<const char*>(bytes + 11), size - 11);
  cache::Fields response_fields = parse_fields(take_section(rest));
  cache::Fields request_fields = parse_fields(take_section(rest));
  std::string_view target = take_section(rest);
  if (target.empty()) target = "/";

  cache::RequestInfo request;
  request.is_get = is_get;
  request.is_head = !is_get;
  request.host = "fuzz.test";
  request.target = target;
  request.fields = &request_fields;
  cache::RequestPolicy policy = cache::classify_request(request);
  std::string key;
  cache::primary_key(request, key);
  const uint64_t hash = cache::hash_key(key);

  cache::StoreDecision d =
      cache::classify_response(status, response_fields, policy.has_authorization, default_ttl_ms, now_unix_ms);
  FUZZ_CHECK(d.reason != nullptr, "null reason");
  if (d.store) {
    FUZZ_CHECK(d.freshness_ms >= 0 && d.initial_age_ms >= 0,
               "stored with freshness " + std::to_string(d.freshness_ms) + " ms, age " +
                   std::to_string(d.initial_age_ms) + " ms");
  }

  // Build the entry whatever the decision (an abandoned builder must be harmless); the
  // target doubles as the body.
  cache::EntryBuilder builder(key, hash, request, status, response_fields, d, 4096, "Fuzz Reason");
  std::string_view body = target;
  builder.append_body(body.data(), body.size());
  const int64_t mono_ms = 5000000;
  cache::EntryRef entry = builder.finish(mono_ms);
  FUZZ_CHECK(!entry || d.store, "an entry built for a response that may not be stored");
  if (!entry) return 0;

  // The hit path on the entry itself.
  const cache::Entry& e = *entry;
  (void)cache::age_seconds(e, mono_ms + later_ms);
  bool fresh = cache::is_fresh(e, mono_ms + later_ms);
  (void)cache::not_modified(e, request_fields);
  std::string fields_304;
  cache::append_304_fields(e, fields_304);
  (void)e.charge();
  (void)cache::may_serve_stale(e, mono_ms + later_ms, true);

  // Every range selected lies inside the stored body, within the bound on their number, and
  // (for several) they add up to no more than the body.
  cache::ByteRanges ranges;
  cache::RangeAnswer answer = cache::select_range(e, request_fields, ranges);
  if (answer == cache::RangeAnswer::partial || answer == cache::RangeAnswer::multipart) {
    FUZZ_CHECK(ranges.count >= 1 && ranges.count <= cache::kByteRangesMax,
               std::to_string(ranges.count) + " ranges");
    FUZZ_CHECK((answer == cache::RangeAnswer::partial) == (ranges.count == 1),
               "a partial answer with " + std::to_string(ranges.count) + " ranges");
    uint64_t total = 0;
    for (size_t i = 0; i < ranges.count; ++i) {
      const cache::ByteRange& range = ranges.range[i];
      FUZZ_CHECK(range.first <= range.last && range.last < e.body.size(),
                 "range " + std::to_string(range.first) + "-" + std::to_string(range.last) + " of " +
                     std::to_string(e.body.size()) + " bytes");
      total += range.last - range.first + 1;
    }
    FUZZ_CHECK(total <= e.body.size(), "ranges adding up to more than the body");
    if (answer == cache::RangeAnswer::multipart) {
      cache::MultipartRanges parts(e, ranges, "fuzzboundary");
      uint64_t framed = total + parts.tail().size();
      for (size_t i = 0; i < ranges.count; ++i) framed += parts.part_head(i).size();
      FUZZ_CHECK(parts.body_bytes() == framed, "multipart Content-Length " + std::to_string(parts.body_bytes()) +
                                                   " for " + std::to_string(framed) + " bytes framed");
    }
  }

  // Freshening with the request's fields standing in for a 304's keeps the body and key.
  cache::Freshened freshened =
      cache::freshen(e, request, request_fields, policy.has_authorization, default_ttl_ms, now_unix_ms, mono_ms);
  if (freshened.entry) {
    FUZZ_CHECK(freshened.entry->body == e.body && freshened.entry->key == e.key, "freshen changed body or key");
  }

  // Location-style references resolve to a key of the same host, or to nothing.
  for (const cache::HeaderField& f : response_fields) {
    std::string ref_key;
    if (cache::reference_key(request.host, request.target, f.value, ref_key)) {
      FUZZ_CHECK(ref_key.compare(0, key.find('\n') + 1, key, 0, key.find('\n') + 1) == 0,
                 "a reference resolved to another host: \"" + fuzz::escaped(ref_key) + "\"");
    }
  }

  // Through the cache: stored for this request, found again by it while fresh.
  if (!policy.store) return 0;
  cache::Cache c(1 << 20, 8);
  bool stored = c.insert(entry.share(), c.epoch());
  cache::EntryRef hit = c.lookup(key, hash, request, mono_ms + later_ms);
  if (stored && fresh) {
    FUZZ_CHECK(hit.get() == entry.get(), "a fresh stored entry was not found by the request that stored it; key \"" +
                                             fuzz::escaped(key) + "\"");
  }
  if (!fresh) FUZZ_CHECK(!hit, "a stale entry was served");
  hit.reset();
  std::string_view path = target.substr(0, target.find('?'));
  size_t purged = c.purge_path(path);
  (void)purged;
  c.invalidate_all();
  FUZZ_CHECK(!c.lookup(key, hash, request, mono_ms), "an entry survived invalidate_all");
  return 0;
}
