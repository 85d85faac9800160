// Helpers shared by the http unit tests: feeding parsers in arbitrary splits the way the
// proxy does (fresh buffers, scribbled over after each call), and decoding chunked output.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"

namespace ringmaster::http::test_support {

constexpr size_t kAllAtOnce = static_cast<size_t>(-1);

inline ForwardContext test_context() {
  ForwardContext ctx;
  ctx.client_ip = "192.0.2.7";
  return ctx;
}

struct RequestOutcome {
  ParseStatus status = ParseStatus::need_more;  // message_done, error, or need_more (ran out)
  uint16_t error_status = 0;
  std::string error_reason;
  bool head_done = false;
  std::string head;  // serialize_request_head of the parsed head
  std::string body;  // what parse_body appended
  size_t consumed = 0;
  size_t head_consumed = 0;
};

// Feeds `input` to `parser` `step` bytes at a time (each call sees the unconsumed rest of the
// bytes offered so far, copied into a buffer that is overwritten right after the call).
// Stops at the end of one message or at an error.
inline RequestOutcome feed_request(RequestParser& parser, std::string_view input, size_t step) {
  RequestOutcome o;
  base::ByteBuffer body;
  std::string scratch;
  size_t pos = 0;
  size_t offered = 0;
  for (;;) {
    if (pos == offered) {
      if (offered == input.size()) break;
      offered = step >= input.size() - offered ? input.size() : offered + step;
    }
    scratch.assign(input.substr(pos, offered - pos));
    ParseResult r = o.head_done ? parser.parse_body(scratch.data(), scratch.size(), body)
                                : parser.parse_head(scratch.data(), scratch.size());
    std::fill(scratch.begin(), scratch.end(), '#');
    if (r.status == ParseStatus::error) {
      o.status = ParseStatus::error;
      o.error_status = parser.error_status();
      o.error_reason = std::string(parser.error_reason());
      break;
    }
    pos += r.consumed;
    if (r.status == ParseStatus::need_more && r.consumed != scratch.size()) {
      o.error_reason = "need_more without consuming everything";
      break;
    }
    if (r.status == ParseStatus::head_done) {
      o.head_done = true;
      o.head_consumed = pos;
      if (parser.body_done()) {
        ParseResult b = parser.parse_body(nullptr, 0, body);
        o.status = b.status == ParseStatus::message_done && b.consumed == 0 ? ParseStatus::message_done
                                                                            : ParseStatus::error;
        break;
      }
      continue;
    }
    if (r.status == ParseStatus::message_done) {
      o.status = ParseStatus::message_done;
      break;
    }
  }
  o.consumed = pos;
  o.body = std::string(body.view());
  if (o.head_done) {
    base::ByteBuffer out;
    serialize_request_head(parser.head(), test_context(), out);
    o.head = std::string(out.view());
  }
  return o;
}

inline RequestOutcome parse_request(std::string_view input, size_t step = kAllAtOnce, const Limits& limits = {}) {
  RequestParser parser(limits);
  return feed_request(parser, input, step);
}

// Decodes our own chunked output (no extensions, no trailers); "<bad>" when malformed.
inline std::string dechunk(std::string_view s) {
  std::string out;
  size_t i = 0;
  for (;;) {
    size_t crlf = s.find("\r\n", i);
    if (crlf == std::string_view::npos || crlf == i || crlf - i > 16) return "<bad>";
    size_t n = std::stoul(std::string(s.substr(i, crlf - i)), nullptr, 16);
    i = crlf + 2;
    if (n == 0) return s.substr(i) == "\r\n" ? out : "<bad>";
    if (s.size() < i + n + 2 || s.substr(i + n, 2) != "\r\n") return "<bad>";
    out.append(s.substr(i, n));
    i += n + 2;
  }
}

}  // namespace ringmaster::http::test_support
