// RequestParser: llhttp (strict) + HeadScanner + the request rules of RFC 9112/9110 that a
// reverse proxy must enforce before it re-serialises a head for a backend. Shared mechanics
// live in parser_core.h; this file holds what only requests have: the request line (method,
// target forms), Host, Expect, the X-Forwarded-* and the request's framing verdicts.
#include <llhttp.h>

#include <string_view>
#include <vector>

#include "http/field_rules.h"
#include "http/parser_core.h"
#include "ringmaster/http/message.h"
#include "ringmaster/http/request_id.h"

namespace ringmaster::http {

bool RequestHead::is_idempotent() const {
  // RFC 9110 9.2.2: safe methods plus PUT and DELETE. Unknown methods are assumed not to be.
  switch (method) {
    case Method::get:
    case Method::head:
    case Method::put:
    case Method::delete_:
    case Method::options:
    case Method::trace:
      return true;
    case Method::post:
    case Method::patch:
    case Method::connect:
    case Method::other:
      return false;
  }
  return false;
}

namespace {

// Methods are case-sensitive (RFC 9110 9.1); llhttp has already matched the text against
// its list, so this only names the ones the proxy treats specially.
Method method_from_text(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::get;
      if (m == "PUT") return Method::put;
      break;
    case 4:
      if (m == "HEAD") return Method::head;
      if (m == "POST") return Method::post;
      break;
    case 5:
      if (m == "PATCH") return Method::patch;
      if (m == "TRACE") return Method::trace;
      break;
    case 6:
      if (m == "DELETE") return Method::delete_;
      break;
    case 7:
      if (m == "OPTIONS") return Method::options;
      if (m == "CONNECT") return Method::connect;
      break;
    default:
      break;
  }
  return Method::other;
}

// Length of "http://" or "https://" (any case) at the start of target; 0 when neither.
size_t http_scheme_prefix(std::string_view target) {
  if (target.size() >= 7 && detail::iequals_lower(target.substr(0, 7), "http://")) return 7;
  if (target.size() >= 8 && detail::iequals_lower(target.substr(0, 8), "https://")) return 8;
  return 0;
}

}  // namespace

struct RequestParser::Impl : detail::ParserCore<RequestParser::Impl> {
  static constexpr llhttp_type_t kType = HTTP_REQUEST;
  // Host, Expect, X-Forwarded-* are consumed by the request parser, never kept as fields.
  static constexpr bool kKeepsSpecialFields = false;

  explicit Impl(const Limits& limits)
      : ParserCore(HTTP_REQUEST, detail::CoreLimits{limits.request_line_bytes_max, limits.header_bytes_max,
                                                    limits.header_count_max, limits.body_bytes_max}) {
    head_.fields.reserve(32);
    xff_parts_.reserve(4);
    reset_message();
  }

  void reset_message() {
    core_reset();
    method_ = {};
    target_ = {};
    host_ = {};
    method_enum_ = Method::other;
    target_is_root_ = false;
    target_needs_slash_ = false;
    absolute_form_ = false;
    expect_continue_ = false;
    host_count_ = 0;
    xff_parts_.clear();
    request_id_ = {};
    request_id_count_ = 0;
    // Scalar members one by one: assigning a fresh RequestHead would free fields' capacity.
    head_.method = Method::other;
    head_.method_text = {};
    head_.target = {};
    head_.host = {};
    head_.version_minor = 1;
    head_.framing = BodyFraming::none;
    head_.content_length = 0;
    head_.keep_alive = true;
    head_.expect_continue = false;
    head_.x_forwarded_for = {};
    head_.via = {};
    head_.x_request_id = {};
    head_.fields.clear();
  }

  // ---- hooks called by ParserCore ----

  int on_method(detail::Span method) {
    method_ = method;
    method_enum_ = method_from_text(view(method));
    // We are a reverse proxy: tunnelling is a forward proxy's job.
    if (method_enum_ == Method::connect) return fail(501, "CONNECT not supported");
    return 0;
  }

  int on_url(detail::Span url) {
    std::string_view target = view(url);
    if (target.empty() || !detail::is_target(target)) return fail(400, "bad request-target");
    if (target[0] == '/') {  // origin-form, the normal case
      target_ = url;
      return 0;
    }
    if (target == "*") {
      if (method_enum_ != Method::options) return fail(400, "asterisk-form without OPTIONS");
      target_ = url;
      return 0;
    }
    size_t scheme = http_scheme_prefix(target);
    if (scheme == 0) return fail(400, "bad request-target");
    return on_absolute_form(url, scheme);
  }

  // RFC 9112 3.2.2: "http://authority/path?q" -> target "/path?q", host = authority, and a
  // Host field is then ignored (but must still be single).
  int on_absolute_form(detail::Span url, size_t scheme) {
    std::string_view target = view(url);
    size_t path = target.find_first_of("/?", scheme);
    if (path == std::string_view::npos) path = target.size();
    std::string_view authority = target.substr(scheme, path - scheme);
    if (authority.find('@') != std::string_view::npos) return fail(400, "userinfo in request-target");
    if (!detail::is_valid_host_port(authority)) return fail(400, "bad authority");
    absolute_form_ = true;
    host_ = {url.offset + static_cast<uint32_t>(scheme), static_cast<uint32_t>(authority.size())};
    if (path == target.size()) {
      target_is_root_ = true;
    } else if (target[path] == '/') {
      target_ = {url.offset + static_cast<uint32_t>(path), url.length - static_cast<uint32_t>(path)};
    } else {  // "http://host?q": the path is empty; "/" is prefixed at the end of the head
      target_ = {url.offset + static_cast<uint32_t>(path), url.length - static_cast<uint32_t>(path)};
      target_needs_slash_ = true;
    }
    return 0;
  }

  int on_special_field(detail::FieldKind kind, detail::Span, detail::Span value) {
    switch (kind) {
      case detail::FieldKind::host:
        if (++host_count_ > 1) return fail(400, "duplicate Host");
        if (!absolute_form_) host_ = value;
        return 0;
      case detail::FieldKind::expect:
        // The only expectation defined; anything else we cannot meet (RFC 9110 10.1.1).
        if (!detail::iequals_lower(view(value), "100-continue")) return fail(417, "unsupported Expect");
        expect_continue_ = true;
        return 0;
      case detail::FieldKind::x_forwarded_for:
        if (value.length > 0) xff_parts_.push_back(value);
        return 0;
      case detail::FieldKind::x_request_id:
        // Kept only when single: two ids leave no way to tell which one the client meant.
        ++request_id_count_;
        request_id_ = value;
        return 0;
      default:  // X-Forwarded-Proto (we set our own), HTTP2-Settings (hop-by-hop)
        return 0;
    }
  }

  int on_head_complete() {
    const uint8_t minor = llhttp_.http_minor;
    const detail::FramingFields& f = framing_fields_;
    // Host (RFC 9112 3.2): exactly one in HTTP/1.1; a valid uri-host[:port] when used.
    if (host_count_ == 0 && minor == 1) return fail(400, "missing Host");
    if (!absolute_form_ && host_count_ == 1 && !detail::is_valid_host_port(view(host_))) {
      return fail(400, "bad Host");
    }
    // Framing (RFC 9112 6). Transfer-Encoding choices are explained at TransferCoding.
    BodyFraming framing = BodyFraming::none;
    if (f.transfer_encoding_count > 0) {
      if (minor == 0) return fail(400, "Transfer-Encoding in HTTP/1.0");
      if (f.content_length_count > 0) return fail(400, "Content-Length with Transfer-Encoding");
      if (f.transfer_coding == detail::TransferCoding::unsupported) return fail(501, "unsupported transfer coding");
      if (f.transfer_coding != detail::TransferCoding::chunked) return fail(400, "bad Transfer-Encoding");
      framing = BodyFraming::chunked;
    } else if (f.content_length_count > 0) {
      // Refused before any body byte is read, so the answer can go out at once.
      if (f.content_length > limits_.body_bytes_max) return fail(413, "body too large");
      framing = BodyFraming::content_length;
    }
    // A server that receives 100-continue in an HTTP/1.0 request must ignore it (RFC 9110 10.1.1).
    bool expect_continue = expect_continue_ && minor == 1;
    bool keep_alive = !f.connection_close && (minor == 1 || f.connection_keep_alive);

    // Last arena appends, then views.
    if (target_needs_slash_) {
      uint32_t start = arena_.size();
      arena_.append("/", 1);
      arena_.append_copy(target_);
      target_ = arena_.span_from(start);
    }
    detail::Span xff = join(xff_parts_);
    detail::Span via = join(via_parts_);
    head_.method = method_enum_;
    head_.method_text = view(method_);
    head_.target = target_is_root_ ? std::string_view("/") : view(target_);
    head_.host = view(host_);
    head_.version_minor = minor;
    head_.framing = framing;
    head_.content_length = framing == BodyFraming::content_length ? f.content_length : 0;
    head_.keep_alive = keep_alive;
    head_.expect_continue = expect_continue;
    head_.x_forwarded_for = view(xff);
    head_.via = view(via);
    if (request_id_count_ == 1 && is_valid_request_id(view(request_id_))) head_.x_request_id = view(request_id_);
    resolve_fields(head_.fields);
    begin_body(framing, head_.content_length);
    return 0;
  }

  // ---- state ----
  RequestHead head_;
  detail::Span method_;
  detail::Span target_;
  detail::Span host_;
  std::vector<detail::Span> xff_parts_;
  detail::Span request_id_;
  uint32_t request_id_count_ = 0;
  Method method_enum_ = Method::other;
  bool target_is_root_ = false;
  bool target_needs_slash_ = false;  // target_ is "?query": origin-form needs "/" in front
  bool absolute_form_ = false;
  bool expect_continue_ = false;
  uint32_t host_count_ = 0;
};

RequestParser::RequestParser(const Limits& limits) : impl_(new Impl(limits)) {}
RequestParser::~RequestParser() { delete impl_; }

void RequestParser::reset() { impl_->reset_message(); }

ParseResult RequestParser::parse_head(const char* data, size_t len) { return impl_->parse_head_impl(data, len); }

const RequestHead& RequestParser::head() const { return impl_->head_; }

bool RequestParser::body_done() const { return impl_->phase_ == detail::Phase::done; }

ParseResult RequestParser::parse_body(const char* data, size_t len, base::ByteBuffer& out) {
  // The backend gets the framing the client used: raw bytes after Content-Length, our own
  // chunks after Transfer-Encoding: chunked.
  return impl_->parse_body_impl(data, len, out, impl_->framing_ == BodyFraming::chunked);
}

uint64_t RequestParser::body_bytes() const { return impl_->body_bytes_; }

void RequestParser::set_body_bytes_max(uint64_t bytes) { impl_->limits_.body_bytes_max = bytes; }

uint16_t RequestParser::error_status() const { return impl_->error_status_; }

std::string_view RequestParser::error_reason() const { return impl_->error_reason_; }

}  // namespace ringmaster::http
