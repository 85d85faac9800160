// ResponseParser: a backend's response, held to the same field rules as a client's request
// (a compromised or buggy backend must not be able to desynchronise the client connection).
// Shared mechanics live in parser_core.h; this file holds the status line, interim
// responses, and the response's framing rules (HEAD, 204, 304, close-delimited bodies).
#include <llhttp.h>

#include <string_view>

#include "http/parser_core.h"
#include "ringmaster/http/message.h"

namespace ringmaster::http {

struct ResponseParser::Impl : detail::ParserCore<ResponseParser::Impl> {
  static constexpr llhttp_type_t kType = HTTP_RESPONSE;
  // Host, Expect, X-Forwarded-* mean nothing special in a response: kept as ordinary fields.
  static constexpr bool kKeepsSpecialFields = true;

  explicit Impl(const ResponseLimits& limits)
      : ParserCore(HTTP_RESPONSE, detail::CoreLimits{limits.header_bytes_max, limits.header_bytes_max,
                                                     limits.header_count_max, UINT64_MAX}) {
    head_.fields.reserve(32);
    reset_message();
  }

  void reset_message() {
    core_reset();
    reason_ = {};
    head_.status = 0;
    head_.reason = {};
    head_.version_minor = 1;
    head_.framing = BodyFraming::none;
    head_.content_length = 0;
    head_.has_content_length = false;
    head_.keep_alive = true;
    head_.via = {};
    head_.fields.clear();
  }

  // ---- hooks called by ParserCore ----

  int on_status(detail::Span reason) {
    reason_ = reason;
    return 0;
  }

  int on_special_field(detail::FieldKind kind, detail::Span name, detail::Span value) {
    // The client gets the proxy's X-Request-Id (the one the backend was sent), never a
    // second one from the backend, and a cached response never replays the id of the
    // request that filled it (README "Request id").
    if (kind == detail::FieldKind::x_request_id) return 0;
    fields_.push_back({name, value});
    return 0;
  }

  int on_head_complete() {
    const uint16_t status = llhttp_.status_code;
    const uint8_t minor = llhttp_.http_minor;
    const detail::FramingFields& f = framing_fields_;
    // The proxy never forwards Upgrade, so a switch of protocols is a backend bug.
    if (status == 101) return fail(502, "101 Switching Protocols");
    if (status < 200) {  // 100, 102, 103, ...: informational; the real head follows
      if (status == 103 && early_hints_out_ != nullptr) write_early_hints(*early_hints_out_);
      interim_ = true;
      return 0;
    }
    // Framing (RFC 9112 6.1, 6.3): anything another hop could read differently is refused.
    if (f.transfer_encoding_count > 0) {
      if (f.content_length_count > 0) return fail(502, "Content-Length with Transfer-Encoding");
      if (minor == 0) return fail(502, "Transfer-Encoding in HTTP/1.0");
      if (f.transfer_coding != detail::TransferCoding::chunked) return fail(502, "unsupported Transfer-Encoding");
    }
    bool keep_alive = !f.connection_close && (minor == 1 || f.connection_keep_alive);
    // No body whatever the fields announce (RFC 9110 6.4.1). llhttp 8.1.0 would read a 204's
    // Content-Length body; it never gets the chance: the message is done here, llhttp stays
    // paused at the end of the head, and reset() re-initialises it. (So there is no need for
    // on_headers_complete's "return 1 = skip body", which cannot be combined with a pause.)
    bool bodiless = method_ == Method::head || status == 204 || status == 304;
    BodyFraming framing;
    if (bodiless) {
      framing = BodyFraming::none;
    } else if (f.transfer_encoding_count > 0) {
      framing = BodyFraming::chunked;
    } else if (f.content_length_count > 0) {
      framing = BodyFraming::content_length;
    } else {
      framing = BodyFraming::close_delimited;  // the body ends when the backend closes
      keep_alive = false;
    }

    detail::Span via = join(via_parts_);
    head_.status = status;
    head_.reason = view(reason_);
    head_.version_minor = minor;
    head_.framing = framing;
    head_.content_length = f.content_length;
    head_.has_content_length = f.content_length_count > 0;
    head_.keep_alive = keep_alive;
    head_.via = view(via);
    resolve_fields(head_.fields);
    begin_body(framing, f.content_length);
    return 0;
  }

  // RFC 8297: the hints (Link fields, mostly) go to the client ahead of the response.
  void write_early_hints(base::ByteBuffer& out) {
    resolve_fields(hints_);
    out.append("HTTP/1.1 103 Early Hints\r\n");
    for (const Field& f : hints_) {
      out.append(f.name);
      out.append(": ");
      out.append(f.value);
      out.append("\r\n");
    }
    out.append("\r\n");
  }

  // ---- state ----
  base::ByteBuffer* early_hints_out_ = nullptr;
  std::vector<Field> hints_;
  ResponseHead head_;
  detail::Span reason_;
  Method method_ = Method::get;
};

ResponseParser::ResponseParser(const ResponseLimits& limits) : impl_(new Impl(limits)) {}
ResponseParser::~ResponseParser() { delete impl_; }

void ResponseParser::reset(Method request_method) {
  impl_->method_ = request_method;
  impl_->reset_message();
}

ParseResult ResponseParser::parse_head(const char* data, size_t len) { return impl_->parse_head_impl(data, len); }

void ResponseParser::forward_early_hints(base::ByteBuffer* out) { impl_->early_hints_out_ = out; }

const ResponseHead& ResponseParser::head() const { return impl_->head_; }

bool ResponseParser::body_done() const { return impl_->phase_ == detail::Phase::done; }

ParseResult ResponseParser::parse_body(const char* data, size_t len, base::ByteBuffer& out, bool rechunk) {
  return impl_->parse_body_impl(data, len, out, rechunk);
}

ParseResult ResponseParser::finish(base::ByteBuffer& out, bool rechunk) {
  Impl& p = *impl_;
  if (p.phase_ == detail::Phase::done) return {ParseStatus::message_done, 0};
  if (p.phase_ == detail::Phase::body && p.framing_ == BodyFraming::close_delimited) {
    p.out_ = &out;
    p.rechunk_ = rechunk;
    p.finish_body();
    return {ParseStatus::message_done, 0};
  }
  if (p.phase_ != detail::Phase::error) p.fail(502, "truncated");
  return {ParseStatus::error, 0};
}

std::string_view ResponseParser::error_reason() const { return impl_->error_reason_; }

}  // namespace ringmaster::http
