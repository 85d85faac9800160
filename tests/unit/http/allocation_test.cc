// The steady state allocates nothing: a connection's parser and output buffer, once warm,
// parse and re-serialise request after request without touching the heap. Counted by
// interposing malloc in this test binary (not under sanitizers, which own malloc).
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define RM_COUNT_ALLOCATIONS 1
extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_calloc(size_t, size_t);
namespace {
bool counting = false;
size_t allocations = 0;
}  // namespace
void start_counting() {
  allocations = 0;
  counting = true;
}
size_t stop_counting() {
  counting = false;
  return allocations;
}
extern "C" void* malloc(size_t n) {
  if (counting) ++allocations;
  return __libc_malloc(n);
}
extern "C" void* realloc(void* p, size_t n) {
  if (counting) ++allocations;
  return __libc_realloc(p, n);
}
extern "C" void* calloc(size_t a, size_t b) {
  if (counting) ++allocations;
  return __libc_calloc(a, b);
}
#else
void start_counting() {}
size_t stop_counting() { return 0; }
#endif

namespace ringmaster::http {
namespace {

const std::string_view kRequests[] = {
    "GET /products/42?ref=home HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0\r\n"
    "Accept: text/html\r\nAccept-Encoding: gzip, br\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
    "Cookie: session=abc; theme=dark\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n"
    "Via: 1.0 a\r\nVia: 1.1 b\r\n\r\n",
    "GET http://origin.example?x=1 HTTP/1.1\r\nHost: origin.example\r\n\r\n",
    "POST /api HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n"
    "0\r\nTrailer-Field: x\r\n\r\n",
    "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
};

void exchange(RequestParser& parser, base::ByteBuffer& out, std::string_view in) {
  parser.reset();
  out.clear();
  ParseResult h = parser.parse_head(in.data(), in.size());
  ASSERT_EQ(h.status, ParseStatus::head_done);
  ForwardContext ctx;
  ctx.client_ip = "192.0.2.1";
  serialize_request_head(parser.head(), ctx, out);
  ParseResult b = parser.parse_body(in.data() + h.consumed, in.size() - h.consumed, out);
  ASSERT_EQ(b.status, ParseStatus::message_done);
}

// The exchanges run in every build (under ASan they still exercise reuse); the counts are
// only checked where malloc is ours to count.
#ifdef RM_COUNT_ALLOCATIONS
#define EXPECT_ALLOCATIONS(n, expected) EXPECT_EQ(n, expected)
#else
#define EXPECT_ALLOCATIONS(n, expected) GTEST_SKIP() << "malloc is owned by the sanitizer"
#endif

TEST(Allocation, CountingSeesAllocations) {
  start_counting();
  {
    base::ByteBuffer fresh;
    fresh.append("x");  // first use allocates (in another translation unit: not elided)
  }
  EXPECT_ALLOCATIONS(stop_counting(), 1u);
}

TEST(Allocation, WarmRequestParserAllocatesNothing) {
  RequestParser parser(Limits{});
  base::ByteBuffer out;
  for (std::string_view in : kRequests) exchange(parser, out, in);  // warm up
  start_counting();
  for (int i = 0; i < 100; ++i) {
    for (std::string_view in : kRequests) exchange(parser, out, in);
  }
  EXPECT_ALLOCATIONS(stop_counting(), 0u);
}

TEST(Allocation, WarmResponseParserAllocatesNothing) {
  std::string_view in =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\n"
      "Via: 1.1 x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  ResponseParser parser;
  base::ByteBuffer out;
  auto run = [&] {
    parser.reset(Method::get);
    out.clear();
    ParseResult h = parser.parse_head(in.data(), in.size());
    ASSERT_EQ(h.status, ParseStatus::head_done);
    ResponseFraming f = choose_response_framing(parser.head(), Method::get, 1, true);
    serialize_response_head(parser.head(), f, 1, "ringmaster", out);
    ParseResult b = parser.parse_body(in.data() + h.consumed, in.size() - h.consumed, out, f.rechunk);
    ASSERT_EQ(b.status, ParseStatus::message_done);
  };
  run();
  start_counting();
  for (int i = 0; i < 100; ++i) run();
  EXPECT_ALLOCATIONS(stop_counting(), 0u);
}

}  // namespace
}  // namespace ringmaster::http
