// request_fuzz: the client side of the http module (RequestParser, serialize_request_head,
// write_error_response) under libFuzzer.
//
// The input (see fuzz_common.h) is what a client sends on one connection: pipelined
// requests, fed the way the proxy feeds them — parse_head until head_done, parse_body until
// message_done, reset(), next request — once in fuzzer-chosen pieces and once whole.
// Configuration bits: 3 = small head limits, 4 = small body limit.
//
// Invariants (any violation aborts, and libFuzzer keeps the input):
//   * consumed never exceeds the input; need_more consumes everything; error consumes 0;
//   * parse_body appends at most len + 32 bytes per call (message.h);
//   * the body as forwarded is well formed (Content-Length: exactly the bytes; chunked: our
//     own strict chunks, "0\r\n\r\n" exactly at the end) and body_bytes() counts it;
//   * a parsed head is sane (origin-form or "*" target, Host for HTTP/1.1, Content-Length
//     within the body limit, clean field values, no CONNECT);
//   * serialize_request_head's output parses STRICTLY, with a fresh parser, to the same
//     method, target, host, framing, Content-Length and fields (version becomes 1.1; Via
//     and X-Forwarded-For gain our entries), and the forwarded body, fed to that parser,
//     decodes to the same bytes;
//   * an error has a status from the documented set, and write_error_response for it parses
//     as a complete response with that status;
//   * the pieces and the whole input end the same way: same messages (heads and bodies),
//     same final state, same error status.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_common.h"
#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"

namespace {

using namespace ringmaster;
using fuzz::escaped;

constexpr size_t kMessagesMax = 64;  // pipelined requests followed per input
constexpr std::string_view kClientIp = "192.0.2.7";

struct HeadCopy {
  http::Method method = http::Method::other;
  std::string method_text, target, host, x_forwarded_for, via;
  uint8_t version_minor = 0;
  http::BodyFraming framing = http::BodyFraming::none;
  uint64_t content_length = 0;
  bool keep_alive = false;
  bool expect_continue = false;
  std::vector<std::pair<std::string, std::string>> fields;
  bool operator==(const HeadCopy&) const = default;
};

HeadCopy copy_head(const http::RequestHead& h) {
  HeadCopy c;
  c.method = h.method;
  c.method_text = h.method_text;
  c.target = h.target;
  c.host = h.host;
  c.x_forwarded_for = h.x_forwarded_for;
  c.via = h.via;
  c.version_minor = h.version_minor;
  c.framing = h.framing;
  c.content_length = h.content_length;
  c.keep_alive = h.keep_alive;
  c.expect_continue = h.expect_continue;
  for (const http::Field& f : h.fields) c.fields.emplace_back(f.name, f.value);
  return c;
}

std::string describe(const HeadCopy& h) {
  std::string s = escaped(h.method_text) + " " + escaped(h.target) + " HTTP/1." +
                  std::to_string(h.version_minor) + " host=\"" + escaped(h.host) + "\" framing=" +
                  std::to_string(static_cast<int>(h.framing)) + " cl=" + std::to_string(h.content_length) +
                  " keep_alive=" + std::to_string(h.keep_alive) + " expect=" + std::to_string(h.expect_continue) +
                  " xff=\"" + escaped(h.x_forwarded_for) + "\" via=\"" + escaped(h.via) + "\"";
  for (const auto& [name, value] : h.fields) s += "\n    " + escaped(name) + ": " + escaped(value);
  return s;
}

struct Message {
  HeadCopy head;
  std::string body;  // decoded body bytes
  bool complete = false;
  bool operator==(const Message&) const = default;
};

struct Outcome {
  std::vector<Message> messages;  // the last one may be unfinished
  http::ParseStatus last = http::ParseStatus::need_more;
  bool in_body = false;  // the input ended (or failed) inside a body
  uint16_t error_status = 0;
  std::string error_reason;
  bool same_as(const Outcome& o) const {
    return messages == o.messages && last == o.last && in_body == o.in_body && error_status == o.error_status;
  }
};

std::string describe(const Outcome& o) {
  std::string s = "status=" + std::to_string(static_cast<int>(o.last)) + " in_body=" + std::to_string(o.in_body) +
                  " error=" + std::to_string(o.error_status) + " (" + std::string(o.error_reason) + ") messages=" +
                  std::to_string(o.messages.size());
  for (const Message& m : o.messages) {
    s += "\n  " + describe(m.head) + "\n    body(" + std::to_string(m.body.size()) + ")=\"" + escaped(m.body, 200) +
         "\" complete=" + std::to_string(m.complete);
  }
  return s;
}

bool documented_error_status(uint16_t s) {
  return s == 400 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505;
}

bool clean_value(std::string_view v) {
  for (unsigned char c : v) {
    if (c == '\r' || c == '\n' || c == 0 || c == 0x7f || (c < 0x20 && c != '\t')) return false;
  }
  return v.empty() || (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t');
}

void check_head_sane(const http::RequestHead& h, const http::Limits& limits) {
  auto d = [&] { return describe(copy_head(h)); };
  FUZZ_CHECK(h.version_minor <= 1, d());
  FUZZ_CHECK(h.method != http::Method::connect, d());
  FUZZ_CHECK(!h.method_text.empty(), d());
  FUZZ_CHECK(!h.target.empty() && (h.target[0] == '/' || (h.target == "*" && h.method == http::Method::options)), d());
  FUZZ_CHECK(h.version_minor == 0 || !h.host.empty(), d());
  FUZZ_CHECK(h.framing == http::BodyFraming::none || h.framing == http::BodyFraming::content_length ||
                 h.framing == http::BodyFraming::chunked,
             d());
  FUZZ_CHECK(h.framing != http::BodyFraming::content_length || h.content_length <= limits.body_bytes_max, d());
  FUZZ_CHECK(h.framing == http::BodyFraming::content_length || h.content_length == 0, d());
  FUZZ_CHECK(h.version_minor == 1 || h.framing != http::BodyFraming::chunked, d());
  FUZZ_CHECK(clean_value(h.host) && clean_value(h.x_forwarded_for) && clean_value(h.via), d());
  for (const http::Field& f : h.fields) {
    FUZZ_CHECK(!f.name.empty() && clean_value(f.value), d());
    FUZZ_CHECK(f.name.find(':') == std::string_view::npos && f.name.find(' ') == std::string_view::npos, d());
  }
}

// Roomier limits for the re-serialised head: it gains X-Forwarded-For, X-Forwarded-Proto
// and Via, and each field line may grow by the space after the colon.
http::Limits roomy(const http::Limits& l) {
  http::Limits r = l;
  r.request_line_bytes_max = l.request_line_bytes_max + 64;
  r.header_bytes_max = l.header_bytes_max * 2 + 4096;
  r.header_count_max = l.header_count_max + 8;
  return r;
}

// The head as the backend gets it, parsed back by a fresh, strict parser.
struct Reparse {
  std::unique_ptr<http::RequestParser> parser;
  std::string serialized;
};

Reparse reserialize_and_check(const http::RequestHead& h, const http::Limits& limits, bool body_done) {
  // An HTTP/1.0 request may come without Host; the proxy then names the target (see
  // Worker::write_request_head), and so do we.
  http::RequestHead with_host = h;
  if (with_host.host.empty()) with_host.host = "fuzz.invalid:80";
  http::ForwardContext ctx;
  ctx.client_ip = kClientIp;
  base::ByteBuffer out;
  http::serialize_request_head(with_host, ctx, out);
  Reparse rp;
  rp.serialized.assign(out.data(), out.size());
  rp.parser = std::make_unique<http::RequestParser>(roomy(limits));
  http::ParseResult r = rp.parser->parse_head(out.data(), out.size());
  auto d = [&] {
    return "original head: " + describe(copy_head(h)) + "\nserialized: \"" + escaped(rp.serialized) +
           "\"\nre-parse: status " + std::to_string(static_cast<int>(r.status)) + " consumed " +
           std::to_string(r.consumed) + " error " + std::to_string(rp.parser->error_status()) + " (" +
           std::string(rp.parser->error_reason()) + ")\nre-parsed head: " + describe(copy_head(rp.parser->head()));
  };
  FUZZ_CHECK(r.status == http::ParseStatus::head_done && r.consumed == out.size(), d());
  const http::RequestHead& g = rp.parser->head();
  FUZZ_CHECK(g.method == h.method && g.method_text == h.method_text, d());
  FUZZ_CHECK(g.target == h.target, d());
  FUZZ_CHECK(g.host == with_host.host, d());
  FUZZ_CHECK(g.version_minor == 1 && g.keep_alive && !g.expect_continue, d());
  FUZZ_CHECK(g.framing == h.framing && g.content_length == h.content_length, d());
  FUZZ_CHECK(g.fields.size() == h.fields.size(), d());
  for (size_t i = 0; i < h.fields.size(); ++i) {
    FUZZ_CHECK(g.fields[i].name == h.fields[i].name && g.fields[i].value == h.fields[i].value, d());
  }
  std::string xff(h.x_forwarded_for);
  if (!xff.empty()) xff += ", ";
  xff += kClientIp;
  FUZZ_CHECK(g.x_forwarded_for == xff, d());
  std::string via(h.via);
  if (!via.empty()) via += ", ";
  via += h.version_minor == 0 ? "1.0 ringmaster" : "1.1 ringmaster";
  FUZZ_CHECK(g.via == via, d());
  FUZZ_CHECK(rp.parser->body_done() == body_done, d());
  return rp;
}

void check_error_response(uint16_t status) {
  base::ByteBuffer out;
  http::write_error_response(status, true, false, out);
  std::string wire(out.data(), out.size());
  http::ResponseParser p;
  p.reset(http::Method::get);
  http::ParseResult r = p.parse_head(wire.data(), wire.size());
  auto d = [&] { return "error response: \"" + escaped(wire) + "\""; };
  FUZZ_CHECK(r.status == http::ParseStatus::head_done, d());
  FUZZ_CHECK(p.head().status == status && !p.head().keep_alive, d());
  base::ByteBuffer body;
  http::ParseResult b = p.parse_body(wire.data() + r.consumed, wire.size() - r.consumed, body, false);
  FUZZ_CHECK(b.status == http::ParseStatus::message_done && r.consumed + b.consumed == wire.size(), d());
  std::string expect = std::to_string(status) + " " + std::string(http::reason_phrase(status)) + "\n";
  FUZZ_CHECK(body.view() == expect, d());
}

class Driver {
 public:
  Driver(const http::Limits& limits, bool reparse) : limits_(limits), parser_(limits), reparse_(reparse) {}

  // Feeds one piece; false once the connection is over (error, or enough messages).
  bool feed(const char* data, size_t len) {
    while (len > 0) {
      if (!in_body_) {
        http::ParseResult r = parser_.parse_head(data, len);
        FUZZ_CHECK(r.consumed <= len, "parse_head consumed " + std::to_string(r.consumed) + " of " + std::to_string(len));
        if (r.status == http::ParseStatus::error) return on_error(r);
        if (r.status == http::ParseStatus::need_more) {
          FUZZ_CHECK(r.consumed == len, "need_more left bytes unconsumed");
          return true;
        }
        FUZZ_CHECK(r.status == http::ParseStatus::head_done, "parse_head status " + std::to_string(int(r.status)));
        data += r.consumed;
        len -= r.consumed;
        if (!on_head()) return false;
        continue;
      }
      size_t before = forwarded_.size();
      http::ParseResult r = parser_.parse_body(data, len, forwarded_);
      size_t appended = forwarded_.size() - before;
      FUZZ_CHECK(r.consumed <= len, "parse_body consumed " + std::to_string(r.consumed) + " of " + std::to_string(len));
      FUZZ_CHECK(appended <= len + 32, "parse_body appended " + std::to_string(appended) + " bytes for " +
                                           std::to_string(len) + " input bytes: \"" +
                                           escaped(std::string_view(forwarded_.data() + before, appended)) + "\"");
      if (r.status == http::ParseStatus::error) return on_error(r);
      if (r.status == http::ParseStatus::need_more) {
        FUZZ_CHECK(r.consumed == len, "body need_more left bytes unconsumed");
        return true;
      }
      FUZZ_CHECK(r.status == http::ParseStatus::message_done, "parse_body status " + std::to_string(int(r.status)));
      data += r.consumed;
      len -= r.consumed;
      if (!finish_message(true)) return false;
    }
    return true;
  }

  // The input ended.
  Outcome finish() {
    if (!ended_ && in_body_) close_body(false);
    return std::move(outcome_);
  }

 private:
  bool on_head() {
    const http::RequestHead& h = parser_.head();
    check_head_sane(h, limits_);
    Message m;
    m.head = copy_head(h);
    outcome_.messages.push_back(std::move(m));
    bool empty_body = h.framing == http::BodyFraming::none ||
                      (h.framing == http::BodyFraming::content_length && h.content_length == 0);
    FUZZ_CHECK(parser_.body_done() == empty_body, describe(outcome_.messages.back().head));
    if (reparse_) reparse_state_ = reserialize_and_check(h, limits_, empty_body);
    forwarded_.clear();
    in_body_ = true;
    if (parser_.body_done()) return finish_message(true);
    return true;
  }

  // Decodes what was forwarded for the current message and checks it both ways.
  void close_body(bool complete) {
    Message& m = outcome_.messages.back();
    m.complete = complete;
    std::string_view fwd = forwarded_.view();
    std::string note;
    auto d = [&] { return describe(m.head) + "\nforwarded: \"" + escaped(fwd) + "\"" + note; };
    if (m.head.framing == http::BodyFraming::chunked) {
      std::string why;
      FUZZ_CHECK(fuzz::decode_chunked_strict(fwd, complete, m.body, why), why + "\n" + d());
    } else {
      m.body.assign(fwd);
      FUZZ_CHECK(complete ? m.body.size() == m.head.content_length : m.body.size() < m.head.content_length ||
                                                                         m.head.framing == http::BodyFraming::none,
                 d());
    }
    FUZZ_CHECK(parser_.body_bytes() == m.body.size(), d());
    if (reparse_ && reparse_state_.parser) {
      // The backend's view: the serialized head and then the forwarded body, one parser.
      http::RequestParser& again = *reparse_state_.parser;
      base::ByteBuffer redo;
      if (fwd.empty()) {
        // Nothing to feed (an empty ByteBuffer has no storage: a null pointer, which the
        // proxy never passes either). Only an unfinished body can have forwarded nothing.
        FUZZ_CHECK(!complete || again.body_done(), d());
      } else if (!again.body_done()) {
        http::ParseResult r = again.parse_body(fwd.data(), fwd.size(), redo);
        note = "\nre-parse of the body: status " + std::to_string(int(r.status)) + " consumed " +
               std::to_string(r.consumed) + " (" + std::string(again.error_reason()) + ")";
        FUZZ_CHECK(r.consumed == fwd.size(), d());
        FUZZ_CHECK(r.status == (complete ? http::ParseStatus::message_done : http::ParseStatus::need_more), d());
      } else {
        FUZZ_CHECK(false, d());  // a bodiless request forwarded body bytes
      }
      std::string decoded;
      if (m.head.framing == http::BodyFraming::chunked) {
        std::string why;
        FUZZ_CHECK(fuzz::decode_chunked_strict(redo.view(), complete, decoded, why), why + "\n" + d());
      } else {
        decoded.assign(redo.view());
      }
      FUZZ_CHECK(decoded == m.body, d() + "\nre-decoded: \"" + escaped(decoded) + "\"");
      reparse_state_ = {};
    }
  }

  bool finish_message(bool complete) {
    close_body(complete);
    in_body_ = false;
    parser_.reset();
    if (outcome_.messages.size() >= kMessagesMax) {
      ended_ = true;
      outcome_.last = http::ParseStatus::message_done;
      return false;
    }
    return true;
  }

  bool on_error(const http::ParseResult& r) {
    FUZZ_CHECK(r.consumed == 0, "error consumed " + std::to_string(r.consumed));
    uint16_t status = parser_.error_status();
    FUZZ_CHECK(documented_error_status(status),
               "error status " + std::to_string(status) + " (" + std::string(parser_.error_reason()) + ")");
    FUZZ_CHECK(!parser_.error_reason().empty(), "error without a reason");
    // A failed parser stays failed.
    base::ByteBuffer scratch;
    FUZZ_CHECK(parser_.parse_head("x", 1).status == http::ParseStatus::error || in_body_, "error not sticky");
    if (in_body_) {
      FUZZ_CHECK(parser_.parse_body("x", 1, scratch).status == http::ParseStatus::error && scratch.empty(),
                 "body error not sticky");
      close_body(false);
    }
    if (reparse_) check_error_response(status);
    outcome_.last = http::ParseStatus::error;
    outcome_.in_body = in_body_;
    outcome_.error_status = status;
    outcome_.error_reason = parser_.error_reason();
    ended_ = true;
    return false;
  }

 public:
  bool ended() const { return ended_; }
  bool in_body() const { return in_body_; }

 private:
  http::Limits limits_;
  http::RequestParser parser_;
  bool reparse_;
  Reparse reparse_state_;
  base::ByteBuffer forwarded_;
  Outcome outcome_;
  bool in_body_ = false;
  bool ended_ = false;
};

Outcome run(const fuzz::Input& in, const http::Limits& limits, bool whole) {
  Driver driver(limits, /*reparse=*/whole);
  fuzz::for_each_piece(in.data, in.size, in.pieces, whole, [&](const char* p, size_t n) { return driver.feed(p, n); });
  bool in_body = driver.in_body() && !driver.ended();
  Outcome o = driver.finish();
  if (o.last != http::ParseStatus::error && o.last != http::ParseStatus::message_done) {
    o.last = http::ParseStatus::need_more;
    o.in_body = in_body;
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  fuzz::Input in = fuzz::split_input(bytes, size);
  if (in.data == nullptr) return 0;
  http::Limits limits;
  if (in.config & 0x08) {
    limits.request_line_bytes_max = 64;
    limits.header_bytes_max = 256;
    limits.header_count_max = 8;
  }
  if (in.config & 0x10) limits.body_bytes_max = 100;
  Outcome whole = run(in, limits, true);
  Outcome pieces = run(in, limits, false);
  FUZZ_CHECK(whole.same_as(pieces), "fed whole:\n" + describe(whole) + "\nfed in pieces:\n" + describe(pieces));
  // FUZZ_DUMP=1 build-fuzz/tests/fuzz/<target> FILE... prints what each input parsed to.
  static const bool dump = std::getenv("FUZZ_DUMP") != nullptr;
  if (dump) std::fprintf(stderr, "%s\n", describe(whole).c_str());
  return 0;
}
