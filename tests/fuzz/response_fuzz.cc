// response_fuzz: the backend side of the http module (ResponseParser,
// choose_response_framing, serialize_response_head) under libFuzzer.
//
// The input (see fuzz_common.h) is what a backend sends on one upstream connection:
// responses one after another, parsed the way the proxy parses them — reset(method),
// parse_head (1xx skipped inside), parse_body with the framing chosen for the client, and
// finish() when the backend closes — once in fuzzer-chosen pieces and once whole.
// Configuration bits: 3 = small head limits, 4 = the request was HEAD (else GET),
// 5 = the client speaks HTTP/1.0 (else 1.1), 6 = the client does not want keep-alive.
//
// Invariants (any violation aborts, and libFuzzer keeps the input):
//   * consumed never exceeds the input; need_more consumes everything; error consumes 0;
//   * parse_body (and finish) append at most len + 32 bytes per call;
//   * what goes to the client is well formed: raw bytes, exactly Content-Length of them, or
//     our own strict chunks with "0\r\n\r\n" exactly at the end;
//   * HEAD, 204 and 304 responses have no body whatever they announce;
//   * the head for the client (serialize_response_head with choose_response_framing) parses
//     STRICTLY, with a fresh ResponseParser, to the same status and fields, the framing that
//     was chosen (Content-Length value included) and the expected Via and persistence, and
//     the body sent to the client, fed to that parser, decodes to the same bytes;
//   * the pieces and the whole input end the same way: same responses, same final state.
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

constexpr size_t kMessagesMax = 64;

struct Config {
  http::ResponseLimits limits;
  http::Method method = http::Method::get;
  uint8_t client_minor = 1;
  bool client_keep_alive = true;
};

struct HeadCopy {
  uint16_t status = 0;
  std::string reason, via;
  uint8_t version_minor = 0;
  http::BodyFraming framing = http::BodyFraming::none;
  uint64_t content_length = 0;
  bool has_content_length = false;
  bool keep_alive = false;
  std::vector<std::pair<std::string, std::string>> fields;
  bool operator==(const HeadCopy&) const = default;
};

HeadCopy copy_head(const http::ResponseHead& h) {
  HeadCopy c;
  c.status = h.status;
  c.reason = h.reason;
  c.via = h.via;
  c.version_minor = h.version_minor;
  c.framing = h.framing;
  c.content_length = h.content_length;
  c.has_content_length = h.has_content_length;
  c.keep_alive = h.keep_alive;
  for (const http::Field& f : h.fields) c.fields.emplace_back(f.name, f.value);
  return c;
}

std::string describe(const HeadCopy& h) {
  std::string s = "HTTP/1." + std::to_string(h.version_minor) + " " + std::to_string(h.status) + " \"" +
                  escaped(h.reason) + "\" framing=" + std::to_string(static_cast<int>(h.framing)) +
                  " cl=" + std::to_string(h.content_length) + " has_cl=" + std::to_string(h.has_content_length) +
                  " keep_alive=" + std::to_string(h.keep_alive) + " via=\"" + escaped(h.via) + "\"";
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
  std::vector<Message> messages;
  http::ParseStatus last = http::ParseStatus::need_more;
  bool in_body = false;
  std::string error_reason;
  bool same_as(const Outcome& o) const { return messages == o.messages && last == o.last && in_body == o.in_body; }
};

std::string describe(const Outcome& o) {
  std::string s = "status=" + std::to_string(static_cast<int>(o.last)) + " in_body=" + std::to_string(o.in_body) +
                  " error=\"" + o.error_reason + "\" messages=" + std::to_string(o.messages.size());
  for (const Message& m : o.messages) {
    s += "\n  " + describe(m.head) + "\n    body(" + std::to_string(m.body.size()) + ")=\"" + escaped(m.body, 200) +
         "\" complete=" + std::to_string(m.complete);
  }
  return s;
}

bool clean_value(std::string_view v) {
  for (unsigned char c : v) {
    if (c == '\r' || c == '\n' || c == 0 || c == 0x7f || (c < 0x20 && c != '\t')) return false;
  }
  return true;
}

http::ResponseLimits roomy(const http::ResponseLimits& l) {
  http::ResponseLimits r = l;
  r.header_bytes_max = l.header_bytes_max * 2 + 4096;
  r.header_count_max = l.header_count_max + 8;
  return r;
}

// The client's view of one response: the head we write, parsed back by a fresh parser.
struct ClientView {
  std::unique_ptr<http::ResponseParser> parser;
  std::string serialized;
};

ClientView serialize_and_check(const http::ResponseHead& h, const http::ResponseFraming& f, const Config& cfg) {
  base::ByteBuffer out;
  http::serialize_response_head(h, f, cfg.client_minor, "ringmaster", out);
  ClientView cv;
  cv.serialized.assign(out.data(), out.size());
  cv.parser = std::make_unique<http::ResponseParser>(roomy(cfg.limits));
  cv.parser->reset(cfg.method);
  http::ParseResult r = cv.parser->parse_head(out.data(), out.size());
  auto d = [&] {
    return "backend's head: " + describe(copy_head(h)) + "\nchosen framing " + std::to_string(int(f.framing)) +
           " rechunk=" + std::to_string(f.rechunk) + " close=" + std::to_string(f.close) + "\nserialized: \"" +
           escaped(cv.serialized) + "\"\nre-parse: status " + std::to_string(int(r.status)) + " consumed " +
           std::to_string(r.consumed) + " (" + std::string(cv.parser->error_reason()) + ")\nre-parsed head: " +
           describe(copy_head(cv.parser->head()));
  };
  FUZZ_CHECK(r.status == http::ParseStatus::head_done && r.consumed == out.size(), d());
  const http::ResponseHead& g = cv.parser->head();
  FUZZ_CHECK(g.status == h.status && g.version_minor == 1, d());
  std::string_view reason = h.reason.empty() ? http::reason_phrase(h.status) : h.reason;
  FUZZ_CHECK(g.reason == reason, d());
  FUZZ_CHECK(g.fields.size() == h.fields.size(), d());
  for (size_t i = 0; i < h.fields.size(); ++i) {
    FUZZ_CHECK(g.fields[i].name == h.fields[i].name && g.fields[i].value == h.fields[i].value, d());
  }
  std::string via(h.via);
  if (!via.empty()) via += ", ";
  via += h.version_minor == 0 ? "1.0 ringmaster" : "1.1 ringmaster";
  FUZZ_CHECK(g.via == via, d());
  // Framing as chosen: Content-Length (with the backend's value), chunked, close-delimited
  // or nothing; HEAD, 204 and 304 never have a body.
  bool bodiless = cfg.method == http::Method::head || h.status == 204 || h.status == 304;
  FUZZ_CHECK(g.has_content_length == (f.framing == http::BodyFraming::content_length), d());
  if (g.has_content_length) FUZZ_CHECK(g.content_length == h.content_length, d());
  http::BodyFraming expect = bodiless ? http::BodyFraming::none : f.framing;
  FUZZ_CHECK(g.framing == expect, d());
  FUZZ_CHECK(f.framing != http::BodyFraming::chunked || cfg.client_minor == 1, d());
  FUZZ_CHECK(!(h.status == 204 && f.framing == http::BodyFraming::content_length), d());
  bool keep_alive = !f.close && expect != http::BodyFraming::close_delimited;
  FUZZ_CHECK(g.keep_alive == keep_alive, d());
  FUZZ_CHECK(f.close || cfg.client_keep_alive, d());
  FUZZ_CHECK(f.framing != http::BodyFraming::close_delimited || f.close, d());
  return cv;
}

class Driver {
 public:
  Driver(const Config& cfg, bool check_client_view) : cfg_(cfg), parser_(cfg.limits), check_(check_client_view) {
    parser_.reset(cfg.method);
  }

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
      size_t before = to_client_.size();
      http::ParseResult r = parser_.parse_body(data, len, to_client_, framing_.rechunk);
      check_appended(before, len, "parse_body");
      FUZZ_CHECK(r.consumed <= len, "parse_body consumed " + std::to_string(r.consumed) + " of " + std::to_string(len));
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

  // The backend closed the connection.
  Outcome close() {
    if (!ended_ && in_body_) {
      size_t before = to_client_.size();
      http::ParseResult r = parser_.finish(to_client_, framing_.rechunk);
      check_appended(before, 0, "finish");
      FUZZ_CHECK(r.consumed == 0, "finish consumed bytes");
      if (r.status == http::ParseStatus::message_done) {
        FUZZ_CHECK(outcome_.messages.back().head.framing == http::BodyFraming::close_delimited,
                   "finish completed a body that was not close-delimited");
        finish_message(true);
      } else {
        FUZZ_CHECK(r.status == http::ParseStatus::error, "finish status " + std::to_string(int(r.status)));
        FUZZ_CHECK(outcome_.messages.back().head.framing != http::BodyFraming::close_delimited,
                   "finish failed a close-delimited body");
        close_body(false);
        outcome_.last = http::ParseStatus::error;
        outcome_.in_body = true;
        outcome_.error_reason = parser_.error_reason();
        ended_ = true;
      }
    }
    if (!ended_) outcome_.last = http::ParseStatus::need_more;
    return std::move(outcome_);
  }

 private:
  void check_appended(size_t before, size_t len, const char* what) {
    size_t appended = to_client_.size() - before;
    FUZZ_CHECK(appended <= len + 32, std::string(what) + " appended " + std::to_string(appended) + " bytes for " +
                                         std::to_string(len) + " input bytes: \"" +
                                         escaped(std::string_view(to_client_.data() + before, appended)) + "\"");
  }

  bool on_head() {
    const http::ResponseHead& h = parser_.head();
    Message m;
    m.head = copy_head(h);
    auto d = [&] { return describe(copy_head(h)); };
    FUZZ_CHECK(h.status >= 200 && h.status <= 599 && h.version_minor <= 1, d());
    bool bodiless = cfg_.method == http::Method::head || h.status == 204 || h.status == 304;
    FUZZ_CHECK(!bodiless || h.framing == http::BodyFraming::none, d());
    FUZZ_CHECK(bodiless || h.framing != http::BodyFraming::none, d());
    FUZZ_CHECK(h.framing != http::BodyFraming::close_delimited || !h.keep_alive, d());
    FUZZ_CHECK(clean_value(h.reason) && clean_value(h.via), d());
    for (const http::Field& f : h.fields) FUZZ_CHECK(!f.name.empty() && clean_value(f.value), d());
    bool empty_body = h.framing == http::BodyFraming::none ||
                      (h.framing == http::BodyFraming::content_length && h.content_length == 0);
    FUZZ_CHECK(parser_.body_done() == empty_body, d());
    framing_ = http::choose_response_framing(h, cfg_.method, cfg_.client_minor, cfg_.client_keep_alive);
    if (check_) view_ = serialize_and_check(h, framing_, cfg_);
    outcome_.messages.push_back(std::move(m));
    to_client_.clear();
    in_body_ = true;
    if (parser_.body_done()) return finish_message(true);
    return true;
  }

  void close_body(bool complete) {
    Message& m = outcome_.messages.back();
    m.complete = complete;
    std::string_view sent = to_client_.view();
    std::string note;
    auto d = [&] {
      return describe(m.head) + "\nframing for the client " + std::to_string(int(framing_.framing)) +
             " rechunk=" + std::to_string(framing_.rechunk) + "\nsent: \"" + escaped(sent) + "\"" + note;
    };
    if (framing_.rechunk) {
      std::string why;
      FUZZ_CHECK(fuzz::decode_chunked_strict(sent, complete, m.body, why), why + "\n" + d());
    } else {
      m.body.assign(sent);
    }
    if (m.head.framing == http::BodyFraming::content_length) {
      FUZZ_CHECK(complete ? m.body.size() == m.head.content_length : m.body.size() < m.head.content_length, d());
    }
    if (m.head.framing == http::BodyFraming::none) FUZZ_CHECK(sent.empty(), d());
    if (!check_ || !view_.parser) return;
    // The client's parser gets our head, then exactly the bytes we sent, then (for a
    // close-delimited body) our close.
    http::ResponseParser& again = *view_.parser;
    base::ByteBuffer redo;
    if (!sent.empty()) {
      FUZZ_CHECK(!again.body_done(), d());
      http::ParseResult r = again.parse_body(sent.data(), sent.size(), redo, false);
      note = "\nclient re-parse: status " + std::to_string(int(r.status)) + " consumed " + std::to_string(r.consumed) +
             " (" + std::string(again.error_reason()) + ")";
      FUZZ_CHECK(r.consumed == sent.size() && r.status != http::ParseStatus::error, d());
      bool done = r.status == http::ParseStatus::message_done;
      if (!done && complete && framing_.framing == http::BodyFraming::close_delimited) {
        done = again.finish(redo, false).status == http::ParseStatus::message_done;
      }
      FUZZ_CHECK(done == complete, d());
    } else if (complete) {
      bool done = again.body_done() ||
                  (framing_.framing == http::BodyFraming::close_delimited &&
                   again.finish(redo, false).status == http::ParseStatus::message_done);
      FUZZ_CHECK(done, d());
    }
    FUZZ_CHECK(redo.view() == m.body, d() + "\nclient decoded: \"" + escaped(redo.view()) + "\"");
    view_ = {};
  }

  bool finish_message(bool complete) {
    close_body(complete);
    in_body_ = false;
    parser_.reset(cfg_.method);
    if (outcome_.messages.size() >= kMessagesMax) {
      ended_ = true;
      outcome_.last = http::ParseStatus::message_done;
      return false;
    }
    return true;
  }

  bool on_error(const http::ParseResult& r) {
    FUZZ_CHECK(r.consumed == 0, "error consumed " + std::to_string(r.consumed));
    FUZZ_CHECK(!parser_.error_reason().empty(), "error without a reason");
    base::ByteBuffer scratch;
    FUZZ_CHECK(parser_.parse_head("x", 1).status == http::ParseStatus::error, "error not sticky");
    FUZZ_CHECK(parser_.finish(scratch, true).status == http::ParseStatus::error && scratch.empty(),
               "finish after an error");
    if (in_body_) close_body(false);
    outcome_.last = http::ParseStatus::error;
    outcome_.in_body = in_body_;
    outcome_.error_reason = parser_.error_reason();
    ended_ = true;
    return false;
  }

  Config cfg_;
  http::ResponseParser parser_;
  bool check_;
  http::ResponseFraming framing_{};
  ClientView view_;
  base::ByteBuffer to_client_;
  Outcome outcome_;
  bool in_body_ = false;
  bool ended_ = false;
};

Outcome run(const fuzz::Input& in, const Config& cfg, bool whole) {
  Driver driver(cfg, /*check_client_view=*/whole);
  fuzz::for_each_piece(in.data, in.size, in.pieces, whole, [&](const char* p, size_t n) { return driver.feed(p, n); });
  return driver.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  fuzz::Input in = fuzz::split_input(bytes, size);
  if (in.data == nullptr) return 0;
  Config cfg;
  if (in.config & 0x08) {
    cfg.limits.header_bytes_max = 256;
    cfg.limits.header_count_max = 8;
  }
  cfg.method = (in.config & 0x10) ? http::Method::head : http::Method::get;
  cfg.client_minor = (in.config & 0x20) ? 0 : 1;
  cfg.client_keep_alive = (in.config & 0x40) == 0;
  Outcome whole = run(in, cfg, true);
  Outcome pieces = run(in, cfg, false);
  FUZZ_CHECK(whole.same_as(pieces), "fed whole:\n" + describe(whole) + "\nfed in pieces:\n" + describe(pieces));
  // FUZZ_DUMP=1 build-fuzz/tests/fuzz/<target> FILE... prints what each input parsed to.
  static const bool dump = std::getenv("FUZZ_DUMP") != nullptr;
  if (dump) std::fprintf(stderr, "%s\n", describe(whole).c_str());
  return 0;
}
