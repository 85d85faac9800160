// Request ids: validation of a client's X-Request-Id and the per-reactor generator.
#include "ringmaster/http/request_id.h"

#include "http/field_rules.h"

namespace ringmaster::http {
namespace {

// tchar plus '/', '=' and ':' (see is_valid_request_id).
inline constexpr detail::CharTable kRequestIdChar = [] {
  detail::CharTable t = detail::kTchar;
  t['/'] = t['='] = t[':'] = true;
  return t;
}();

// splitmix64's finaliser: a bijection on 64-bit words, so distinct counters give distinct
// outputs, with every output bit depending on every input bit.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void put_hex64(char* out, uint64_t v) {
  constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[v & 0xf];
    v >>= 4;
  }
}

}  // namespace

bool is_valid_request_id(std::string_view id) {
  return !id.empty() && id.size() <= kRequestIdBytesMax && detail::all_of(id, kRequestIdChar);
}

void RequestIdGenerator::next(char* out) {
  put_hex64(out, prefix_);
  put_hex64(out + 16, mix(++counter_));
}

}  // namespace ringmaster::http
