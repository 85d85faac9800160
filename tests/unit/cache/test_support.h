// Helpers shared by the cache unit tests: requests and stored entries in a line each.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ringmaster/cache/cache.h"

namespace ringmaster::cache::test_support {

inline RequestInfo get_request(const Fields& fields, std::string_view target = "/index.html",
                               std::string_view host = "example.com") {
  RequestInfo r;
  r.is_get = true;
  r.host = host;
  r.target = target;
  r.fields = &fields;
  return r;
}

inline std::string key_of(std::string_view target, std::string_view host = "example.com") {
  Fields none;
  std::string key;
  primary_key(get_request(none, target, host), key);
  return key;
}

struct EntrySpec {
  std::string_view target = "/index.html";
  std::string_view host = "example.com";
  std::string body = "hello";
  Fields request_fields;
  Fields response_fields;
  uint16_t status = 200;
  int64_t freshness_ms = 60'000;
  int64_t initial_age_ms = 0;
  int64_t now_ms = 1'000;
};

inline EntryRef make_entry(const EntrySpec& spec) {
  RequestInfo info = get_request(spec.request_fields, spec.target, spec.host);
  std::string key;
  primary_key(info, key);
  StoreDecision decision;
  decision.store = true;
  decision.freshness_ms = spec.freshness_ms;
  decision.initial_age_ms = spec.initial_age_ms;
  uint64_t hash = hash_key(key);
  EntryBuilder builder(std::move(key), hash, info, spec.status, spec.response_fields, decision, 1 << 20);
  builder.append_body(spec.body.data(), spec.body.size());
  return builder.finish(spec.now_ms);
}

// The simplest entry: `target` with `body`, fresh for a minute from t=1000.
inline EntryRef make_entry(std::string_view target, std::string body = "hello") {
  EntrySpec spec;
  spec.target = target;
  spec.body = std::move(body);
  return make_entry(spec);
}

// Looks `target` up with the given request fields.
inline EntryRef lookup(Cache& cache, std::string_view target, int64_t now_ms, const Fields& fields = {},
                       std::string_view host = "example.com") {
  RequestInfo info = get_request(fields, target, host);
  std::string key;
  primary_key(info, key);
  return cache.lookup(key, hash_key(key), info, now_ms);
}

}  // namespace ringmaster::cache::test_support
