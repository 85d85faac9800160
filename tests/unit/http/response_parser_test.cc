// ResponseParser: a backend's response as the client will see it (head bytes and body bytes
// after choose_response_framing + serialize_response_head), and every framing ambiguity
// refused.
#include <gtest/gtest.h>

#include <algorithm>
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

struct Client {
  Method method = Method::get;
  uint8_t version_minor = 1;
  bool keep_alive = true;
};

struct ResponseOutcome {
  ParseStatus status = ParseStatus::need_more;
  std::string error_reason;
  std::string head;
  std::string body;
  size_t consumed = 0;
  size_t head_consumed = 0;
  bool keep_alive = false;  // the backend connection may be reused
  ResponseFraming framing{};
};

// Feeds a backend's bytes `step` at a time, as the proxy does; at the end of the input,
// tells the parser the backend closed (finish) if the message is not complete.
ResponseOutcome feed_response(ResponseParser& p, std::string_view input, size_t step, const Client& client,
                              bool close_at_end = true) {
  ResponseOutcome o;
  base::ByteBuffer out;
  std::string scratch;
  bool head_done = false;
  size_t pos = 0;
  size_t offered = 0;
  for (;;) {
    if (pos == offered) {
      if (offered == input.size()) {
        if (!close_at_end) break;
        ParseResult f = p.finish(out, o.framing.rechunk);
        o.status = f.status;
        if (f.status == ParseStatus::error) o.error_reason = std::string(p.error_reason());
        break;
      }
      offered = step >= input.size() - offered ? input.size() : offered + step;
    }
    scratch.assign(input.substr(pos, offered - pos));
    ParseResult r = head_done ? p.parse_body(scratch.data(), scratch.size(), out, o.framing.rechunk)
                              : p.parse_head(scratch.data(), scratch.size());
    std::fill(scratch.begin(), scratch.end(), '#');
    if (r.status == ParseStatus::error) {
      o.status = ParseStatus::error;
      o.error_reason = std::string(p.error_reason());
      break;
    }
    pos += r.consumed;
    if (r.status == ParseStatus::head_done) {
      head_done = true;
      o.head_consumed = pos;
      o.framing = choose_response_framing(p.head(), client.method, client.version_minor, client.keep_alive);
      base::ByteBuffer h;
      serialize_response_head(p.head(), o.framing, client.version_minor, "ringmaster", h);
      o.head = std::string(h.view());
      o.keep_alive = p.head().keep_alive;
      if (p.body_done()) {
        o.status = ParseStatus::message_done;
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
  o.body = std::string(out.view());
  return o;
}

ResponseOutcome parse_response(std::string_view input, size_t step = kAllAtOnce, const Client& client = {},
                               const ResponseLimits& limits = {}) {
  ResponseParser p(limits);
  p.reset(client.method);
  return feed_response(p, input, step, client);
}

// ---- valid responses: what the client gets ----

struct ValidCase {
  const char* name;
  Client client;
  std::string input;
  std::string head;
  std::string body;
  bool backend_keep_alive;
  size_t trailing = 0;  // bytes at the end of input that belong to the next response
};

const std::string kVia = "Via: 1.1 ringmaster\r\n\r\n";

std::vector<ValidCase> valid_cases() {
  Client http11;
  Client http10{Method::get, 0, true};
  Client http11_close{Method::get, 1, false};
  Client head11{Method::head, 1, true};
  return {
      {"ContentLength", http11, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n" + kVia, "hello", true},
      {"ChunkedStaysChunked", http11, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + kVia, "5\r\nhello\r\n0\r\n\r\n", true},
      {"ChunkedTrailersAndExtensionsDropped", http11,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nServer-Timing: db;dur=53\r\n\r\n",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + kVia, "5\r\nhello\r\n0\r\n\r\n", true},
      {"ChunkedToHttp10ClientIsRawAndCloses", http10,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "HTTP/1.1 200 OK\r\nConnection: close\r\n" + kVia, "hello", true},
      {"CloseDelimitedBecomesChunked", http11, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nhello world",
       "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n" + kVia,
       "b\r\nhello world\r\n0\r\n\r\n", false},
      {"CloseDelimitedToHttp10ClientIsRaw", http10, "HTTP/1.0 200 OK\r\n\r\nabc",
       "HTTP/1.1 200 OK\r\nConnection: close\r\nVia: 1.0 ringmaster\r\n\r\n", "abc", false},
      {"HeadResponseKeepsContentLength", head11, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1",
       "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n" + kVia, "", true, 8},
      {"HeadResponseToChunkedHasNoFraming", head11, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       "HTTP/1.1 200 OK\r\n" + kVia, "", true},
      {"NoContentIgnoresContentLength", http11, "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
       "HTTP/1.1 204 No Content\r\n" + kVia, "", true, 3},
      {"NotModifiedKeepsContentLength", http11, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 42\r\n\r\n",
       "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 42\r\n" + kVia, "", true},
      {"InterimResponsesSkipped", http11,
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
       "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
       "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n" + kVia, "ok", true},
      {"HopByHopRemoved", http11,
       "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
       "Proxy-Connection: x\r\nTE: t\r\nTrailer: X\r\nUpgrade: h2c\r\nServer: s\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 0\r\n" + kVia, "", true},
      {"ViaExtended", http11, "HTTP/1.1 200 OK\r\nVia: 1.1 cache-a\r\nvia: 1.0 cache-b\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nVia: 1.1 cache-a, 1.0 cache-b, 1.1 ringmaster\r\n\r\n", "", true},
      {"EmptyReasonFilledIn", http11, "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n" + kVia, "", true},
      {"MissingReasonAccepted", http11, "HTTP/1.1 204\r\n\r\n", "HTTP/1.1 204 No Content\r\n" + kVia, "", true},
      {"BackendReasonKept", http11, "HTTP/1.1 200 Fine, Thanks\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 200 Fine, Thanks\r\nContent-Length: 0\r\n" + kVia, "", true},
      {"ClientWantsClose", http11_close, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n" + kVia, "ok", true},
      {"Http10KeepAliveClientToldSo", http10, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n" + kVia, "ok", true},
      {"Http10BackendClosesByDefault", http11, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.0 ringmaster\r\n\r\n", "ok", false},
      {"Http10BackendKeepAlive", http11, "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.0 ringmaster\r\n\r\n", "ok", true},
      {"BackendConnectionClose", http11, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + kVia, "ok", false},
      {"RequestOnlyFieldsAreOrdinaryInResponses", http11,
       "HTTP/1.1 200 OK\r\nHost: h\r\nExpect: x\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
       "Content-Length: 0\r\n\r\n",
       "HTTP/1.1 200 OK\r\nHost: h\r\nExpect: x\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
       "Content-Length: 0\r\n" +
           kVia,
       "", true},
      {"RepeatedSetCookieKeptInOrder", http11,
       "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n" + kVia, "", true},
      {"ObsTextInValueAndReason", http11, "HTTP/1.1 200 \xc3\x93K\r\nX: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 200 \xc3\x93K\r\nX: caf\xc3\xa9\r\nContent-Length: 0\r\n" + kVia, "", true},
  };
}

class ResponseParserValid : public ::testing::TestWithParam<ValidCase> {};

TEST_P(ResponseParserValid, ClientGetsExactBytes) {
  const ValidCase& c = GetParam();
  ResponseOutcome o = parse_response(c.input, kAllAtOnce, c.client);
  ASSERT_EQ(o.status, ParseStatus::message_done) << o.error_reason;
  EXPECT_EQ(o.head, c.head);
  EXPECT_EQ(o.body, c.body);
  EXPECT_EQ(o.keep_alive, c.backend_keep_alive);
  EXPECT_EQ(o.consumed, c.input.size() - c.trailing);
}

TEST_P(ResponseParserValid, OneByteAtATimeGivesTheSameResult) {
  const ValidCase& c = GetParam();
  ResponseOutcome whole = parse_response(c.input, kAllAtOnce, c.client);
  for (size_t step : {size_t{1}, size_t{2}, size_t{5}, size_t{64}}) {
    ResponseOutcome split = parse_response(c.input, step, c.client);
    ASSERT_EQ(split.status, ParseStatus::message_done) << "step " << step << ": " << split.error_reason;
    EXPECT_EQ(split.head, whole.head) << "step " << step;
    EXPECT_EQ(split.head_consumed, whole.head_consumed) << "step " << step;
    EXPECT_EQ(split.consumed, whole.consumed) << "step " << step;
    if (whole.framing.rechunk) {
      EXPECT_EQ(dechunk(split.body), dechunk(whole.body)) << "step " << step;
    } else {
      EXPECT_EQ(split.body, whole.body) << "step " << step;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, ResponseParserValid, ::testing::ValuesIn(valid_cases()),
                         [](const ::testing::TestParamInfo<ValidCase>& i) { return std::string(i.param.name); });

// ---- invalid responses: all refused (the proxy answers 502) ----

struct InvalidCase {
  const char* name;
  std::string input;
  ResponseLimits limits = {};
};

std::vector<InvalidCase> invalid_cases() {
  const std::string ok = "HTTP/1.1 200 OK\r\n";
  const std::string chunked = ok + "Transfer-Encoding: chunked\r\n\r\n";
  ResponseLimits small;
  small.header_bytes_max = 64;
  small.header_count_max = 2;
  return {
      {"SwitchingProtocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"},
      {"TwoDigitStatus", "HTTP/1.1 20 OK\r\n\r\n"},
      {"FourDigitStatus", "HTTP/1.1 2000 OK\r\n\r\n"},
      {"StatusBelow100", "HTTP/1.1 099 Low\r\n\r\n"},
      {"StatusAbove599", "HTTP/1.1 600 High\r\n\r\n"},
      {"StatusNotDigits", "HTTP/1.1 abc OK\r\n\r\n"},
      {"DoubleSpaceBeforeStatus", "HTTP/1.1  200 OK\r\n\r\n"},
      {"Http2Response", "HTTP/2.0 200 OK\r\n\r\n"},
      {"Http12Response", "HTTP/1.2 200 OK\r\n\r\n"},
      {"RtspResponse", "RTSP/1.0 200 OK\r\n\r\n"},
      {"LowercaseProtocol", "http/1.1 200 OK\r\n\r\n"},
      {"ControlInReason", "HTTP/1.1 200 O\x01K\r\n\r\n"},
      {"BareLfAfterStatusLine", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"},
      {"BareLfAsFinalLine", ok + "Content-Length: 0\r\n\n"},
      {"BareCrInValue", ok + "X: a\rb\r\n\r\n"},
      {"ObsFold", ok + "X: a\r\n b\r\nContent-Length: 0\r\n\r\n"},
      {"NulInValue", ok + "X: a"s + '\0' + "\r\nContent-Length: 0\r\n\r\n"},
      {"ControlInValue", ok + "X: \x02\r\nContent-Length: 0\r\n\r\n"},
      {"EmptyFieldName", ok + ": a\r\nContent-Length: 0\r\n\r\n"},
      {"SpaceBeforeColon", ok + "X : a\r\nContent-Length: 0\r\n\r\n"},
      {"ContentLengthWithTransferEncoding", ok + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
      {"TransferEncodingWithContentLength", ok + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"},
      {"DuplicateEqualContentLength", ok + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
      {"DuplicateDifferentContentLength", ok + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
      {"ContentLengthNotDigits", ok + "Content-Length: abc\r\n\r\n"},
      {"ContentLengthWithSign", ok + "Content-Length: +1\r\n\r\nx"},
      {"ContentLengthList", ok + "Content-Length: 1, 1\r\n\r\nx"},
      {"ContentLengthOverflow", ok + "Content-Length: 99999999999999999999\r\n\r\n"},
      {"GzipTransferCoding", ok + "Transfer-Encoding: gzip\r\n\r\nabc"},
      {"GzipThenChunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
      {"ChunkedThenGzip", ok + "Transfer-Encoding: chunked, gzip\r\n\r\nabc"},
      {"IdentityTransferCoding", ok + "Transfer-Encoding: identity\r\n\r\nabc"},
      {"TwoTransferEncodingFields", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"},
      {"TransferEncodingInHttp10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"ConnectionNamesContentLength", ok + "Connection: Content-Length\r\nContent-Length: 0\r\n\r\n"},
      {"HeadOverLimit", ok + "Server: " + std::string(40, 's') + "\r\n\r\n", small},
      {"TooManyFields", ok + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", small},
      {"InterimOverLimitCountsPerHead", "HTTP/1.1 100 Continue\r\nA: " + std::string(60, 'a') + "\r\n\r\n", small},
      {"ChunkSizeNotHex", chunked + "xyz\r\n"},
      {"ChunkDataWithoutCrlf", chunked + "3\r\nabcd\r\n0\r\n\r\n"},
      {"TrailerObsFold", chunked + "0\r\nX: a\r\n b\r\n\r\n"},
      {"TruncatedContentLengthBody", ok + "Content-Length: 10\r\n\r\nshort"},
      {"TruncatedChunkedBody", chunked + "a\r\nshort"},
      {"TruncatedHead", ok + "Content-Len"},
      {"NothingAtAll", ""},
  };
}

class ResponseParserInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(ResponseParserInvalid, IsRefused) {
  const InvalidCase& c = GetParam();
  ResponseParser p(c.limits);
  p.reset(Method::get);
  ResponseOutcome o = feed_response(p, c.input, kAllAtOnce, Client{});
  ASSERT_EQ(o.status, ParseStatus::error) << "accepted; head:\n" << o.head;
  EXPECT_FALSE(o.error_reason.empty());
}

TEST_P(ResponseParserInvalid, OneByteAtATimeGivesTheSameReason) {
  const InvalidCase& c = GetParam();
  ResponseParser whole_parser(c.limits);
  whole_parser.reset(Method::get);
  ResponseOutcome whole = feed_response(whole_parser, c.input, kAllAtOnce, Client{});
  ResponseParser split_parser(c.limits);
  split_parser.reset(Method::get);
  ResponseOutcome split = feed_response(split_parser, c.input, 1, Client{});
  ASSERT_EQ(split.status, ParseStatus::error);
  EXPECT_EQ(split.error_reason, whole.error_reason);
}

INSTANTIATE_TEST_SUITE_P(All, ResponseParserInvalid, ::testing::ValuesIn(invalid_cases()),
                         [](const ::testing::TestParamInfo<InvalidCase>& i) { return std::string(i.param.name); });

// ---- head facts and lifecycle ----

TEST(ResponseParser, ReportsStatusReasonVersionAndFraming) {
  ResponseParser p;
  p.reset(Method::get);
  std::string in = "HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 7\r\n\r\n";
  ParseResult r = p.parse_head(in.data(), in.size());
  ASSERT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(r.consumed, in.size());
  const ResponseHead& h = p.head();
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.reason, "Service Unavailable");
  EXPECT_EQ(h.version_minor, 0);
  EXPECT_EQ(h.framing, BodyFraming::content_length);
  EXPECT_EQ(h.content_length, 7u);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(h.fields.size(), 1u);
  EXPECT_EQ(h.fields[0].name, "Retry-After");
  EXPECT_FALSE(p.body_done());
}

TEST(ResponseParser, HeadResponseReportsAnnouncedLengthWithoutBody) {
  ResponseParser p;
  p.reset(Method::head);
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  EXPECT_EQ(p.head().framing, BodyFraming::none);
  EXPECT_TRUE(p.head().has_content_length);
  EXPECT_EQ(p.head().content_length, 5000u);
  EXPECT_TRUE(p.body_done());
  EXPECT_TRUE(p.head().keep_alive);
}

TEST(ResponseParser, CloseDelimitedBodyEndsAtFinish) {
  ResponseParser p;
  p.reset(Method::get);
  std::string in = "HTTP/1.1 200 OK\r\n\r\npart one, ";
  ParseResult h = p.parse_head(in.data(), in.size());
  ASSERT_EQ(h.status, ParseStatus::head_done);
  EXPECT_EQ(p.head().framing, BodyFraming::close_delimited);
  EXPECT_FALSE(p.head().keep_alive);
  base::ByteBuffer out;
  ParseResult b = p.parse_body(in.data() + h.consumed, in.size() - h.consumed, out, false);
  EXPECT_EQ(b.status, ParseStatus::need_more);
  std::string more = "part two";
  b = p.parse_body(more.data(), more.size(), out, false);
  EXPECT_EQ(b.status, ParseStatus::need_more);
  EXPECT_EQ(p.finish(out, false).status, ParseStatus::message_done);
  EXPECT_EQ(out.view(), "part one, part two");
  EXPECT_TRUE(p.body_done());
}

TEST(ResponseParser, FinishAfterCompleteMessageIsDone) {
  ResponseParser p;
  p.reset(Method::get);
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  base::ByteBuffer out;
  EXPECT_EQ(p.finish(out, true).status, ParseStatus::message_done);
  EXPECT_TRUE(out.empty());
}

TEST(ResponseParser, TruncatedBodyIsReportedAsTruncated) {
  ResponseParser p;
  p.reset(Method::get);
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  ParseResult h = p.parse_head(in.data(), in.size());
  base::ByteBuffer out;
  p.parse_body(in.data() + h.consumed, in.size() - h.consumed, out, false);
  EXPECT_EQ(p.finish(out, false).status, ParseStatus::error);
  EXPECT_EQ(p.error_reason(), "truncated");
}

TEST(ResponseParser, InterimResponseSplitAcrossReads) {
  ResponseParser p;
  p.reset(Method::post);
  std::string a = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20";
  std::string b = "0 OK\r\nContent-Length: 0\r\n\r\n";
  ParseResult r = p.parse_head(a.data(), a.size());
  EXPECT_EQ(r.status, ParseStatus::need_more);
  EXPECT_EQ(r.consumed, a.size());
  r = p.parse_head(b.data(), b.size());
  ASSERT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(r.consumed, b.size());
  EXPECT_EQ(p.head().status, 200);
  EXPECT_TRUE(p.body_done());
}

TEST(ResponseParser, EarlyHintsAreReserialisedWhenAskedAndOtherInterimResponsesDropped) {
  ResponseParser p;
  p.reset(Method::get);
  base::ByteBuffer hints;
  p.forward_early_hints(&hints);
  std::string in =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
      "Connection: X-Hop\r\nX-Hop: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  ParseResult r = p.parse_head(in.data(), in.size());
  ASSERT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(p.head().status, 200);
  EXPECT_EQ(hints.view(), "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
  // Not asked for: dropped.
  p.reset(Method::get);
  p.forward_early_hints(nullptr);
  r = p.parse_head(in.data(), in.size());
  ASSERT_EQ(r.status, ParseStatus::head_done);
  EXPECT_EQ(hints.view(), "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
}

TEST(ResponseParser, ReusedAcrossResponsesWithDifferentMethods) {
  ResponseParser p;
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
  p.reset(Method::head);
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  EXPECT_TRUE(p.body_done());
  p.reset(Method::get);
  ASSERT_EQ(p.parse_head(in.data(), in.size()).status, ParseStatus::head_done);
  EXPECT_FALSE(p.body_done());
  base::ByteBuffer out;
  std::string body = "xyzHTTP";
  ParseResult b = p.parse_body(body.data(), body.size(), out, true);
  EXPECT_EQ(b.status, ParseStatus::message_done);
  EXPECT_EQ(b.consumed, 3u);
  EXPECT_EQ(out.view(), "3\r\nxyz\r\n0\r\n\r\n");  // re-chunked on request
}

TEST(ResponseParser, ChunkedResponseDechunkedForRawClients) {
  ResponseParser p;
  p.reset(Method::get);
  std::string in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  ParseResult h = p.parse_head(in.data(), in.size());
  base::ByteBuffer out;
  ParseResult b = p.parse_body(in.data() + h.consumed, in.size() - h.consumed, out, false);
  EXPECT_EQ(b.status, ParseStatus::message_done);
  EXPECT_EQ(out.view(), "abcde");
}

TEST(ResponseParser, PipelinedResponsesOnOneConnection) {
  std::string all = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 204 No Content\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n";
  for (size_t step : {kAllAtOnce, size_t{1}, size_t{3}}) {
    ResponseParser p;
    std::string_view rest = all;
    std::vector<uint16_t> statuses;
    for (int i = 0; i < 3; ++i) {
      p.reset(Method::get);
      ResponseOutcome o = feed_response(p, rest, step, Client{}, false);
      ASSERT_EQ(o.status, ParseStatus::message_done) << "response " << i << " step " << step << ": " << o.error_reason;
      statuses.push_back(p.head().status);
      rest.remove_prefix(o.consumed);
    }
    EXPECT_TRUE(rest.empty());
    EXPECT_EQ(statuses, (std::vector<uint16_t>{200, 204, 200}));
  }
}

TEST(ResponseParser, HeadAtLimitPasses) {
  ResponseLimits l;
  l.header_bytes_max = 64;
  l.header_count_max = 2;
  std::string head = "HTTP/1.1 200 OK\r\nServer: " + std::string(35, 's') + "\r\n\r\n";
  ASSERT_EQ(head.size(), 64u);
  EXPECT_EQ(parse_response(head + "x", kAllAtOnce, Client{}, l).status, ParseStatus::message_done);
  std::string over = "HTTP/1.1 200 OK\r\nServer: " + std::string(36, 's') + "\r\n\r\n";
  EXPECT_EQ(parse_response(over, kAllAtOnce, Client{}, l).status, ParseStatus::error);
}

}  // namespace
}  // namespace ringmaster::http
