// The outcome of parsing never depends on how the input was split into reads: seeded random
// corruptions of valid messages must give the same status, reason, re-serialised head,
// decoded body and consumed count whether fed whole, a byte at a time, or in random pieces.
// (Under ASan this doubles as a small fuzzer.)
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"
#include "test_support.h"

namespace ringmaster::http {
namespace {

using test_support::kAllAtOnce;

const std::vector<std::string>& request_seeds() {
  static const std::vector<std::string> seeds = {
      "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
      "POST /p HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 5\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\nhello",
      "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
      "4;e=1\r\nabcd\r\n3\r\nefg\r\n0\r\nT: v\r\n\r\n",
      "GET http://o.example/x HTTP/1.1\r\nHost: o.example\r\nX-Forwarded-For: 1.1.1.1\r\nVia: 1.0 p\r\n\r\n",
      "\r\nOPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  };
  return seeds;
}

const std::vector<std::string>& response_seeds() {
  static const std::vector<std::string> seeds = {
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nX: y\r\n\r\n",
      "HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nVia: 1.1 a\r\n\r\nbody until close",
      "HTTP/1.1 204 No Content\r\nETag: \"e\"\r\n\r\n",
  };
  return seeds;
}

// A handful of random edits biased towards the bytes that matter to HTTP framing.
std::string mutate(std::string s, std::mt19937& rng) {
  static const char kInteresting[] = {'\r', '\n', ' ', '\t', ':', ';', ',', '0', 'f', '\0', '\x7f', '\xff', 'a', '#'};
  int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    size_t at = rng() % s.size();
    char c = rng() % 2 ? kInteresting[rng() % sizeof kInteresting] : static_cast<char>(rng() & 0xff);
    switch (rng() % 3) {
      case 0:
        s[at] = c;
        break;
      case 1:
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c);
        break;
      default:
        s.erase(at, 1);
        break;
    }
  }
  return s;
}

// The data carried by our own chunked output so far (complete or not): chunk boundaries
// follow the reads, the data must not.
std::string chunk_payload(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t crlf = s.find("\r\n", i);
    if (crlf == std::string_view::npos) return "<bad>";
    size_t n = std::stoul(std::string(s.substr(i, crlf - i)), nullptr, 16);
    i = crlf + 2;
    if (n == 0) break;
    out.append(s.substr(i, n));
    i += n + 2;
  }
  return out;
}

struct Outcome {
  ParseStatus status = ParseStatus::need_more;
  uint16_t error_status = 0;
  std::string reason;
  std::string head;
  std::string body;
  size_t consumed = 0;
  bool operator==(const Outcome&) const = default;
};

// Feeds `in` in pieces whose sizes come from `sizes` (cycled); 0 means all at once.
Outcome run_request(const std::string& in, const std::vector<size_t>& sizes) {
  RequestParser p(Limits{});
  Outcome o;
  base::ByteBuffer body;
  std::string scratch;
  size_t pos = 0;
  size_t offered = 0;
  size_t k = 0;
  bool head_done = false;
  for (;;) {
    if (pos == offered) {
      if (offered == in.size()) break;
      size_t step = sizes[k++ % sizes.size()];
      offered = step == 0 || step >= in.size() - offered ? in.size() : offered + step;
    }
    scratch.assign(in, pos, offered - pos);
    ParseResult r = head_done ? p.parse_body(scratch.data(), scratch.size(), body)
                              : p.parse_head(scratch.data(), scratch.size());
    std::fill(scratch.begin(), scratch.end(), '#');
    if (r.status == ParseStatus::error) {
      o.status = r.status;
      o.error_status = p.error_status();
      o.reason = std::string(p.error_reason());
      break;
    }
    pos += r.consumed;
    if (r.status == ParseStatus::head_done) {
      head_done = true;
      base::ByteBuffer h;
      ForwardContext ctx;
      ctx.client_ip = "192.0.2.1";
      serialize_request_head(p.head(), ctx, h);
      o.head = std::string(h.view());
      if (p.body_done()) {
        o.status = ParseStatus::message_done;
        break;
      }
    } else if (r.status == ParseStatus::message_done) {
      o.status = r.status;
      break;
    }
  }
  // After an error, how much was accepted before it (and forwarded) depends on the reads;
  // only the verdict must not.
  if (o.status == ParseStatus::error) return o;
  o.consumed = pos;
  o.body = p.head().framing == BodyFraming::chunked ? chunk_payload(body.view()) : std::string(body.view());
  return o;
}

Outcome run_response(const std::string& in, const std::vector<size_t>& sizes) {
  ResponseParser p;
  p.reset(Method::get);
  Outcome o;
  base::ByteBuffer body;
  std::string scratch;
  size_t pos = 0;
  size_t offered = 0;
  size_t k = 0;
  bool head_done = false;
  for (;;) {
    if (pos == offered) {
      if (offered == in.size()) {
        ParseResult f = p.finish(body, false);
        o.status = f.status;
        if (f.status == ParseStatus::error) o.reason = std::string(p.error_reason());
        break;
      }
      size_t step = sizes[k++ % sizes.size()];
      offered = step == 0 || step >= in.size() - offered ? in.size() : offered + step;
    }
    scratch.assign(in, pos, offered - pos);
    ParseResult r = head_done ? p.parse_body(scratch.data(), scratch.size(), body, false)
                              : p.parse_head(scratch.data(), scratch.size());
    std::fill(scratch.begin(), scratch.end(), '#');
    if (r.status == ParseStatus::error) {
      o.status = r.status;
      o.reason = std::string(p.error_reason());
      break;
    }
    pos += r.consumed;
    if (r.status == ParseStatus::head_done) {
      head_done = true;
      base::ByteBuffer h;
      serialize_response_head(p.head(), choose_response_framing(p.head(), Method::get, 1, true), 1, "rm", h);
      o.head = std::string(h.view());
      if (p.body_done()) {
        o.status = ParseStatus::message_done;
        break;
      }
    } else if (r.status == ParseStatus::message_done) {
      o.status = r.status;
      break;
    }
  }
  if (o.status == ParseStatus::error) return o;
  o.consumed = pos;
  o.body = std::string(body.view());
  return o;
}

template <class Run>
void check_invariance(const std::vector<std::string>& seeds, Run run, uint32_t seed) {
  std::mt19937 rng(seed);
  int accepted = 0;
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string& base = seeds[rng() % seeds.size()];
    std::string in = i < static_cast<int>(seeds.size()) ? seeds[i] : mutate(base, rng);
    Outcome whole = run(in, {0});
    Outcome bytes = run(in, {1});
    std::vector<size_t> random_sizes;
    for (int j = 0; j < 8; ++j) random_sizes.push_back(1 + rng() % 24);
    Outcome pieces = run(in, random_sizes);
    ASSERT_EQ(bytes, whole) << "1-byte reads differ for input #" << i << ": " << ::testing::PrintToString(in)
                            << "\nwhole: " << whole.reason << "\nbytes: " << bytes.reason;
    ASSERT_EQ(pieces, whole) << "random reads differ for input #" << i << ": " << ::testing::PrintToString(in)
                             << "\nwhole: " << whole.reason << "\npieces: " << pieces.reason;
    (whole.status == ParseStatus::error ? rejected : accepted) += 1;
  }
  // The corpus must exercise both sides, or it proves little.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100);
}

TEST(SplitInvariance, RequestOutcomeDoesNotDependOnReadBoundaries) {
  check_invariance(request_seeds(), run_request, 20240611);
}

TEST(SplitInvariance, ResponseOutcomeDoesNotDependOnReadBoundaries) {
  check_invariance(response_seeds(), run_response, 77);
}

}  // namespace
}  // namespace ringmaster::http
