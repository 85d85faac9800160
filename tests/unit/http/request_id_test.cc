// Request ids: which client ids are kept, the generator's shape and uniqueness, and the one
// X-Request-Id on each side of the proxy (README "Request id").
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"
#include "ringmaster/http/request_id.h"

namespace ringmaster::http {
namespace {

TEST(RequestId, KeepsSaneClientIds) {
  EXPECT_TRUE(is_valid_request_id("4bf92f3577b34da6a3ce929d0e0e4736"));
  EXPECT_TRUE(is_valid_request_id("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"));
  EXPECT_TRUE(is_valid_request_id("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"));
  EXPECT_TRUE(is_valid_request_id("Root=1-67891233-abcdef012345678912345678"));
  EXPECT_TRUE(is_valid_request_id("aGVsbG8/d29ybGQ+IQ=="));  // base64
  EXPECT_TRUE(is_valid_request_id("a"));
  EXPECT_TRUE(is_valid_request_id(std::string(kRequestIdBytesMax, 'x')));
}

TEST(RequestId, ReplacesEmptyLongAndOddIds) {
  EXPECT_FALSE(is_valid_request_id(""));
  EXPECT_FALSE(is_valid_request_id(std::string(kRequestIdBytesMax + 1, 'x')));
  for (char c : std::string_view(" \t\"\\,;<>(){}[]?\x7f\x01", 16)) {
    EXPECT_FALSE(is_valid_request_id(std::string("abc") + c + "def")) << int(c);
  }
  EXPECT_FALSE(is_valid_request_id("caf\xc3\xa9"));  // obs-text: not ASCII
}

TEST(RequestId, GeneratedIdsAreThirtyTwoHexDigitsAndDistinct) {
  RequestIdGenerator a(0x0123456789abcdefull, 0);
  RequestIdGenerator b(0xfedcba9876543210ull, 0);  // another reactor: same counter, other prefix
  std::set<std::string> seen;
  char id[kGeneratedRequestIdBytes];
  constexpr int kIdsPerGenerator = 100000;
  for (int i = 0; i < kIdsPerGenerator; ++i) {
    for (RequestIdGenerator* g : {&a, &b}) {
      g->next(id);
      std::string s(id, sizeof id);
      ASSERT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos) << s;
      ASSERT_TRUE(is_valid_request_id(s));
      ASSERT_TRUE(seen.insert(s).second) << "duplicate " << s;
    }
  }
  EXPECT_EQ(std::string_view(id, 16), "fedcba9876543210");  // the reactor's prefix
}

TEST(RequestId, ConsecutiveIdsDoNotLookLikeASeries) {
  // The counter is mixed: neighbours differ in about half their bits, so an id's tail says
  // nothing about the next one (and a prefix search does not match a run of requests).
  RequestIdGenerator g(1, 0);
  char first[kGeneratedRequestIdBytes];
  char second[kGeneratedRequestIdBytes];
  g.next(first);
  g.next(second);
  int same = 0;
  for (size_t i = 16; i < kGeneratedRequestIdBytes; ++i) same += first[i] == second[i];
  EXPECT_LT(same, 6);
}

std::string head_bytes(std::string_view request, std::string_view id) {
  RequestParser parser(Limits{});
  ParseResult r = parser.parse_head(request.data(), request.size());
  EXPECT_EQ(r.status, ParseStatus::head_done);
  ForwardContext ctx;
  ctx.client_ip = "192.0.2.7";
  ctx.request_id = id.empty() ? parser.head().x_request_id : id;
  base::ByteBuffer out;
  serialize_request_head(parser.head(), ctx, out);
  return std::string(out.view());
}

size_t count(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

TEST(RequestIdParsing, ClientIdIsTakenOutOfTheFieldsAndWrittenOnce) {
  RequestParser parser(Limits{});
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\nx-request-id: abc-123\r\nX-A: 1\r\n\r\n";
  ASSERT_EQ(parser.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  EXPECT_EQ(parser.head().x_request_id, "abc-123");
  ASSERT_EQ(parser.head().fields.size(), 1u);
  EXPECT_EQ(parser.head().fields[0].name, "X-A");
  std::string out = head_bytes(in, {});
  EXPECT_EQ(count(out, "X-Request-Id: abc-123\r\n"), 1u) << out;
  EXPECT_EQ(count(out, "equest-id"), 0u) << out;  // the client's spelling is gone
}

TEST(RequestIdParsing, InvalidRepeatedOrMissingIdsAreNotKept) {
  for (std::string_view fields : {"X-Request-Id: a b\r\n", "X-Request-Id: \r\n", "X-Request-Id: a,b\r\n",
                                  "X-Request-Id: one\r\nX-Request-Id: two\r\n", ""}) {
    std::string in = "GET / HTTP/1.1\r\nHost: h\r\n" + std::string(fields) + "\r\n";
    RequestParser parser(Limits{});
    ASSERT_EQ(parser.parse_head(in.data(), in.size()).status, ParseStatus::head_done) << fields;
    EXPECT_EQ(parser.head().x_request_id, "") << fields;
    EXPECT_TRUE(parser.head().fields.empty()) << fields;
    // What the proxy then forwards: its own id, and only that.
    std::string out = head_bytes(in, "00000000000000000000000000000001");
    EXPECT_EQ(count(out, "X-Request-Id: "), 1u) << out;
  }
}

TEST(RequestIdParsing, ResetForgetsThePreviousRequestsId) {
  RequestParser parser(Limits{});
  std::string first = "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: first\r\n\r\n";
  ASSERT_EQ(parser.parse_head(first.data(), first.size()).status, ParseStatus::head_done);
  parser.reset();
  std::string second = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(parser.parse_head(second.data(), second.size()).status, ParseStatus::head_done);
  EXPECT_EQ(parser.head().x_request_id, "");
}

TEST(RequestIdParsing, BackendIdIsDroppedAndTheProxysEchoed) {
  ResponseParser parser;
  parser.reset(Method::get);
  std::string in = "HTTP/1.1 200 OK\r\nX-Request-Id: backend-own\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";
  ASSERT_NE(parser.parse_head(in.data(), in.size()).status, ParseStatus::error);
  ASSERT_EQ(parser.head().fields.size(), 1u);
  EXPECT_EQ(parser.head().fields[0].name, "X-A");
  base::ByteBuffer out;
  ResponseFraming framing = choose_response_framing(parser.head(), Method::get, 1, true);
  serialize_response_head(parser.head(), framing, 1, "ringmaster", out, "proxy-id");
  std::string bytes(out.view());
  EXPECT_EQ(count(bytes, "X-Request-Id: "), 1u) << bytes;
  EXPECT_EQ(count(bytes, "X-Request-Id: proxy-id\r\n"), 1u) << bytes;
}

TEST(RequestIdParsing, LocalErrorsCarryTheId) {
  base::ByteBuffer out;
  write_error_response(502, false, false, out, 0, "err-id");
  EXPECT_EQ(count(out.view(), "\r\nX-Request-Id: err-id\r\n"), 1u) << out.view();
  base::ByteBuffer without;
  write_error_response(502, false, false, without);
  EXPECT_EQ(count(without.view(), "X-Request-Id"), 0u);
}

}  // namespace
}  // namespace ringmaster::http
