// http: HTTP/1.1 message parsing, validation and canonical re-serialisation, on top of llhttp
// (built with LLHTTP_STRICT_MODE=1). Pure functions and per-connection parser objects; no
// I/O, no threads: each parser belongs to one connection on one reactor thread.
//
// The proxy never forwards a client's raw head. A request head is parsed, validated against
// RFC 9112/9110 beyond what llhttp 8.1.0 checks (it predates the fixes for CVE-2023-30589 and
// the obs-fold smuggling behind CVE-2024-27982), reduced to its end-to-end fields, and written
// out again by serialize_request_head(). Bodies are de-framed by the parser and re-framed on
// output (chunk extensions and trailers are dropped), so the framing a backend sees is always
// one the proxy chose.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "ringmaster/base/byte_buffer.h"

namespace ringmaster::http {

// Limits on what a client may send; every one is a flag of `ringmaster proxy`.
struct Limits {
  uint32_t request_line_bytes_max = 8192;  // method + target + version; over it: 414
  uint32_t header_bytes_max = 16384;       // request line + all header lines; over it: 431
  uint32_t header_count_max = 100;         // header lines; over it: 431
  uint64_t body_bytes_max = 1ull << 30;    // decoded body bytes; over it: 413 (inclusive bound)
};

// Limits on what a backend may send (not flags: a backend is trusted to be sane-sized).
struct ResponseLimits {
  uint32_t header_bytes_max = 32768;
  uint32_t header_count_max = 200;
};

enum class BodyFraming : uint8_t {
  none,             // no body
  content_length,   // exactly content_length bytes
  chunked,          // Transfer-Encoding: chunked
  close_delimited,  // responses only: the body ends when the backend closes
};

enum class Method : uint8_t { get, head, post, put, delete_, options, trace, patch, connect, other };

// One field line. Name and value are views into the parser's own storage; valid until the
// parser's next reset(). Values have surrounding whitespace trimmed.
struct Field {
  std::string_view name;
  std::string_view value;
};

struct RequestHead {
  Method method = Method::other;
  std::string_view method_text;
  std::string_view target;  // origin-form ("/path?query"), or "*" for OPTIONS; absolute-form is
                            // converted to origin-form with its authority moved to host
  std::string_view host;    // Host header (or authority of an absolute-form target); may be
                            // empty only for HTTP/1.0
  uint8_t version_minor = 1;  // 0 or 1 (HTTP/1.0 or HTTP/1.1)
  BodyFraming framing = BodyFraming::none;
  uint64_t content_length = 0;  // when framing == content_length
  bool keep_alive = true;       // the client's wish after this exchange (1.1 default, 1.0 opt-in)
  bool expect_continue = false; // "Expect: 100-continue" was present (and removed)
  // Values of headers the proxy extends rather than copies (all occurrences, comma-joined;
  // empty when absent).
  std::string_view x_forwarded_for;
  std::string_view via;
  // The client's X-Request-Id when it sent exactly one and is_valid_request_id() holds
  // (request_id.h); empty otherwise: the proxy then makes one (README "Request id").
  std::string_view x_request_id;
  // End-to-end fields only, in arrival order: without Host, Content-Length,
  // Transfer-Encoding, Connection and every field it names, Keep-Alive, Proxy-Connection, TE,
  // Trailer, Upgrade, Expect, X-Forwarded-For, X-Forwarded-Proto, X-Request-Id, Via.
  std::vector<Field> fields;

  bool is_idempotent() const;
};

struct ResponseHead {
  uint16_t status = 0;
  std::string_view reason;
  uint8_t version_minor = 1;
  BodyFraming framing = BodyFraming::none;  // none also for HEAD responses, 1xx, 204, 304
  uint64_t content_length = 0;              // as announced (also for HEAD responses)
  bool has_content_length = false;          // the backend sent Content-Length
  bool keep_alive = true;                   // the backend allows reusing the connection
  std::string_view via;
  std::vector<Field> fields;                // end-to-end fields only (hop-by-hop, Via and X-Request-Id removed)
};

enum class ParseStatus : uint8_t {
  need_more,     // all input consumed, the current stage is not finished
  head_done,     // the head is complete and valid; head() may be read; the body comes next
  message_done,  // the whole message (head and body) is complete
  error,         // bad input; error_status() says the answer; the connection must close
};

struct ParseResult {
  ParseStatus status;
  size_t consumed;  // bytes of the input that belong to this message stage (0 after error)
};

// Parses one request at a time from a client connection. Usage per request:
//   parse_head() until head_done (or error), read head(), then parse_body() until
//   message_done (immediately true via body_done() for bodiless requests), then reset()
//   before the next pipelined request. Bytes after the end of the message are never
//   consumed: they belong to the next request.
class RequestParser {
 public:
  explicit RequestParser(const Limits& limits);
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  void reset();

  ParseResult parse_head(const char* data, size_t len);
  const RequestHead& head() const;

  // True once the whole body has been parsed (at once after the head for bodiless requests).
  bool body_done() const;
  // Decodes body bytes and appends them to `out` framed for the backend: raw bytes for
  // content_length, re-chunked ("<hex>\r\n<data>\r\n" per piece, "0\r\n\r\n" at the end,
  // no extensions, no trailers) for chunked. Appends at most len + 32 bytes per call.
  // Bodies over Limits::body_bytes_max are an error with status 413.
  ParseResult parse_body(const char* data, size_t len, base::ByteBuffer& out);
  uint64_t body_bytes() const;  // decoded body bytes so far
  // Replaces Limits::body_bytes_max for the bodies parsed from now on (the proxy's per-service
  // limit, known once the head is routed). Kept across reset().
  void set_body_bytes_max(uint64_t bytes);

  // The status to answer after ParseStatus::error (400, 413, 414, 417, 431, 501, 505) and a
  // short reason for logs/metrics ("obs-fold", "duplicate Content-Length", ...).
  uint16_t error_status() const;
  std::string_view error_reason() const;

 private:
  struct Impl;
  Impl* impl_;
};

// Parses one response at a time from a backend connection. reset(request_method) before each
// response: a response to HEAD has no body whatever it announces. Interim 1xx responses
// (100, 102, 103) are consumed and skipped by parse_head; 101 is an error (the proxy never
// forwards Upgrade). Any framing ambiguity (Content-Length with Transfer-Encoding, bad or
// conflicting Content-Length, a transfer coding other than a final chunked, bad status
// line, CR/LF/NUL in a field value) is an error: the answer is 502.
class ResponseParser {
 public:
  explicit ResponseParser(const ResponseLimits& limits = {});
  ~ResponseParser();
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  void reset(Method request_method);
  ParseResult parse_head(const char* data, size_t len);
  // Where parse_head re-serialises a 103 Early Hints interim response ("HTTP/1.1 103 Early
  // Hints", its end-to-end fields, blank line) for the client; nullptr (the default) drops
  // it. Other 1xx responses are always dropped (100: the proxy answers Expect itself).
  void forward_early_hints(base::ByteBuffer* out);
  const ResponseHead& head() const;
  bool body_done() const;
  // Decodes body bytes; appends them to `out` re-chunked when `rechunk` is true (client gets
  // chunked), raw otherwise (client gets Content-Length or close-delimited).
  // Appends at most len + 32 bytes per call.
  ParseResult parse_body(const char* data, size_t len, base::ByteBuffer& out, bool rechunk);
  // The backend closed the connection. Completes a close-delimited body (returns
  // message_done, appending the final "0\r\n\r\n" when rechunk); anything else unfinished is
  // an error (a truncated response).
  ParseResult finish(base::ByteBuffer& out, bool rechunk);
  std::string_view error_reason() const;

 private:
  struct Impl;
  Impl* impl_;
};

// What the proxy adds when forwarding a request.
struct ForwardContext {
  std::string_view client_ip;            // appended to X-Forwarded-For
  std::string_view proto = "http";       // X-Forwarded-Proto
  std::string_view via_name = "ringmaster";  // "Via: 1.1 ringmaster" (or "1.0 ringmaster")
  // `Surrogate-Capability: ringmaster="Surrogate/1.0"` (Edge Architecture 1.0): we are a
  // surrogate cache that honours Surrogate-Control (a request that may be stored).
  bool surrogate_capability = false;
  std::string_view request_id;               // "X-Request-Id: <request_id>" when not empty
};

// Canonical head for the backend: "METHOD target HTTP/1.1", Host, the end-to-end fields,
// framing (Content-Length: N or Transfer-Encoding: chunked), X-Forwarded-For,
// X-Forwarded-Proto, X-Request-Id (ctx.request_id, the only one: the client's was taken out
// of the fields), Via. No Connection header (HTTP/1.1 keep-alive is the default).
// No Host line when head.host is empty (an HTTP/1.0 client sent none); a caller that wants
// one passes a copy of the head with host set.
void serialize_request_head(const RequestHead& head, const ForwardContext& ctx, base::ByteBuffer& out);

// How the proxy frames a response to the client.
struct ResponseFraming {
  BodyFraming framing;  // content_length, chunked, close_delimited or none
  bool rechunk;         // pass to ResponseParser::parse_body
  bool close;           // the client connection closes after this response
};

// Chooses framing for the client: Content-Length stays; chunked stays for HTTP/1.1 clients;
// close-delimited bodies become chunked for HTTP/1.1 clients; for HTTP/1.0 clients anything
// without Content-Length is sent raw and the connection closes. A HEAD request gets the
// Content-Length header (if any) but no body: framing is then content_length although the
// parser reports body_done() (the same for a 304; a 204 never gets Content-Length).
ResponseFraming choose_response_framing(const ResponseHead& response, Method request_method,
                                        uint8_t client_version_minor, bool client_keep_alive);

// Response head for the client: "HTTP/1.1 status reason", the end-to-end fields, the
// framing header chosen above, "Connection: close" when closing (or "Connection: keep-alive"
// for a keep-alive HTTP/1.0 client), Via with the proxy appended, "X-Request-Id: <request_id>"
// when request_id is not empty (the backend's own was taken out of the fields).
void serialize_response_head(const ResponseHead& head, const ResponseFraming& framing,
                             uint8_t client_version_minor, std::string_view via_name, base::ByteBuffer& out,
                             std::string_view request_id = {});

// A complete response the proxy makes itself rather than forwards or serves from the cache:
// local errors, the 404 for a request no service matches, the admin listener's and the fleet
// link's answers. write_response() is the one writer of these heads, in this order: status
// line, Content-Type, Content-Length (of body), "Retry-After: N" when retry_after_s != 0,
// "X-Request-Id: <request_id>" when request_id is not empty, "Connection: close" when close;
// then the body unless head_only (a HEAD request gets the head alone).
struct LocalResponse {
  uint16_t status = 200;
  std::string_view content_type = "text/plain";
  std::string_view body;
  bool close = false;
  bool head_only = false;
  uint32_t retry_after_s = 0;
  std::string_view request_id;
};
void write_response(const LocalResponse& response, base::ByteBuffer& out);

// A local error (400, 413, 502, 503, 504, ...): write_response() with the text/plain body
// "<status> <reason>\n". retry_after_s != 0 is for a 503 for a full or timed-out upstream queue.
void write_error_response(uint16_t status, bool close, bool head_only, base::ByteBuffer& out,
                          uint32_t retry_after_s = 0, std::string_view request_id = {});
std::string_view reason_phrase(uint16_t status);

// A request the binary makes itself rather than forwards: the agent's health probe, a fleet
// follower's report. write_request() writes "METHOD target HTTP/1.1", Host, User-Agent (when
// not empty), Content-Type and Content-Length (when content_type is not empty: the length of
// body, which follows the head), "Connection: close" when close.
struct LocalRequest {
  std::string_view method = "GET";
  std::string_view target = "/";
  std::string_view host;
  std::string_view user_agent;
  std::string_view content_type;
  std::string_view body;
  bool close = false;
};
void write_request(const LocalRequest& request, base::ByteBuffer& out);

// "HTTP/1.1 100 Continue\r\n\r\n"
void write_continue(base::ByteBuffer& out);

}  // namespace ringmaster::http
