// What a worker records about each request: the latency histograms and the access log line.
// A request opens at its first byte (begin_request) and closes once answered or cut off
// (request_finished); everything here runs on the reactor and never waits.
#include <time.h>

#include <charconv>
#include <cstring>
#include <string>

#include "ringmaster/base/clock.h"
#include "worker.h"

namespace ringmaster::proxy {
namespace {

// A line is written in place at a raw cursor, into room reserved once for the longest line
// its fields can make (every variable byte escaped to six): no capacity check per piece.
// (Appending piece by piece to a std::string made the line 2,443 user instructions, a third
// of a cache hit's own; perf/instructions with --access-log, README Measured.)
class LineWriter {
 public:
  explicit LineWriter(char* at) : at_(at) {}
  char* end() const { return at_; }
  void text(std::string_view s) {
    if (!s.empty()) std::memcpy(at_, s.data(), s.size());
    at_ += s.size();
  }
  void uint(uint64_t v) { at_ = std::to_chars(at_, at_ + 20, v).ptr; }
  // Microseconds as milliseconds with three decimals ("5.174"), without floating point.
  void ms(int64_t us) {
    uint64_t v = us < 0 ? 0 : static_cast<uint64_t>(us);
    uint(v / 1000);
    at_[0] = '.';
    at_[1] = static_cast<char>('0' + v / 100 % 10);
    at_[2] = static_cast<char>('0' + v / 10 % 10);
    at_[3] = static_cast<char>('0' + v % 10);
    at_ += 4;
  }
  // `s` as the inside of a JSON string. Request targets and methods passed strict validation
  // and ids are tchar, so the bytes are checked eight at a time and copied whole; a quote, a
  // backslash or a byte outside printable ASCII sends the string through the escaping loop.
  void json_text(std::string_view s) {
    if (!needs_escape(s)) {
      text(s);
      return;
    }
    for (char ch : s) {
      auto c = static_cast<unsigned char>(ch);
      if (c != '"' && c != '\\' && c >= 0x20 && c < 0x7f) {
        *at_++ = ch;
      } else if (c == '"' || c == '\\') {
        *at_++ = '\\';
        *at_++ = ch;
      } else {
        constexpr char kHex[] = "0123456789abcdef";
        char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        std::memcpy(at_, esc, 6);
        at_ += 6;
      }
    }
  }

 private:
  // Any byte below 0x20, from 0x7f up, '"' or '\\' (word-at-a-time: "has a zero byte" and
  // "has a byte below n" are exact as to whether one exists).
  static bool word_needs_escape(uint64_t w) {
    constexpr uint64_t k01 = 0x0101010101010101ull;
    constexpr uint64_t k80 = 0x8080808080808080ull;
    auto has_zero = [](uint64_t v) { return (v - k01) & ~v & k80; };
    return ((w - k01 * 0x20) & ~w & k80) | (w & k80) | has_zero(w ^ (k01 * '"')) | has_zero(w ^ (k01 * '\\')) |
           has_zero(w ^ (k01 * 0x7f));
  }
  static bool needs_escape(std::string_view s) {
    size_t i = 0;
    uint64_t w;
    for (; i + 8 <= s.size(); i += 8) {
      std::memcpy(&w, s.data() + i, 8);
      if (word_needs_escape(w)) return true;
    }
    if (i == s.size()) return false;
    char tail[8] = {'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'};  // padding that needs no escape
    std::memcpy(tail, s.data() + i, s.size() - i);
    std::memcpy(&w, tail, 8);
    return word_needs_escape(w);
  }

  char* at_;
};

// Room for a line: the fixed text and numbers, plus six bytes per byte of each variable field.
constexpr size_t kLineFixedBytes = 512;
constexpr size_t kEscapedBytesPerByte = 6;

const char* cache_result_name(CacheResult r) {
  switch (r) {
    case CacheResult::hit:
      return "hit";
    case CacheResult::miss:
      return "miss";
    case CacheResult::none:
      break;
  }
  return "none";
}

}  // namespace

void Worker::begin_request(ClientConn* c) {
  c->request_start_us = base::now_us();
  c->upstream_start_us = 0;
  c->upstream_us = -1;
  c->status = 0;
  c->cache_result = CacheResult::none;
  c->head_parsed = false;
  c->bytes_in = 0;
  c->out_mark = c->out.queued_total();
  c->target_name.clear();
  c->request_id = {};
}

std::string_view Worker::request_id(ClientConn* c) {
  if (c->request_id.empty()) {
    if (c->head_parsed && c->parser && !c->parser->head().x_request_id.empty()) {
      c->request_id = c->parser->head().x_request_id;
    } else {
      request_ids_.next(c->generated_id);
      c->request_id = std::string_view(c->generated_id, sizeof c->generated_id);
    }
  }
  return c->request_id;
}

void Worker::end_upstream_time(ClientConn* c) {
  if (c->upstream_start_us == 0 || c->upstream_us >= 0) return;
  c->upstream_us = base::now_us() - c->upstream_start_us;
  // Per target too, when the exchange ends on a connection to one (not when every connect
  // failed, or the target already left the snapshot).
  if (c->upstream != nullptr && c->upstream->target != nullptr) {
    c->upstream->target->slots[index_].upstream_time.observe_us(static_cast<uint64_t>(c->upstream_us));
  }
}

void Worker::request_finished(ClientConn* c, bool complete) {
  end_upstream_time(c);
  int64_t end_us = base::now_us();
  int64_t total_us = end_us - c->request_start_us;
  stats_.request_time.observe_us(static_cast<uint64_t>(total_us));
  if (c->upstream_us >= 0) stats_.upstream_time.observe_us(static_cast<uint64_t>(c->upstream_us));
  if (c->head_parsed && c->service != nullptr) {  // per service too (a 404 has none)
    c->service->slot->request_time.observe_us(static_cast<uint64_t>(total_us));
    if (c->upstream_us >= 0) c->service->slot->upstream_time.observe_us(static_cast<uint64_t>(c->upstream_us));
  }
  if (log_queue_ != nullptr) log_request(c, end_us, total_us, complete);
  c->request_start_us = 0;
  c->request_id = {};  // may view the parser, which is reset next
}

void Worker::log_request(ClientConn* c, int64_t end_us, int64_t total_us, bool complete) {
  // Formatting stays cheap: the second's text is made once per second, the wall clock is the
  // request's monotonic end plus an offset measured once per second, numbers with to_chars,
  // no printf and no allocation once the line buffer has grown.
  if (end_us >= log_offset_until_us_) {
    timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t mono_us = base::now_us();
    log_wall_offset_us_ = static_cast<int64_t>(wall.tv_sec) * 1000000 + wall.tv_nsec / 1000 - mono_us;
    log_offset_until_us_ = mono_us + 1000000;
  }
  int64_t wall_us = end_us + log_wall_offset_us_;
  time_t wall_s = static_cast<time_t>(wall_us / 1000000);
  if (wall_s != log_second_) {
    tm parts;
    gmtime_r(&wall_s, &parts);
    strftime(log_time_, sizeof log_time_, "%Y-%m-%dT%H:%M:%S", &parts);
    log_second_ = wall_s;
  }
  const bool head = c->head_parsed && c->parser;
  const http::RequestHead* h = head ? &c->parser->head() : nullptr;
  const bool service = c->head_parsed && c->service != nullptr;  // a 404 has none
  std::string_view id = request_id(c);
  size_t variable = id.size() + (head ? h->method_text.size() + h->target.size() : 0) +
                    (service ? c->service->runtime->name.size() : 0) + c->target_name.size();
  log_line_.clear();
  char* start = log_line_.reserve_back(kLineFixedBytes + sizeof c->ip + kEscapedBytesPerByte * variable);
  LineWriter line(start);
  line.text("{\"time\":\"");
  line.text(log_time_);
  auto ms = static_cast<unsigned>(wall_us / 1000 % 1000);
  char millis[6] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10), 'Z', '"'};
  line.text(std::string_view(millis, 6));
  line.text(",\"id\":\"");
  line.json_text(id);  // valid ids need no escape; belt and braces
  line.text("\",\"client\":\"");
  line.text(c->ip);
  line.text("\",\"method\":");
  if (head) {
    line.text("\"");
    line.json_text(h->method_text);
    line.text("\",\"target\":\"");
    line.json_text(h->target);
    line.text("\"");
  } else {
    line.text("null,\"target\":null");  // the head never parsed (a 400, 408, 414, 431 ...)
  }
  line.text(",\"service\":");
  if (service) {
    line.text("\"");
    line.json_text(c->service->runtime->name);
    line.text("\"");
  } else {
    line.text("null");  // no service matched (404), or the head never parsed
  }
  line.text(",\"status\":");
  line.uint(c->status);
  line.text(",\"bytes_in\":");
  line.uint(c->bytes_in);
  line.text(",\"bytes_out\":");
  line.uint(c->out.queued_total() - c->out_mark);
  line.text(",\"upstream\":");
  if (c->target_name.empty()) {
    line.text("null");
  } else {
    line.text("\"");
    line.json_text(c->target_name);
    line.text("\"");
  }
  line.text(",\"upstream_ms\":");
  if (c->upstream_us >= 0) {
    line.ms(c->upstream_us);
  } else {
    line.text("null");
  }
  line.text(",\"total_ms\":");
  line.ms(total_us);
  line.text(",\"cache\":\"");
  line.text(cache_result_name(c->cache_result));
  line.text(complete ? "\",\"complete\":true}\n" : "\",\"complete\":false}\n");
  log_line_.commit(static_cast<size_t>(line.end() - start));
  log_queue_->push(log_line_.view());
}

}  // namespace ringmaster::proxy
