// Serialisers: exact bytes on the wire for heads the proxy writes and for its own answers.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"

namespace ringmaster::http {
namespace {

std::string request_bytes(const RequestHead& head, const ForwardContext& ctx) {
  base::ByteBuffer out;
  serialize_request_head(head, ctx, out);
  return std::string(out.view());
}

RequestHead sample_request() {
  RequestHead h;
  h.method = Method::post;
  h.method_text = "POST";
  h.target = "/api/v1/items?sort=asc";
  h.host = "api.example:8080";
  h.fields = {{"Content-Type", "application/json"}, {"Accept", "*/*"}};
  h.framing = BodyFraming::content_length;
  h.content_length = 1234;
  return h;
}

TEST(SerializeRequestHead, WritesCanonicalHead) {
  ForwardContext ctx;
  ctx.client_ip = "198.51.100.9";
  EXPECT_EQ(request_bytes(sample_request(), ctx),
            "POST /api/v1/items?sort=asc HTTP/1.1\r\n"
            "Host: api.example:8080\r\n"
            "Content-Type: application/json\r\n"
            "Accept: */*\r\n"
            "Content-Length: 1234\r\n"
            "X-Forwarded-For: 198.51.100.9\r\n"
            "X-Forwarded-Proto: http\r\n"
            "Via: 1.1 ringmaster\r\n"
            "\r\n");
}

TEST(SerializeRequestHead, SurrogateCapabilityGoesLast) {
  ForwardContext ctx;
  ctx.client_ip = "198.51.100.9";
  std::string plain = request_bytes(sample_request(), ctx);
  ctx.surrogate_capability = true;
  // The same head with the capability just before the blank line.
  EXPECT_EQ(request_bytes(sample_request(), ctx),
            plain.substr(0, plain.size() - 2) + "Surrogate-Capability: ringmaster=\"Surrogate/1.0\"\r\n\r\n");
}

TEST(SerializeRequestHead, ExtendsExistingForwardedForAndVia) {
  RequestHead h = sample_request();
  h.framing = BodyFraming::chunked;
  h.x_forwarded_for = "203.0.113.1, 203.0.113.2";
  h.via = "1.0 fred";
  h.version_minor = 0;
  ForwardContext ctx;
  ctx.client_ip = "::1";
  ctx.proto = "https";
  ctx.via_name = "edge-7";
  EXPECT_EQ(request_bytes(h, ctx),
            "POST /api/v1/items?sort=asc HTTP/1.1\r\n"
            "Host: api.example:8080\r\n"
            "Content-Type: application/json\r\n"
            "Accept: */*\r\n"
            "Transfer-Encoding: chunked\r\n"
            "X-Forwarded-For: 203.0.113.1, 203.0.113.2, ::1\r\n"
            "X-Forwarded-Proto: https\r\n"
            "Via: 1.0 fred, 1.0 edge-7\r\n"
            "\r\n");
}

TEST(SerializeRequestHead, BodilessRequestHasNoFramingField) {
  RequestHead h;
  h.method = Method::get;
  h.method_text = "GET";
  h.target = "/";
  h.host = "h";
  ForwardContext ctx;
  ctx.client_ip = "10.0.0.1";
  EXPECT_EQ(request_bytes(h, ctx),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
            "Via: 1.1 ringmaster\r\n\r\n");
}

TEST(SerializeRequestHead, EmptyHostWritesNoHostLine) {
  RequestHead h;
  h.method_text = "GET";
  h.target = "/";
  h.version_minor = 0;
  ForwardContext ctx;
  ctx.client_ip = "10.0.0.1";
  EXPECT_EQ(request_bytes(h, ctx),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nVia: 1.0 ringmaster\r\n\r\n");
}

TEST(SerializeRequestHead, NoClientIpKeepsExistingForwardedFor) {
  RequestHead h = sample_request();
  h.framing = BodyFraming::none;
  h.fields.clear();
  h.x_forwarded_for = "1.2.3.4";
  EXPECT_EQ(request_bytes(h, ForwardContext{}),
            "POST /api/v1/items?sort=asc HTTP/1.1\r\nHost: api.example:8080\r\nX-Forwarded-For: 1.2.3.4\r\n"
            "X-Forwarded-Proto: http\r\nVia: 1.1 ringmaster\r\n\r\n");
  h.x_forwarded_for = {};
  EXPECT_EQ(request_bytes(h, ForwardContext{}),
            "POST /api/v1/items?sort=asc HTTP/1.1\r\nHost: api.example:8080\r\n"
            "X-Forwarded-Proto: http\r\nVia: 1.1 ringmaster\r\n\r\n");
}

TEST(SerializeRequestHead, AppendsToExistingBufferContents) {
  base::ByteBuffer out;
  out.append("previous");
  ForwardContext ctx;
  ctx.client_ip = "1.1.1.1";
  serialize_request_head(sample_request(), ctx, out);
  EXPECT_EQ(out.view().substr(0, 13), "previousPOST ");
}

TEST(SerializeRequestHead, LargeHeadFitsExactly) {
  RequestHead h = sample_request();
  std::string big(20000, 'v');
  h.fields = {{"X-Big", big}};
  h.content_length = UINT64_MAX;
  ForwardContext ctx;
  ctx.client_ip = "1.1.1.1";
  std::string s = request_bytes(h, ctx);
  EXPECT_NE(s.find("X-Big: " + big + "\r\n"), std::string::npos);
  EXPECT_NE(s.find("Content-Length: 18446744073709551615\r\n"), std::string::npos);
  EXPECT_TRUE(s.ends_with("Via: 1.1 ringmaster\r\n\r\n"));
}

// ---- response framing choice ----

ResponseHead response(uint16_t status, BodyFraming framing, bool has_content_length = false, uint64_t length = 0) {
  ResponseHead h;
  h.status = status;
  h.framing = framing;
  h.has_content_length = has_content_length;
  h.content_length = length;
  return h;
}

struct FramingCase {
  const char* name;
  ResponseHead response;
  Method method;
  uint8_t client_minor;
  bool client_keep_alive;
  BodyFraming framing;
  bool rechunk;
  bool close;
};

class ChooseResponseFraming : public ::testing::TestWithParam<FramingCase> {};

TEST_P(ChooseResponseFraming, PicksFramingForTheClient) {
  const FramingCase& c = GetParam();
  ResponseFraming f = choose_response_framing(c.response, c.method, c.client_minor, c.client_keep_alive);
  EXPECT_EQ(f.framing, c.framing);
  EXPECT_EQ(f.rechunk, c.rechunk);
  EXPECT_EQ(f.close, c.close);
}

INSTANTIATE_TEST_SUITE_P(
    All, ChooseResponseFraming,
    ::testing::Values(
        FramingCase{"ContentLengthStays", response(200, BodyFraming::content_length, true, 5), Method::get, 1, true,
                    BodyFraming::content_length, false, false},
        FramingCase{"ContentLengthStaysForHttp10", response(200, BodyFraming::content_length, true, 5), Method::get,
                    0, true, BodyFraming::content_length, false, false},
        FramingCase{"ChunkedStaysForHttp11", response(200, BodyFraming::chunked), Method::get, 1, true,
                    BodyFraming::chunked, true, false},
        FramingCase{"ChunkedToHttp10IsRawAndCloses", response(200, BodyFraming::chunked), Method::get, 0, true,
                    BodyFraming::close_delimited, false, true},
        FramingCase{"CloseDelimitedBecomesChunked", response(200, BodyFraming::close_delimited), Method::get, 1, true,
                    BodyFraming::chunked, true, false},
        FramingCase{"CloseDelimitedToHttp10Closes", response(200, BodyFraming::close_delimited), Method::get, 0, true,
                    BodyFraming::close_delimited, false, true},
        FramingCase{"ClientCloseIsHonoured", response(200, BodyFraming::chunked), Method::get, 1, false,
                    BodyFraming::chunked, true, true},
        FramingCase{"HeadGetsContentLength", response(200, BodyFraming::none, true, 99), Method::head, 1, true,
                    BodyFraming::content_length, false, false},
        FramingCase{"HeadWithoutContentLength", response(200, BodyFraming::none), Method::head, 1, true,
                    BodyFraming::none, false, false},
        FramingCase{"NotModifiedGetsContentLength", response(304, BodyFraming::none, true, 7), Method::get, 1, true,
                    BodyFraming::content_length, false, false},
        FramingCase{"NoContentNeverGetsContentLength", response(204, BodyFraming::none, true, 3), Method::get, 1,
                    true, BodyFraming::none, false, false},
        FramingCase{"NoContentToHeadNeverGetsContentLength", response(204, BodyFraming::none, true, 3), Method::head,
                    1, true, BodyFraming::none, false, false},
        FramingCase{"BodilessHttp10KeepAliveStaysOpen", response(304, BodyFraming::none), Method::get, 0, true,
                    BodyFraming::none, false, false}),
    [](const ::testing::TestParamInfo<FramingCase>& i) { return std::string(i.param.name); });

// ---- response head ----

std::string response_bytes(const ResponseHead& h, const ResponseFraming& f, uint8_t client_minor,
                           std::string_view via_name = "ringmaster") {
  base::ByteBuffer out;
  serialize_response_head(h, f, client_minor, via_name, out);
  return std::string(out.view());
}

TEST(SerializeResponseHead, WritesFieldsFramingAndVia) {
  ResponseHead h = response(200, BodyFraming::content_length, true, 42);
  h.reason = "OK";
  h.fields = {{"Content-Type", "text/html"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}};
  h.via = "1.1 cache";
  EXPECT_EQ(response_bytes(h, {BodyFraming::content_length, false, false}, 1),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
            "Content-Length: 42\r\nVia: 1.1 cache, 1.1 ringmaster\r\n\r\n");
}

TEST(SerializeResponseHead, ChunkedAndClose) {
  ResponseHead h = response(201, BodyFraming::close_delimited);
  h.reason = "Created";
  h.version_minor = 0;
  EXPECT_EQ(response_bytes(h, {BodyFraming::chunked, true, true}, 1, "rm"),
            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nVia: 1.0 rm\r\n\r\n");
}

TEST(SerializeResponseHead, KeepAliveSpelledOutForHttp10Clients) {
  ResponseHead h = response(200, BodyFraming::content_length, true, 0);
  h.reason = "OK";
  EXPECT_EQ(response_bytes(h, {BodyFraming::content_length, false, false}, 0),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\nVia: 1.1 ringmaster\r\n\r\n");
  EXPECT_EQ(response_bytes(h, {BodyFraming::content_length, false, true}, 0),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\nVia: 1.1 ringmaster\r\n\r\n");
}

TEST(SerializeResponseHead, EmptyReasonUsesStandardPhrase) {
  ResponseHead h = response(404, BodyFraming::content_length, true, 0);
  EXPECT_EQ(response_bytes(h, {BodyFraming::content_length, false, false}, 1),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nVia: 1.1 ringmaster\r\n\r\n");
  ResponseHead odd = response(299, BodyFraming::none);
  EXPECT_EQ(response_bytes(odd, {BodyFraming::none, false, false}, 1), "HTTP/1.1 299 \r\nVia: 1.1 ringmaster\r\n\r\n");
}

TEST(SerializeResponseHead, HeadResponseAnnouncesLengthOnly) {
  ResponseHead h = response(200, BodyFraming::none, true, 5000);
  h.reason = "OK";
  ResponseFraming f = choose_response_framing(h, Method::head, 1, true);
  EXPECT_EQ(response_bytes(h, f, 1), "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nVia: 1.1 ringmaster\r\n\r\n");
}

// ---- the proxy's own answers ----

TEST(WriteErrorResponse, BadGatewayWithClose) {
  base::ByteBuffer out;
  write_error_response(502, true, false, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
            "Connection: close\r\n\r\n502 Bad Gateway\n");
}

TEST(WriteErrorResponse, KeepAliveOmitsConnection) {
  base::ByteBuffer out;
  write_error_response(404, false, false, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n404 Not Found\n");
}

TEST(WriteErrorResponse, HeadOnlyAnnouncesTheBodyItOmits) {
  base::ByteBuffer out;
  write_error_response(503, true, true, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n"
            "Connection: close\r\n\r\n");
}

TEST(WriteErrorResponse, RetryAfterWhenAsked) {
  base::ByteBuffer out;
  write_error_response(503, false, false, out, 3);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n"
            "Retry-After: 3\r\n\r\n503 Service Unavailable\n");
}

TEST(WriteErrorResponse, ContentLengthMatchesBodyForEveryStatus) {
  for (uint16_t status : {400, 404, 405, 408, 413, 414, 417, 431, 500, 501, 502, 503, 504, 505}) {
    base::ByteBuffer out;
    write_error_response(status, false, false, out);
    std::string_view s = out.view();
    size_t end = s.find("\r\n\r\n");
    ASSERT_NE(end, std::string_view::npos);
    std::string_view body = s.substr(end + 4);
    std::string expected_body = std::to_string(status) + " " + std::string(reason_phrase(status)) + "\n";
    EXPECT_EQ(body, expected_body);
    EXPECT_NE(s.find("Content-Length: " + std::to_string(expected_body.size()) + "\r\n"), std::string_view::npos);
  }
}

LocalResponse local(uint16_t status, std::string_view content_type, std::string_view body, bool close) {
  LocalResponse r;
  r.status = status;
  r.content_type = content_type;
  r.body = body;
  r.close = close;
  return r;
}

// The admin listener's, the fleet link's and the no-service answers: the exact bytes each
// wrote by hand before they shared write_response().
TEST(WriteResponse, AdminAnswerWithTypeLengthAndClose) {
  base::ByteBuffer out;
  write_response(local(200, "application/json", "{\"purged\":3}\n", true), out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
            "Connection: close\r\n\r\n{\"purged\":3}\n");
}

TEST(WriteResponse, KeepAliveAnswerHasNoConnectionField) {
  base::ByteBuffer out;
  write_response(local(409, "application/json", "{}", false), out);
  EXPECT_EQ(out.view(), "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
}

TEST(WriteResponse, HeadOnlyAnnouncesTheBodyItOmits) {
  base::ByteBuffer out;
  LocalResponse r = local(404, "text/plain", "no service\n", true);
  r.head_only = true;
  write_response(r, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\n");
}

TEST(WriteResponse, EveryOptionalFieldInItsPlace) {
  base::ByteBuffer out;
  LocalResponse r = local(503, "text/plain", "x", true);
  r.retry_after_s = 7;
  r.request_id = "abc";
  write_response(r, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n"
            "Retry-After: 7\r\nX-Request-Id: abc\r\nConnection: close\r\n\r\nx");
}

TEST(WriteResponse, LargeBodyFitsExactly) {
  base::ByteBuffer out;
  std::string body(100000, 'b');
  write_response(local(200, "text/plain", body, false), out);
  std::string_view s = out.view();
  ASSERT_TRUE(s.ends_with("\r\n\r\n" + body));
  EXPECT_NE(s.find("Content-Length: 100000\r\n"), std::string_view::npos);
}

// The agent's probe and the fleet follower's report: the bytes each wrote by hand before.
TEST(WriteRequest, WritesTheRequestsWeMake) {
  const std::pair<LocalRequest, std::string_view> cases[] = {
      {{"GET", "/health", "10.0.0.1:8080", "ringmaster-agent", "", "", true},
       "GET /health HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: ringmaster-agent\r\nConnection: close\r\n\r\n"},
      {{"POST", "/fleet/report", "127.0.0.1:9", "", "application/json", "{\"a\":1}", false},
       "POST /fleet/report HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Type: application/json\r\n"
       "Content-Length: 7\r\n\r\n{\"a\":1}"},
  };
  for (const auto& [request, expected] : cases) {
    base::ByteBuffer out;
    write_request(request, out);
    EXPECT_EQ(out.view(), expected);
  }
}

TEST(ReasonPhrase, CoversEveryStatusTheProxySends) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(400), "Bad Request");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(405), "Method Not Allowed");
  EXPECT_EQ(reason_phrase(408), "Request Timeout");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(414), "URI Too Long");
  EXPECT_EQ(reason_phrase(417), "Expectation Failed");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(500), "Internal Server Error");
  EXPECT_EQ(reason_phrase(501), "Not Implemented");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(503), "Service Unavailable");
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(299), "");
}

TEST(WriteContinue, WritesInterimResponse) {
  base::ByteBuffer out;
  write_continue(out);
  EXPECT_EQ(out.view(), "HTTP/1.1 100 Continue\r\n\r\n");
}

}  // namespace
}  // namespace ringmaster::http
