// Request ids: validation of a client's X-Request-Id and the per-reactor generator.
#include "ringmaster/http/request_id.h"

#include <array>
#include <cstring>

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

// The two hex digits of every byte value: a 64-bit word is 8 lookups, not 16.
constexpr std::array<char, 512> kHexPairs = [] {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<char, 512> t{};
  for (size_t b = 0; b < 256; ++b) {
    t[2 * b] = kHex[b >> 4];
    t[2 * b + 1] = kHex[b & 0xf];
  }
  return t;
}();

void put_hex64(char* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    std::memcpy(out + 2 * i, &kHexPairs[2 * (v & 0xff)], 2);
    v >>= 8;
  }
}

}  // namespace

bool is_valid_request_id(std::string_view id) {
  return !id.empty() && id.size() <= kRequestIdBytesMax && detail::all_of(id, kRequestIdChar);
}

RequestIdGenerator::RequestIdGenerator(uint64_t prefix, uint64_t counter_start) : counter_(counter_start) {
  put_hex64(prefix_hex_, prefix);
}

void RequestIdGenerator::next(char* out) {
  std::memcpy(out, prefix_hex_, sizeof prefix_hex_);
  put_hex64(out + 16, mix(++counter_));
}

}  // namespace ringmaster::http
