// Request ids (README "Request id"): the X-Request-Id every request carries end to end, as
// nginx's $request_id and Envoy's x-request-id. A client's own id is kept when it is sane
// (is_valid_request_id); otherwise, or when it sent none, the reactor makes one with
// RequestIdGenerator: no system call and nothing shared between reactors per request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringmaster::http {

// The longest client id kept (longer ones are replaced): room for a UUID, a W3C trace id
// with its parent, an AWS "Root=1-..." id, without letting a client put kilobytes into every
// access log line and every backend head.
inline constexpr size_t kRequestIdBytesMax = 128;
// A generated id: 32 lowercase hex digits (128 bits), the shape of nginx's $request_id.
inline constexpr size_t kGeneratedRequestIdBytes = 32;

// A client's X-Request-Id value is kept when it is 1..kRequestIdBytesMax bytes of RFC 9110
// tchar, '/', '=' or ':' (base64 and "urn:uuid:" ids): visible ASCII that needs no quoting
// in a header, a JSON string or a shell, and holds no list separator.
bool is_valid_request_id(std::string_view id);

// One per reactor. An id is a 64-bit random prefix drawn when the reactor starts, then a
// 64-bit bijective mix of a per-reactor counter: unique within the reactor (a bijection of
// a counter that does not wrap in practice), distinct across reactors, processes and
// restarts with the odds of two random 64-bit prefixes meeting, and random-looking like
// nginx's (so a prefix of an id is not mistaken for a series). Cost: one add, a few
// multiplies and 8 table lookups (two digits each).
class RequestIdGenerator {
 public:
  // prefix: the reactor's random bits; counter_start: where its counter begins (random
  // too, so two reactors given the same prefix by a broken random source still differ in
  // practice).
  RequestIdGenerator(uint64_t prefix, uint64_t counter_start);
  // Writes the next id into out[0..kGeneratedRequestIdBytes).
  void next(char* out);

 private:
  char prefix_hex_[16];  // the prefix's digits, written once (every hit sends an id)
  uint64_t counter_;
};

}  // namespace ringmaster::http
