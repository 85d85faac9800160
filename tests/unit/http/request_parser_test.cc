// RequestParser: every rule the proxy relies on, asserted on the status a client would get
// and, for valid requests, on the exact bytes a backend would get.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"
#include "test_support.h"

namespace ringmaster::http {
namespace {

using namespace std::string_literals;
using test_support::dechunk;
using test_support::kAllAtOnce;
using test_support::parse_request;
using test_support::RequestOutcome;

const std::string kTail11 = "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 ringmaster\r\n\r\n";
const std::string kTail10 = "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.0 ringmaster\r\n\r\n";

// ---- valid requests: exact re-serialised head and re-framed body ----

struct ValidCase {
  const char* name;
  std::string input;
  std::string head;
  std::string body;
};

std::vector<ValidCase> valid_cases() {
  return {
      {"SimpleGet", "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
       "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n" + kTail11, ""},
      {"BrowserGet",
       "GET /app/page HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
       "Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\n"
       "Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: a=1; b=2\r\n"
       "Upgrade-Insecure-Requests: 1\r\nCache-Control: max-age=0\r\n\r\n",
       "GET /app/page HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
       "Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\n"
       "Accept-Encoding: gzip, deflate, br\r\nCookie: a=1; b=2\r\nUpgrade-Insecure-Requests: 1\r\n"
       "Cache-Control: max-age=0\r\n" +
           kTail11,
       ""},
      {"Http10WithoutHostGetsNoHostLine", "GET / HTTP/1.0\r\nUser-Agent: old\r\n\r\n",
       "GET / HTTP/1.1\r\nUser-Agent: old\r\n" + kTail10, ""},
      {"Http10KeepAlive", "GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: h\r\n" + kTail10, ""},
      {"HopByHopFieldsRemoved",
       "GET / HTTP/1.1\r\nHost: h\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
       "Trailer: X-T\r\nUpgrade: websocket\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Forwarded-Proto: https\r\n"
       "Connection: Upgrade, HTTP2-Settings, X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: h\r\nX-Kept: 2\r\n" + kTail11, ""},
      {"FieldNamedByConnectionBeforeItIsRemoved",
       "GET / HTTP/1.1\r\nX-Hop: 1\r\nHost: h\r\nconnection: x-hop\r\nX-End: 2\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: h\r\nX-End: 2\r\n" + kTail11, ""},
      {"ForwardedForAndViaExtended",
       "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.1\r\nVia: 1.0 fred\r\n"
       "x-forwarded-for: 198.51.100.2, 198.51.100.3\r\nVIA: 1.1 p.example (Squid)\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.1, 198.51.100.2, 198.51.100.3, 192.0.2.7\r\n"
       "X-Forwarded-Proto: http\r\nVia: 1.0 fred, 1.1 p.example (Squid), 1.1 ringmaster\r\n\r\n",
       ""},
      {"AbsoluteFormBecomesOriginForm", "GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
       "GET /p/q?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n" + kTail11, ""},
      {"AbsoluteFormWithoutPath", "GET https://example.com HTTP/1.1\r\nHost: x\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: example.com\r\n" + kTail11, ""},
      {"AbsoluteFormQueryWithoutPath", "GET http://example.com?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
       "GET /?x=1 HTTP/1.1\r\nHost: example.com\r\n" + kTail11, ""},
      {"AsteriskFormForOptions", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: h\r\n" + kTail11,
       ""},
      {"ContentLengthBody",
       "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
       "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n" + kTail11,
       "hello world"},
      {"ZeroContentLengthKept", "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
       "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n" + kTail11, ""},
      {"ChunkedBodyRechunked",
       "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
       "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" + kTail11,
       "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
      {"ChunkExtensionsTrailersAndLeadingZerosDropped",
       "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n00005;name=value\r\nhello\r\n"
       "A;flag\r\n0123456789\r\n0;last=\"q\"\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n",
       "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" + kTail11,
       "5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n"},
      {"ExpectContinueRemoved", "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok",
       "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n" + kTail11, "ok"},
      {"FieldValuesTrimmedObsTextKept",
       "GET / HTTP/1.1\r\nHost: h \r\nX-A:   spaced  value \t\r\nX-B:\xff\xfe\r\nX-Empty:\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: h\r\nX-A: spaced  value\r\nX-B: \xff\xfe\r\nX-Empty: \r\n" + kTail11, ""},
      {"UnknownMethodForwarded", "PROPFIND /dav HTTP/1.1\r\nHost: h\r\nDepth: 1\r\n\r\n",
       "PROPFIND /dav HTTP/1.1\r\nHost: h\r\nDepth: 1\r\n" + kTail11, ""},
      {"LeadingEmptyLineIgnored", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "GET / HTTP/1.1\r\nHost: h\r\n" + kTail11, ""},
      {"Ipv6HostLiteral", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n" + kTail11, ""},
      {"WebSocketUpgradeForwardedAsPlainRequest",
       "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
       "GET /ws HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + kTail11, ""},
      {"UpgradeWithChunkedBody",
       "POST /x HTTP/1.1\r\nHost: h\r\nUpgrade: foo\r\nConnection: upgrade\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n0\r\n\r\n",
       "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" + kTail11, "3\r\nabc\r\n0\r\n\r\n"},
      {"LowercaseFramingFieldNames", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n" + kTail11, "abc"},
      {"DuplicateEndToEndFieldsKeptInOrder", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\n" + kTail11, ""},
  };
}

class RequestParserValid : public ::testing::TestWithParam<ValidCase> {};

TEST_P(RequestParserValid, ReserialisesExactly) {
  const ValidCase& c = GetParam();
  RequestOutcome o = parse_request(c.input);
  ASSERT_EQ(o.status, ParseStatus::message_done) << o.error_status << " " << o.error_reason;
  EXPECT_EQ(o.head, c.head);
  EXPECT_EQ(o.body, c.body);
  EXPECT_EQ(o.consumed, c.input.size());
}

TEST_P(RequestParserValid, OneByteAtATimeGivesTheSameResult) {
  const ValidCase& c = GetParam();
  RequestOutcome whole = parse_request(c.input);
  for (size_t step : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}}) {
    RequestOutcome split = parse_request(c.input, step);
    ASSERT_EQ(split.status, ParseStatus::message_done) << "step " << step << ": " << split.error_reason;
    EXPECT_EQ(split.head, whole.head) << "step " << step;
    EXPECT_EQ(split.head_consumed, whole.head_consumed) << "step " << step;
    EXPECT_EQ(split.consumed, whole.consumed) << "step " << step;
    // Chunk boundaries follow the input's splits; the content does not.
    if (c.body.ends_with("0\r\n\r\n")) {
      EXPECT_EQ(dechunk(split.body), dechunk(whole.body)) << "step " << step;
    } else {
      EXPECT_EQ(split.body, whole.body) << "step " << step;
    }
  }
}

TEST_P(RequestParserValid, SerialisedHeadParsesBackToTheSameHead) {
  const ValidCase& c = GetParam();
  RequestParser first(Limits{});
  test_support::RequestOutcome o1 = test_support::feed_request(first, c.input, kAllAtOnce);
  ASSERT_EQ(o1.status, ParseStatus::message_done);
  const RequestHead& h1 = first.head();
  if (h1.host.empty()) GTEST_SKIP() << "an HTTP/1.0 request without Host has none to forward";
  RequestParser second(Limits{});
  test_support::RequestOutcome o2 = test_support::feed_request(second, o1.head + o1.body, kAllAtOnce);
  ASSERT_EQ(o2.status, ParseStatus::message_done) << o2.error_reason;
  const RequestHead& h2 = second.head();
  EXPECT_EQ(h2.method, h1.method);
  EXPECT_EQ(h2.method_text, h1.method_text);
  EXPECT_EQ(h2.target, h1.target);
  EXPECT_EQ(h2.host, h1.host);
  EXPECT_EQ(h2.version_minor, 1);
  EXPECT_EQ(h2.framing, h1.framing);
  EXPECT_EQ(h2.content_length, h1.content_length);
  ASSERT_EQ(h2.fields.size(), h1.fields.size());
  for (size_t i = 0; i < h1.fields.size(); ++i) {
    EXPECT_EQ(h2.fields[i].name, h1.fields[i].name);
    EXPECT_EQ(h2.fields[i].value, h1.fields[i].value);
  }
  std::string xff = h1.x_forwarded_for.empty() ? "192.0.2.7" : std::string(h1.x_forwarded_for) + ", 192.0.2.7";
  EXPECT_EQ(h2.x_forwarded_for, xff);
  std::string via = std::string(h1.via.empty() ? "" : std::string(h1.via) + ", ") +
                    (h1.version_minor == 0 ? "1.0 ringmaster" : "1.1 ringmaster");
  EXPECT_EQ(h2.via, via);
  // Decoded body is unchanged by the re-framing.
  EXPECT_EQ(o2.body, o1.body);
}

INSTANTIATE_TEST_SUITE_P(All, RequestParserValid, ::testing::ValuesIn(valid_cases()),
                         [](const ::testing::TestParamInfo<ValidCase>& i) { return std::string(i.param.name); });

// ---- invalid requests: the status the client gets ----

struct InvalidCase {
  const char* name;
  std::string input;
  uint16_t status;
  Limits limits = {};
};

Limits small_limits() {
  Limits l;
  l.request_line_bytes_max = 32;
  l.header_bytes_max = 128;
  l.header_count_max = 3;
  l.body_bytes_max = 10;
  return l;
}

std::vector<InvalidCase> invalid_cases() {
  const std::string get = "GET / HTTP/1.1\r\nHost: h\r\n";
  const std::string post_chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  return {
      // Line structure (llhttp 8.1.0 lets several of these through; the scanner stops them).
      {"ObsFold", get + "X: a\r\n b\r\n\r\n", 400},
      {"ObsFoldWithTab", get + "X: a\r\n\tb\r\n\r\n", 400},
      {"WhitespaceBeforeFirstField", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400},
      {"BareLfEndingRequestLine", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
      {"BareLfEndingField", get + "X: a\nY: b\r\n\r\n", 400},
      {"BareLfAsFinalEmptyLine", get + "\n", 400},
      {"BareLfEverywhere", "GET / HTTP/1.1\nHost: h\n\n", 400},
      {"BareCrInValue", get + "X: a\rb\r\n\r\n", 400},
      {"BareCrAsFinalLine", get + "\rX", 400},
      {"BareCrInRequestLine", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"BareCrAfterVersion", "GET / HTTP/1.1\rHost: h\r\n\r\n", 400},
      {"BareLfBeforeRequestLine", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      // Field names and values.
      {"WhitespaceBeforeColon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
      {"EmptyFieldName", get + ": a\r\n\r\n", 400},
      {"NonTokenFieldName", get + "X@Y: a\r\n\r\n", 400},
      {"FieldLineWithoutColon", get + "X a\r\n\r\n", 400},
      {"NulInValue", get + "X: a"s + '\0' + "b\r\n\r\n", 400},
      {"ControlInValue", get + "X: a\x01z\r\n\r\n", 400},
      {"DelInValue", get + "X: a\x7fz\r\n\r\n", 400},
      // Request line.
      {"DoubleSpaceBeforeTarget", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"DoubleSpaceAfterTarget", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"MissingVersion", "GET /\r\nHost: h\r\n\r\n", 400},
      {"RtspProtocol", "GET / RTSP/1.0\r\nHost: h\r\n\r\n", 400},
      {"LowercaseProtocol", "GET / http/1.1\r\nHost: h\r\n\r\n", 400},
      {"TrailingSpaceAfterVersion", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400},
      {"VersionWithTwoMinorDigits", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400},
      {"VersionNotDigits", "GET / HTTP/x.y\r\nHost: h\r\n\r\n", 400},
      {"Http2Version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"Http12Version", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505},
      {"Http09Version", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505},
      {"Http3Version", "GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505},
      {"H2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},  // "*" is only for OPTIONS
      {"ControlInTarget", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"NonAsciiInTarget", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"FragmentInTarget", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"RelativeTarget", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"AuthorityFormWithoutConnect", "GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"AsteriskWithoutOptions", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"AbsoluteFormWithUserinfo", "GET http://user:pw@example.com/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"AbsoluteFormOtherScheme", "GET ftp://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"AbsoluteFormEmptyAuthority", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"AbsoluteFormBadPort", "GET http://example.com:99999/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"AbsoluteFormDuplicateHost", "GET http://example.com/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
      {"ConnectMethod", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501},
      {"UnknownTokenMethod", "FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
      {"LowercaseMethod", "get / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
      {"GarbageMethod", "\x01GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      // Limits, each at its edge (the passing side is in LimitsAreInclusive below).
      {"RequestLineOverLimit", "GET /" + std::string(19, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 414, small_limits()},
      {"HeadOverLimit", "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(97, 'a') + "\r\n\r\n", 431, small_limits()},
      {"TooManyFields", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, small_limits()},
      {"ContentLengthOverLimit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", 413, small_limits()},
      {"ChunkedBodyOverLimit", post_chunked + "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", 413, small_limits()},
      {"ChunkSizeAloneOverLimit", post_chunked + "b\r\n", 413, small_limits()},
      {"ChunkSizeOfMaxUint64", post_chunked + "ffffffffffffffff\r\n", 413},
      // Host.
      {"MissingHost", "GET / HTTP/1.1\r\nX: 1\r\n\r\n", 400},
      {"DuplicateHost", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"DuplicateIdenticalHost", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
      {"EmptyHost", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
      {"HostWithSpace", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"HostWithUserinfo", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400},
      {"HostWithPath", "GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", 400},
      {"HostUnclosedBracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
      {"HostPortTooBig", "GET / HTTP/1.1\r\nHost: h:65536\r\n\r\n", 400},
      {"HostPortNotDigits", "GET / HTTP/1.1\r\nHost: h:http\r\n\r\n", 400},
      {"HostBadPercentEncoding", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400},
      // Content-Length.
      {"ContentLengthWithSign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", 400},
      {"ContentLengthNegative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
      {"ContentLengthList", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
      {"ContentLengthInnerSpace", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 4\r\n\r\nabc", 400},
      {"ContentLengthHex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400},
      {"ContentLengthEmpty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400},
      {"ContentLengthOverflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", 400},
      {"DuplicateEqualContentLength", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
      {"DuplicateDifferentContentLength",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
      // Transfer-Encoding.
      {"ContentLengthWithTransferEncoding",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"TransferEncodingWithContentLength",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
      {"TransferEncodingInHttp10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"ChunkedTwiceInOneField", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
      {"TwoTransferEncodingFields",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GzipThenChunkedNotImplemented", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"GzipOnly", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"ChunkedNotLast", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"IdentityCoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400},
      {"ChunkedLookalike", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
      {"ChunkedWithParameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400},
      {"UnknownCodingThenChunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 400},
      // Connection.
      {"ConnectionNamesContentLength", "POST / HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\n\r\n", 400},
      {"ConnectionNamesTransferEncoding", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, Transfer-Encoding\r\n\r\n",
       400},
      {"ConnectionNamesHost", "GET / HTTP/1.1\r\nHost: h\r\nConnection: host\r\n\r\n", 400},
      {"ConnectionWithNonToken", "GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n", 400},
      // Expect.
      {"UnknownExpectation", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417},
      // Chunked framing (llhttp 8.1.0 rejects these itself; the tests pin it).
      {"ChunkSizeLeadingSpace", post_chunked + " 5\r\nhello\r\n0\r\n\r\n", 400},
      {"ChunkSizeTrailingSpace", post_chunked + "5 \r\nhello\r\n0\r\n\r\n", 400},
      {"ChunkSizeHexPrefix", post_chunked + "0x5\r\nhello\r\n0\r\n\r\n", 400},
      {"ChunkSizeNegative", post_chunked + "-1\r\nhello\r\n0\r\n\r\n", 400},
      {"ChunkSizeEmpty", post_chunked + "\r\nhello\r\n0\r\n\r\n", 400},
      {"ChunkSizeOverflow", post_chunked + "1ffffffffffffffff\r\n", 400},
      {"ChunkDataWithoutCrlf", post_chunked + "5\r\nhelloX\r\n0\r\n\r\n", 400},
      {"ChunkDataTooLong", post_chunked + "5\r\nhello0\r\n\r\n", 400},
      {"ChunkSizeBareLf", post_chunked + "5\nhello\r\n0\r\n\r\n", 400},
      {"ChunkDataBareLf", post_chunked + "5\r\nhello\n0\r\n\r\n", 400},
      {"ChunkExtensionTooLong", post_chunked + "5;x=" + std::string(5000, 'a') + "\r\nhello\r\n0\r\n\r\n", 400},
      {"ChunkSizeEndlessZeros", post_chunked + std::string(5000, '0') + "5\r\nhello\r\n0\r\n\r\n", 400},
      {"ChunkExtensionEmptyName", post_chunked + "5;\r\nhello\r\n0\r\n\r\n", 400},
      {"TrailerObsFold", post_chunked + "0\r\nX: a\r\n b\r\n\r\n", 400},
      {"TrailerBareLfFinalLine", post_chunked + "0\r\n\n", 400},
      {"TrailerBareLfField", post_chunked + "0\r\nX: a\nY: b\r\n\r\n", 400},
      {"TrailersOverLimit", post_chunked + "0\r\nX: " + std::string(200, 'a') + "\r\n\r\n", 431, small_limits()},
  };
}

class RequestParserInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(RequestParserInvalid, AnswersWithStatus) {
  const InvalidCase& c = GetParam();
  RequestOutcome o = parse_request(c.input, kAllAtOnce, c.limits);
  ASSERT_EQ(o.status, ParseStatus::error) << "accepted; head:\n" << o.head;
  EXPECT_EQ(o.error_status, c.status) << o.error_reason;
  EXPECT_FALSE(o.error_reason.empty());
}

TEST_P(RequestParserInvalid, OneByteAtATimeGivesTheSameStatusAndReason) {
  const InvalidCase& c = GetParam();
  RequestOutcome whole = parse_request(c.input, kAllAtOnce, c.limits);
  for (size_t step : {size_t{1}, size_t{2}, size_t{5}}) {
    RequestOutcome split = parse_request(c.input, step, c.limits);
    ASSERT_EQ(split.status, ParseStatus::error) << "step " << step;
    EXPECT_EQ(split.error_status, whole.error_status) << "step " << step;
    EXPECT_EQ(split.error_reason, whole.error_reason) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(All, RequestParserInvalid, ::testing::ValuesIn(invalid_cases()),
                         [](const ::testing::TestParamInfo<InvalidCase>& i) { return std::string(i.param.name); });

// ---- head facts ----

TEST(RequestParser, ReportsMethodTargetHostAndVersion) {
  RequestParser p(Limits{});
  std::string in = "DELETE /items/7 HTTP/1.1\r\nHost: api.example:8080\r\n\r\n";
  ParseResult r = p.parse_head(in.data(), in.size());
  ASSERT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(p.head().method, Method::delete_);
  EXPECT_EQ(p.head().method_text, "DELETE");
  EXPECT_EQ(p.head().target, "/items/7");
  EXPECT_EQ(p.head().host, "api.example:8080");
  EXPECT_EQ(p.head().version_minor, 1);
  EXPECT_EQ(p.head().framing, BodyFraming::none);
  EXPECT_TRUE(p.head().is_idempotent());
  EXPECT_TRUE(p.body_done());
}

TEST(RequestParser, MapsMethodsFromText) {
  struct {
    const char* text;
    Method method;
    bool idempotent;
  } cases[] = {{"GET", Method::get, true},         {"HEAD", Method::head, true},
               {"POST", Method::post, false},      {"PUT", Method::put, true},
               {"DELETE", Method::delete_, true},  {"OPTIONS", Method::options, true},
               {"TRACE", Method::trace, true},     {"PATCH", Method::patch, false},
               {"PROPFIND", Method::other, false}, {"PURGE", Method::other, false}};
  for (const auto& c : cases) {
    RequestParser p(Limits{});
    std::string in = std::string(c.text) + " / HTTP/1.1\r\nHost: h\r\n\r\n";
    ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done) << c.text;
    EXPECT_EQ(p.head().method, c.method) << c.text;
    EXPECT_EQ(p.head().method_text, c.text);
    EXPECT_EQ(p.head().is_idempotent(), c.idempotent) << c.text;
  }
}

TEST(RequestParser, KeepAliveFollowsVersionAndConnection) {
  struct {
    const char* head;
    bool keep_alive;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
  };
  for (const auto& c : cases) {
    RequestParser p(Limits{});
    std::string in = c.head;
    ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done) << c.head;
    EXPECT_EQ(p.head().keep_alive, c.keep_alive) << c.head;
  }
}

TEST(RequestParser, ExpectContinueIsReportedAndRemoved) {
  RequestParser p(Limits{});
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  EXPECT_TRUE(p.head().expect_continue);
  for (const Field& f : p.head().fields) EXPECT_NE(f.name, "Expect");
  EXPECT_FALSE(p.body_done());
}

TEST(RequestParser, ExpectContinueIgnoredForHttp10) {
  RequestParser p(Limits{});
  std::string in = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  EXPECT_FALSE(p.head().expect_continue);
}

TEST(RequestParser, AbsoluteFormIgnoresHostField) {
  RequestParser p(Limits{});
  std::string in = "GET http://origin.example/x HTTP/1.1\r\nHost: not valid at all\r\n\r\n";
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  EXPECT_EQ(p.head().host, "origin.example");
  EXPECT_EQ(p.head().target, "/x");
}

TEST(RequestParser, ConnectIsNotSupported) {
  RequestOutcome o = parse_request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  EXPECT_EQ(o.error_status, 501);
  EXPECT_EQ(o.error_reason, "CONNECT not supported");
}

TEST(RequestParser, ErrorReasonsNameTheProblem) {
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n").error_reason, "obs-fold");
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: h\r\n\n").error_reason, "bare LF");
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n").error_reason, "duplicate Host");
  EXPECT_EQ(parse_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n").error_status,
            400);
}

// ---- byte classes, exhaustively (these pin llhttp's strict checks too: the parser relies
// on llhttp for the bytes of field names) ----

bool rfc_tchar(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos);
}

TEST(RequestParser, FieldNameBytesAreExactlyTchar) {
  for (int c = 0; c < 256; ++c) {
    if (c == ':') continue;  // ends the name
    std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX"s + static_cast<char>(c) + "Y: v\r\n\r\n";
    EXPECT_EQ(parse_request(in).status == ParseStatus::message_done, rfc_tchar(c)) << "byte " << c;
  }
}

TEST(RequestParser, FieldValueBytesAreVcharObsTextSpaceAndTab) {
  for (int c = 0; c < 256; ++c) {
    std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX: a"s + static_cast<char>(c) + "b\r\n\r\n";
    bool allowed = c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
    EXPECT_EQ(parse_request(in).status == ParseStatus::message_done, allowed) << "byte " << c;
  }
}

TEST(RequestParser, TargetBytesAreVisibleAsciiWithoutFragment) {
  for (int c = 0; c < 256; ++c) {
    std::string in = "GET /a"s + static_cast<char>(c) + "b HTTP/1.1\r\nHost: h\r\n\r\n";
    bool allowed = c > 0x20 && c < 0x7f && c != '#';
    EXPECT_EQ(parse_request(in).status == ParseStatus::message_done, allowed) << "byte " << c;
  }
}

TEST(RequestParser, LongValuesCheckedWordByWordIncludingTheTail) {
  // Values of every length around the 8-byte word size, with a bad byte at every position.
  for (size_t len = 1; len <= 24; ++len) {
    for (size_t bad = 0; bad < len; ++bad) {
      std::string value(len, 'v');
      value[bad] = '\x01';
      if (bad == 0 || bad == len - 1) continue;  // would be trimmed/confused with OWS handling
      std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX: " + value + "\r\n\r\n";
      EXPECT_EQ(parse_request(in).error_status, 400) << len << " " << bad;
    }
    std::string tabbed(len, 't');
    tabbed[len / 2] = '\t';
    std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX: " + tabbed + "\r\n\r\n";
    EXPECT_EQ(parse_request(in).status, ParseStatus::message_done) << len;
  }
}

// ---- limits at their edges ----

TEST(RequestParser, RequestLineAtLimitPasses) {
  Limits l = small_limits();
  std::string line = "GET /" + std::string(18, 'a') + " HTTP/1.1";  // 32 bytes
  ASSERT_EQ(line.size(), 32u);
  RequestOutcome o = parse_request(line + "\r\nHost: h\r\n\r\n", kAllAtOnce, l);
  EXPECT_EQ(o.status, ParseStatus::message_done) << o.error_reason;
  o = parse_request("GET /" + std::string(19, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 1, l);
  EXPECT_EQ(o.error_status, 414);
}

TEST(RequestParser, HeadAtLimitPasses) {
  Limits l = small_limits();
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(96, 'a') + "\r\n\r\n";
  ASSERT_EQ(head.size(), 128u);
  EXPECT_EQ(parse_request(head, kAllAtOnce, l).status, ParseStatus::message_done);
  EXPECT_EQ(parse_request(head, 1, l).status, ParseStatus::message_done);
  std::string over = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(97, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse_request(over, kAllAtOnce, l).error_status, 431);
  EXPECT_EQ(parse_request(over, 1, l).error_status, 431);
}

TEST(RequestParser, FieldCountAtLimitPasses) {
  Limits l = small_limits();
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", kAllAtOnce, l).status,
            ParseStatus::message_done);
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", kAllAtOnce, l).error_status,
            431);
}

TEST(RequestParser, ContentLengthAtBodyLimitPasses) {
  Limits l = small_limits();
  RequestOutcome o = parse_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", kAllAtOnce, l);
  EXPECT_EQ(o.status, ParseStatus::message_done);
  EXPECT_EQ(o.body, "0123456789");
  // One more is refused at the head, before any body byte is read.
  RequestParser p(l);
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
  ParseResult r = p.parse_head(in.data(), in.size());
  EXPECT_EQ(r.status, ParseStatus::error);
  EXPECT_EQ(p.error_status(), 413);
}

TEST(RequestParser, ChunkedBodyAtLimitPasses) {
  Limits l = small_limits();
  std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  RequestOutcome o = parse_request(head + "4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n", kAllAtOnce, l);
  EXPECT_EQ(o.status, ParseStatus::message_done);
  EXPECT_EQ(dechunk(o.body), "0123456789");
  o = parse_request(head + "4\r\n0123\r\n7\r\n456789X\r\n0\r\n\r\n", kAllAtOnce, l);
  EXPECT_EQ(o.error_status, 413);
  o = parse_request(head + "4\r\n0123\r\n7\r\n456789X\r\n0\r\n\r\n", 1, l);
  EXPECT_EQ(o.error_status, 413);
}

TEST(RequestParser, ChunkExtensionUnderBoundPasses) {
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=" + std::string(4000, 'a') +
                   "\r\nhello\r\n0\r\n\r\n";
  RequestOutcome o = parse_request(in);
  EXPECT_EQ(o.status, ParseStatus::message_done) << o.error_reason;
  EXPECT_EQ(o.body, "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(parse_request(in, 1).status, ParseStatus::message_done);
}

// llhttp 8.1.0 rejects an extension that follows one with a value ("a=b;c"), a bug fixed in
// later versions. We inherit the refusal: rare in practice and on the safe side.
TEST(RequestParser, ChunkExtensionAfterValuedExtensionIsRefusedByLlhttp) {
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c=d\r\nhello\r\n0\r\n\r\n";
  EXPECT_EQ(parse_request(in).error_status, 400);
  std::string ok = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a;b\r\nhello\r\n0\r\n\r\n";
  EXPECT_EQ(parse_request(ok).status, ParseStatus::message_done);
}

// ---- incremental behaviour ----

TEST(RequestParser, HeadConsumedStopsAtTheEndOfTheHead) {
  RequestParser p(Limits{});
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n";
  ParseResult r = p.parse_head(in.data(), in.size());
  ASSERT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(r.consumed, in.find("hello"));
  base::ByteBuffer out;
  ParseResult b = p.parse_body(in.data() + r.consumed, in.size() - r.consumed, out);
  EXPECT_EQ(b.status, ParseStatus::message_done);
  EXPECT_EQ(b.consumed, 5u);
  EXPECT_EQ(out.view(), "hello");
  EXPECT_EQ(p.body_bytes(), 5u);
}

TEST(RequestParser, BodilessRequestIsDoneRightAfterItsHead) {
  RequestParser p(Limits{});
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\n";
  ParseResult r = p.parse_head(in.data(), in.size());
  ASSERT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(r.consumed, in.find("GET /next"));
  EXPECT_TRUE(p.body_done());
  base::ByteBuffer out;
  ParseResult b = p.parse_body(in.data() + r.consumed, in.size() - r.consumed, out);
  EXPECT_EQ(b.status, ParseStatus::message_done);
  EXPECT_EQ(b.consumed, 0u);
  EXPECT_TRUE(out.empty());
}

TEST(RequestParser, PipelinedRequestsParseOneAfterAnother) {
  std::string first = "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n";
  std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string third = "PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy";
  std::string all = first + second + third;
  for (size_t step : {kAllAtOnce, size_t{1}, size_t{4}}) {
    RequestParser p(Limits{});
    std::string_view rest = all;
    std::vector<std::string> targets;
    std::vector<std::string> bodies;
    for (int i = 0; i < 3; ++i) {
      RequestOutcome o = test_support::feed_request(p, rest, step);
      ASSERT_EQ(o.status, ParseStatus::message_done) << "request " << i << " step " << step << ": " << o.error_reason;
      targets.emplace_back(p.head().target);
      bodies.push_back(p.head().framing == BodyFraming::chunked ? dechunk(o.body) : o.body);
      rest.remove_prefix(o.consumed);
      p.reset();
    }
    EXPECT_TRUE(rest.empty());
    EXPECT_EQ(targets, (std::vector<std::string>{"/a", "/b", "/c"})) << "step " << step;
    EXPECT_EQ(bodies, (std::vector<std::string>{"abc", "", "xy"})) << "step " << step;
  }
}

TEST(RequestParser, ChunkedMessageConsumedStopsAtItsEnd) {
  RequestParser p(Limits{});
  std::string msg = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
  std::string in = msg + "GET / HTTP/1.1\r\n";
  ParseResult h = p.parse_head(in.data(), in.size());
  ASSERT_EQ(h.status, ParseStatus::head_done);
  base::ByteBuffer out;
  ParseResult b = p.parse_body(in.data() + h.consumed, in.size() - h.consumed, out);
  EXPECT_EQ(b.status, ParseStatus::message_done);
  EXPECT_EQ(h.consumed + b.consumed, msg.size());
  EXPECT_EQ(out.view(), "2\r\nab\r\n0\r\n\r\n");
}

TEST(RequestParser, ParseBodyAppendsAtMostLenPlus32) {
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "1\r\na\r\n10\r\n0123456789abcdef\r\n3;e=1\r\nxyz\r\n0\r\nT: v\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{2}, size_t{3}, size_t{9}}) {
    RequestParser p(Limits{});
    ParseResult h = p.parse_head(in.data(), in.size());
    ASSERT_EQ(h.status, ParseStatus::head_done);
    size_t pos = h.consumed;
    base::ByteBuffer out;
    while (pos < in.size()) {
      size_t n = std::min(step, in.size() - pos);
      size_t before = out.size();
      ParseResult b = p.parse_body(in.data() + pos, n, out);
      ASSERT_NE(b.status, ParseStatus::error) << p.error_reason();
      EXPECT_LE(out.size() - before, b.consumed + 32);
      pos += b.consumed;
      if (b.status == ParseStatus::message_done) break;
    }
    EXPECT_EQ(pos, in.size());
    EXPECT_EQ(dechunk(out.view()), "a0123456789abcdefxyz");
    EXPECT_EQ(p.body_bytes(), 20u);
  }
}

TEST(RequestParser, ResetAfterErrorParsesAFreshRequest) {
  RequestParser p(Limits{});
  std::string bad = "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n";
  EXPECT_EQ(p.parse_head(bad.data(), bad.size()).status, ParseStatus::error);
  EXPECT_EQ(p.parse_head(bad.data(), bad.size()).status, ParseStatus::error);  // stays failed
  p.reset();
  std::string good = "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(p.parse_head(good.data(), good.size()).status, ParseStatus::head_done);
  EXPECT_EQ(p.head().target, "/ok");
  EXPECT_EQ(p.error_status(), 0);
}

TEST(RequestParser, ResetMidBodyParsesAFreshRequest) {
  RequestParser p(Limits{});
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  p.reset();
  std::string next = "GET /n HTTP/1.1\r\nHost: h\r\n\r\n";
  ParseResult r = p.parse_head(next.data(), next.size());
  EXPECT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(r.consumed, next.size());
}

TEST(RequestParser, FieldViewsSurviveInputBufferReuse) {
  RequestParser p(Limits{});
  std::string in = "GET /x HTTP/1.1\r\nHost: h\r\nX-Long: " + std::string(3000, 'v') + "\r\nX-Short: s\r\n\r\n";
  // Deliver in small pieces through one reused buffer, forcing the parser's storage to grow.
  char buf[16];
  size_t pos = 0;
  ParseResult r{ParseStatus::need_more, 0};
  while (pos < in.size() && r.status == ParseStatus::need_more) {
    size_t n = std::min(sizeof buf, in.size() - pos);
    std::memcpy(buf, in.data() + pos, n);
    r = p.parse_head(buf, n);
    std::memset(buf, '#', sizeof buf);
    pos += r.consumed;
  }
  ASSERT_EQ(r.status, ParseStatus::head_done);
  ASSERT_EQ(p.head().fields.size(), 2u);
  EXPECT_EQ(p.head().fields[0].value, std::string(3000, 'v'));
  EXPECT_EQ(p.head().fields[1].name, "X-Short");
  EXPECT_EQ(p.head().host, "h");
}

}  // namespace
}  // namespace ringmaster::http
