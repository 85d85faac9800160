// http micro-benchmarks: the per-request cost the proxy pays on every exchange — parse and
// validate a head, re-serialise it, and the same for the response head. Parsers and buffers
// are reused across iterations exactly as a connection reuses them, so the figures include
// reset() and exclude first-use allocation.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"
#include "ringmaster/http/request_id.h"

namespace {

using namespace ringmaster;

// What a current desktop browser sends for a page navigation (10 fields).
constexpr std::string_view kBrowserGet =
    "GET /products/widgets/42?ref=home&utm_source=newsletter HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Referer: https://shop.example.com/\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=6f1c2a9e4b7d4e2f9a1b3c5d7e9f0a1b; theme=dark; consent=1\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Priority: u=0, i\r\n"
    "\r\n";

constexpr std::string_view kChunkedPost =
    "POST /api/v1/events HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: client/2.3\r\n"
    "Content-Type: application/json\r\n"
    "Accept: application/json\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "1c\r\n{\"event\":\"click\",\"id\":12345}\r\n"
    "10\r\n,\"ts\":1700000000\r\n"
    "0\r\n\r\n";

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Date: Tue, 15 Oct 2024 08:12:31 GMT\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Length: 15320\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: private, max-age=0\r\n"
    "ETag: \"5f3a-1a2b3c4d\"\r\n"
    "Vary: Accept-Encoding\r\n"
    "Server: backend/1.4\r\n"
    "\r\n";

http::ForwardContext context() {
  http::ForwardContext ctx;
  ctx.client_ip = "203.0.113.195";
  return ctx;
}

void BM_RequestGetParseSerialize(benchmark::State& state) {
  http::RequestParser parser(http::Limits{});
  base::ByteBuffer out;
  const http::ForwardContext ctx = context();
  for (auto _ : state) {
    parser.reset();
    http::ParseResult r = parser.parse_head(kBrowserGet.data(), kBrowserGet.size());
    if (r.status != http::ParseStatus::head_done) state.SkipWithError("parse failed");
    out.clear();
    http::serialize_request_head(parser.head(), ctx, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBrowserGet.size()));
}
BENCHMARK(BM_RequestGetParseSerialize);

void BM_RequestGetParseOnly(benchmark::State& state) {
  http::RequestParser parser(http::Limits{});
  for (auto _ : state) {
    parser.reset();
    http::ParseResult r = parser.parse_head(kBrowserGet.data(), kBrowserGet.size());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RequestGetParseOnly);

void BM_RequestGetSerializeOnly(benchmark::State& state) {
  http::RequestParser parser(http::Limits{});
  parser.parse_head(kBrowserGet.data(), kBrowserGet.size());
  base::ByteBuffer out;
  const http::ForwardContext ctx = context();
  for (auto _ : state) {
    out.clear();
    http::serialize_request_head(parser.head(), ctx, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RequestGetSerializeOnly);

void BM_RequestChunkedPost(benchmark::State& state) {
  http::RequestParser parser(http::Limits{});
  base::ByteBuffer out;
  const http::ForwardContext ctx = context();
  for (auto _ : state) {
    parser.reset();
    http::ParseResult h = parser.parse_head(kChunkedPost.data(), kChunkedPost.size());
    out.clear();
    http::serialize_request_head(parser.head(), ctx, out);
    http::ParseResult b = parser.parse_body(kChunkedPost.data() + h.consumed, kChunkedPost.size() - h.consumed, out);
    if (b.status != http::ParseStatus::message_done) state.SkipWithError("body failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kChunkedPost.size()));
}
BENCHMARK(BM_RequestChunkedPost);

void BM_ResponseHeadParseSerialize(benchmark::State& state) {
  http::ResponseParser parser;
  base::ByteBuffer out;
  for (auto _ : state) {
    parser.reset(http::Method::get);
    http::ParseResult r = parser.parse_head(kResponse.data(), kResponse.size());
    if (r.status != http::ParseStatus::head_done) state.SkipWithError("parse failed");
    http::ResponseFraming f = http::choose_response_framing(parser.head(), http::Method::get, 1, true);
    out.clear();
    http::serialize_response_head(parser.head(), f, 1, "ringmaster", out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kResponse.size()));
}
BENCHMARK(BM_ResponseHeadParseSerialize);

void BM_ErrorResponse(benchmark::State& state) {
  base::ByteBuffer out;
  for (auto _ : state) {
    out.clear();
    http::write_error_response(502, true, false, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ErrorResponse);

void BM_RequestIdNext(benchmark::State& state) {
  http::RequestIdGenerator ids(0x0123456789abcdefull, 0);
  char id[http::kGeneratedRequestIdBytes];
  for (auto _ : state) {
    ids.next(id);
    benchmark::DoNotOptimize(id);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RequestIdNext);

// The request id's whole cost in http for one proxied exchange (README "Request id"): the
// request head parsed and written upstream, the response head parsed and written to the
// client; Arg(1) also makes an id and writes it both ways, Arg(0) does neither.
void BM_ExchangeHeads(benchmark::State& state) {
  const bool with_id = state.range(0) != 0;
  http::RequestParser request(http::Limits{});
  http::ResponseParser response;
  http::RequestIdGenerator ids(0x0123456789abcdefull, 0);
  char id[http::kGeneratedRequestIdBytes];
  base::ByteBuffer out;
  http::ForwardContext ctx = context();
  for (auto _ : state) {
    request.reset();
    if (request.parse_head(kBrowserGet.data(), kBrowserGet.size()).status != http::ParseStatus::head_done) {
      state.SkipWithError("request parse failed");
    }
    if (with_id) {
      ids.next(id);
      ctx.request_id = std::string_view(id, sizeof id);
    }
    out.clear();
    http::serialize_request_head(request.head(), ctx, out);
    response.reset(http::Method::get);
    if (response.parse_head(kResponse.data(), kResponse.size()).status != http::ParseStatus::head_done) {
      state.SkipWithError("response parse failed");
    }
    http::ResponseFraming f = http::choose_response_framing(response.head(), http::Method::get, 1, true);
    http::serialize_response_head(response.head(), f, 1, "ringmaster", out, ctx.request_id);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExchangeHeads)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
