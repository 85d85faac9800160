// The wire pieces (http/wire.h): exact bytes, into both kinds of output they write to.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"
#include "ringmaster/http/wire.h"

namespace ringmaster::http {
namespace {

TEST(Wire, HeadLinesIntoAStringAndAByteBufferAlike) {
  std::string s;
  base::ByteBuffer b;
  auto both = [&](auto write) {
    write(s);
    write(b);
  };
  both([](auto& out) { wire::status_line(out, 206, reason_phrase(206)); });
  both([](auto& out) { wire::field(out, "ETag", "\"v1\""); });
  both([](auto& out) { wire::field(out, "Content-Length", uint64_t{18446744073709551615u}); });
  both([](auto& out) { wire::content_range(out, 0, 99, 1000); });
  both([](auto& out) { wire::unsatisfied_range(out, 1000); });
  both([](auto& out) { wire::end_of_head(out); });
  const std::string_view expect =
      "HTTP/1.1 206 Partial Content\r\n"
      "ETag: \"v1\"\r\n"
      "Content-Length: 18446744073709551615\r\n"
      "Content-Range: bytes 0-99/1000\r\n"
      "Content-Range: bytes */1000\r\n"
      "\r\n";
  EXPECT_EQ(s, expect);
  EXPECT_EQ(b.view(), expect);
}

TEST(Wire, RequestLineKeepsTheClientsMinorVersion) {
  std::string s;
  wire::request_line(s, "GET", "/a?b=c", 1);
  wire::request_line(s, "GET", "/", 0);
  EXPECT_EQ(s, "GET /a?b=c HTTP/1.1\r\nGET / HTTP/1.0\r\n");
}

TEST(Wire, MultipartDelimiters) {
  std::string s;
  wire::multipart_content_type(s, "0123abcd");
  wire::multipart_delimiter(s, "0123abcd");
  wire::multipart_close(s, "0123abcd");
  EXPECT_EQ(s,
            "Content-Type: multipart/byteranges; boundary=0123abcd\r\n"
            "\r\n--0123abcd\r\n"
            "\r\n--0123abcd--\r\n");
}

TEST(Wire, ChunksInHexAndNothingForEmptyData) {
  base::ByteBuffer b;
  wire::chunk(b, "hello", 5);
  wire::chunk(b, "", 0);
  const std::string big(0x1a2b, 'x');
  wire::chunk(b, big.data(), big.size());
  wire::last_chunk(b);
  EXPECT_EQ(b.view(), "5\r\nhello\r\n1a2b\r\n" + big + "\r\n0\r\n\r\n");
}

TEST(Wire, HitFieldsForEachKindOfConnection) {
  auto bytes = [](wire::HitFields f) {
    base::ByteBuffer b;
    wire::hit_fields(b, f);
    return std::string(b.view());
  };
  EXPECT_EQ(bytes({.content_length = 44, .age_s = 7, .request_id = "rid-1"}),
            "Content-Length: 44\r\nAge: 7\r\nVia: 1.1 ringmaster\r\nX-Request-Id: rid-1\r\n\r\n");
  // The 304, 416 and multipart heads carry their own length: none is written.
  EXPECT_EQ(bytes({.content_length = -1, .age_s = 0, .request_id = "r", .close = true}),
            "Age: 0\r\nVia: 1.1 ringmaster\r\nX-Request-Id: r\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(bytes({.content_length = 0, .age_s = 18446744073709551615u, .request_id = "r", .http10 = true}),
            "Content-Length: 0\r\nAge: 18446744073709551615\r\nVia: 1.1 ringmaster\r\nX-Request-Id: r\r\n"
            "Connection: keep-alive\r\n\r\n");
  // A request id as long as the client may send fits the one reservation.
  const std::string long_id(4096, 'i');
  EXPECT_EQ(bytes({.content_length = 1, .age_s = 1, .request_id = long_id, .close = true}),
            "Content-Length: 1\r\nAge: 1\r\nVia: 1.1 ringmaster\r\nX-Request-Id: " + long_id +
                "\r\nConnection: close\r\n\r\n");
}

}  // namespace
}  // namespace ringmaster::http
