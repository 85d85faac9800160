// Canonical heads for the wire. Every head the proxy sends is written here from parsed,
// validated parts, never copied from input, so what a peer sees is exactly what we decided.
// Each writer sizes its output first and fills one reserved block with plain stores: no
// per-field capacity checks, no temporaries.
#include <cstring>
#include <string_view>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/base/reason_phrase.h"
#include "ringmaster/http/message.h"

namespace ringmaster::http {

namespace {

constexpr size_t kDecimalMax = 20;  // digits of UINT64_MAX
constexpr std::string_view kSurrogateCapability = "Surrogate-Capability: ringmaster=\"Surrogate/1.0\"\r\n";

// Writes into a block reserved from a ByteBuffer; the caller commits what was written.
class Writer {
 public:
  explicit Writer(char* p) : begin_(p), p_(p) {}
  void put(std::string_view s) {
    if (s.empty()) return;  // an empty view may have a null data(): not for memcpy
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void put(char c) { *p_++ = c; }
  void put_decimal(uint64_t v) {
    char tmp[kDecimalMax];
    size_t i = kDecimalMax;
    do {
      tmp[--i] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    put(std::string_view(tmp + i, kDecimalMax - i));
  }
  void put_field(std::string_view name, std::string_view value) {
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  }
  size_t written() const { return static_cast<size_t>(p_ - begin_); }

 private:
  char* begin_;
  char* p_;
};

size_t decimal_digits(uint64_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

size_t fields_bytes(const std::vector<Field>& fields) {
  size_t n = 0;
  for (const Field& f : fields) n += f.name.size() + f.value.size() + 4;  // ": " and CRLF
  return n;
}

// "1.1 ringmaster" / "1.0 ringmaster": the protocol version received, as RFC 9110 7.6.3 asks.
void put_via(Writer& w, std::string_view existing, uint8_t version_minor, std::string_view via_name) {
  w.put("Via: ");
  if (!existing.empty()) {
    w.put(existing);
    w.put(", ");
  }
  w.put(version_minor == 0 ? "1.0 " : "1.1 ");
  w.put(via_name);
  w.put("\r\n");
}

}  // namespace

// When the client sent no Host (HTTP/1.0 may omit it) no Host line is written: inventing
// one (the target's address, say) is a routing decision for the proxy, which may set
// RequestHead::host in a copy before calling this.
void serialize_request_head(const RequestHead& head, const ForwardContext& ctx, base::ByteBuffer& out) {
  size_t bound = head.method_text.size() + 1 + head.target.size() + 11      // request line
                 + 8 + head.host.size()                                      // Host
                 + fields_bytes(head.fields)                                 //
                 + 28 + kDecimalMax                                          // framing
                 + 19 + head.x_forwarded_for.size() + 2 + ctx.client_ip.size()  // X-Forwarded-For
                 + 21 + ctx.proto.size()                                     // X-Forwarded-Proto
                 + 7 + head.via.size() + 2 + 4 + ctx.via_name.size()         // Via
                 + 16 + ctx.request_id.size()                                // X-Request-Id
                 + kSurrogateCapability.size() + 2;
  Writer w(out.reserve_back(bound));
  w.put(head.method_text);
  w.put(' ');
  w.put(head.target);
  w.put(" HTTP/1.1\r\n");
  if (!head.host.empty()) w.put_field("Host", head.host);
  for (const Field& f : head.fields) w.put_field(f.name, f.value);
  if (head.framing == BodyFraming::content_length) {
    w.put("Content-Length: ");
    w.put_decimal(head.content_length);
    w.put("\r\n");
  } else if (head.framing == BodyFraming::chunked) {
    w.put("Transfer-Encoding: chunked\r\n");
  }
  if (!head.x_forwarded_for.empty() || !ctx.client_ip.empty()) {
    w.put("X-Forwarded-For: ");
    w.put(head.x_forwarded_for);
    if (!head.x_forwarded_for.empty() && !ctx.client_ip.empty()) w.put(", ");
    w.put(ctx.client_ip);
    w.put("\r\n");
  }
  w.put_field("X-Forwarded-Proto", ctx.proto);
  if (!ctx.request_id.empty()) w.put_field("X-Request-Id", ctx.request_id);
  put_via(w, head.via, head.version_minor, ctx.via_name);
  if (ctx.surrogate_capability) w.put(kSurrogateCapability);
  w.put("\r\n");
  out.commit(w.written());
}

ResponseFraming choose_response_framing(const ResponseHead& response, Method request_method,
                                        uint8_t client_version_minor, bool client_keep_alive) {
  const bool close = !client_keep_alive;
  switch (response.framing) {
    case BodyFraming::none:
      // No body follows. HEAD and 304 still tell the length of the representation; a 204
      // must not carry Content-Length at all (RFC 9110 8.6).
      if (response.has_content_length && response.status != 204 &&
          (request_method == Method::head || response.status == 304)) {
        return {BodyFraming::content_length, false, close};
      }
      return {BodyFraming::none, false, close};
    case BodyFraming::content_length:
      return {BodyFraming::content_length, false, close};
    case BodyFraming::chunked:
    case BodyFraming::close_delimited:
      if (client_version_minor >= 1) return {BodyFraming::chunked, true, close};
      // An HTTP/1.0 client knows no chunks: the body runs until we close.
      return {BodyFraming::close_delimited, false, true};
  }
  return {BodyFraming::close_delimited, false, true};
}

void serialize_response_head(const ResponseHead& head, const ResponseFraming& framing,
                             uint8_t client_version_minor, std::string_view via_name, base::ByteBuffer& out,
                             std::string_view request_id) {
  std::string_view reason = head.reason.empty() ? reason_phrase(head.status) : head.reason;
  size_t bound = 10 + decimal_digits(head.status) + reason.size() + 2  // status line
                 + fields_bytes(head.fields)  //
                 + 28 + kDecimalMax           // framing
                 + 24                         // Connection
                 + 7 + head.via.size() + 2 + 4 + via_name.size()  // Via
                 + 16 + request_id.size() + 2;                    // X-Request-Id, end of head
  Writer w(out.reserve_back(bound));
  w.put("HTTP/1.1 ");
  w.put_decimal(head.status);
  w.put(' ');
  w.put(reason);
  w.put("\r\n");
  for (const Field& f : head.fields) w.put_field(f.name, f.value);
  if (framing.framing == BodyFraming::content_length) {
    w.put("Content-Length: ");
    w.put_decimal(head.content_length);
    w.put("\r\n");
  } else if (framing.framing == BodyFraming::chunked) {
    w.put("Transfer-Encoding: chunked\r\n");
  }
  if (framing.close) {
    w.put("Connection: close\r\n");
  } else if (client_version_minor == 0) {
    w.put("Connection: keep-alive\r\n");  // HTTP/1.0 closes unless told otherwise
  }
  put_via(w, head.via, head.version_minor, via_name);
  if (!request_id.empty()) w.put_field("X-Request-Id", request_id);
  w.put("\r\n");
  out.commit(w.written());
}

void write_response(const LocalResponse& r, base::ByteBuffer& out) {
  std::string_view reason = reason_phrase(r.status);
  size_t bound = 10 + decimal_digits(r.status) + reason.size() + 2  // status line
                 + 16 + r.content_type.size()                      // Content-Type
                 + 18 + kDecimalMax                                // Content-Length
                 + 15 + kDecimalMax                                // Retry-After
                 + 16 + r.request_id.size()                        // X-Request-Id
                 + 19 + 2                                          // Connection, end of head
                 + (r.head_only ? 0 : r.body.size());
  Writer w(out.reserve_back(bound));
  w.put("HTTP/1.1 ");
  w.put_decimal(r.status);
  w.put(' ');
  w.put(reason);
  w.put("\r\n");
  w.put_field("Content-Type", r.content_type);
  w.put("Content-Length: ");
  w.put_decimal(r.body.size());
  w.put("\r\n");
  if (r.retry_after_s != 0) {
    w.put("Retry-After: ");
    w.put_decimal(r.retry_after_s);
    w.put("\r\n");
  }
  if (!r.request_id.empty()) w.put_field("X-Request-Id", r.request_id);
  if (r.close) w.put("Connection: close\r\n");
  w.put("\r\n");
  if (!r.head_only) w.put(r.body);
  out.commit(w.written());
}

void write_request(const LocalRequest& r, base::ByteBuffer& out) {
  size_t bound = r.method.size() + 1 + r.target.size() + 11  // request line
                 + 8 + r.host.size()                          // Host
                 + 14 + r.user_agent.size()                   // User-Agent
                 + 16 + r.content_type.size()                 // Content-Type
                 + 18 + kDecimalMax                           // Content-Length
                 + 19 + 2                                     // Connection, end of head
                 + r.body.size();
  Writer w(out.reserve_back(bound));
  w.put(r.method);
  w.put(' ');
  w.put(r.target);
  w.put(" HTTP/1.1\r\n");
  w.put_field("Host", r.host);
  if (!r.user_agent.empty()) w.put_field("User-Agent", r.user_agent);
  if (!r.content_type.empty()) {
    w.put_field("Content-Type", r.content_type);
    w.put("Content-Length: ");
    w.put_decimal(r.body.size());
    w.put("\r\n");
  }
  if (r.close) w.put("Connection: close\r\n");
  w.put("\r\n");
  if (!r.content_type.empty()) w.put(r.body);
  out.commit(w.written());
}

void write_error_response(uint16_t status, bool close, bool head_only, base::ByteBuffer& out, uint32_t retry_after_s,
                          std::string_view request_id) {
  // "502 Bad Gateway\n": the longest reason phrase is 31 bytes.
  constexpr size_t kErrorBodyBytesMax = 64;
  std::string_view reason = reason_phrase(status);
  char body[kErrorBodyBytesMax];
  Writer w(body);
  w.put_decimal(status);
  w.put(' ');
  w.put(reason.substr(0, kErrorBodyBytesMax - kDecimalMax - 2));
  w.put('\n');
  LocalResponse answer;
  answer.status = status;
  answer.body = std::string_view(body, w.written());
  answer.close = close;
  answer.head_only = head_only;
  answer.retry_after_s = retry_after_s;
  answer.request_id = request_id;
  write_response(answer, out);
}

std::string_view reason_phrase(uint16_t status) { return base::reason_phrase(status); }

void write_continue(base::ByteBuffer& out) { out.append("HTTP/1.1 100 Continue\r\n\r\n"); }

}  // namespace ringmaster::http
