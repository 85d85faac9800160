#pragma once

#include <cstdint>
#include <string_view>

namespace ringmaster::base {

// The standard reason phrase of an HTTP status code (RFC 9110), "" for unknown codes. Shared
// by the HTTP serialisers and the cache, which writes status lines of stored responses.
std::string_view reason_phrase(uint16_t status);

}  // namespace ringmaster::base
