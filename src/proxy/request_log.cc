// What a worker records about each request: the latency histograms and the access log line.
// A request opens at its first byte (begin_request) and closes once answered or cut off
// (request_finished); everything here runs on the reactor and never waits.
#include <time.h>

#include <charconv>
#include <string>

#include "ringmaster/base/clock.h"
#include "worker.h"

namespace ringmaster::proxy {
namespace {

// Appends `text` as the inside of a JSON string. Request targets and methods passed strict
// validation, but a quote, a backslash or a byte outside printable ASCII is escaped anyway.
void append_json_text(std::string& out, std::string_view text) {
  size_t run = 0;  // start of the current run of bytes that need no escape
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c != '"' && c != '\\' && c >= 0x20 && c < 0x7f) continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(esc, 6);
    }
  }
  out.append(text.data() + run, text.size() - run);
}

void append_uint(std::string& out, uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

// Microseconds as milliseconds with three decimals ("5.174"), without floating point.
void append_ms(std::string& out, int64_t us) {
  uint64_t v = us < 0 ? 0 : static_cast<uint64_t>(us);
  append_uint(out, v / 1000);
  char frac[4] = {'.', static_cast<char>('0' + v / 100 % 10), static_cast<char>('0' + v / 10 % 10),
                  static_cast<char>('0' + v % 10)};
  out.append(frac, 4);
}

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
  int64_t total_us = base::now_us() - c->request_start_us;
  stats_.request_time.observe_us(static_cast<uint64_t>(total_us));
  if (c->upstream_us >= 0) stats_.upstream_time.observe_us(static_cast<uint64_t>(c->upstream_us));
  if (c->head_parsed && c->service != nullptr) {  // per service too (a 404 has none)
    c->service->slot->request_time.observe_us(static_cast<uint64_t>(total_us));
    if (c->upstream_us >= 0) c->service->slot->upstream_time.observe_us(static_cast<uint64_t>(c->upstream_us));
  }
  if (log_queue_ != nullptr) log_request(c, total_us, complete);
  c->request_start_us = 0;
  c->request_id = {};  // may view the parser, which is reset next
}

void Worker::log_request(ClientConn* c, int64_t total_us, bool complete) {
  // Formatting stays cheap: the second's text is made once per second, numbers with
  // to_chars, no printf and no allocation once the line buffer has grown.
  timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  if (wall.tv_sec != log_second_) {
    tm parts;
    gmtime_r(&wall.tv_sec, &parts);
    strftime(log_time_, sizeof log_time_, "%Y-%m-%dT%H:%M:%S", &parts);
    log_second_ = wall.tv_sec;
  }
  std::string& line = log_line_;
  line.assign("{\"time\":\"").append(log_time_);
  auto ms = static_cast<unsigned>(wall.tv_nsec / 1000000);
  char millis[6] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10), 'Z', '"'};
  line.append(millis, 6).append(",\"id\":\"");
  append_json_text(line, request_id(c));  // valid ids need no escape; belt and braces
  line.append("\",\"client\":\"").append(c->ip).append("\",\"method\":");
  if (c->head_parsed && c->parser) {
    const http::RequestHead& head = c->parser->head();
    line.append("\"");
    append_json_text(line, head.method_text);
    line.append("\",\"target\":\"");
    append_json_text(line, head.target);
    line.append("\"");
  } else {
    line.append("null,\"target\":null");  // the head never parsed (a 400, 408, 414, 431 ...)
  }
  line.append(",\"service\":");
  if (c->head_parsed && c->service != nullptr) {
    line.append("\"");
    append_json_text(line, c->service->runtime->name);
    line.append("\"");
  } else {
    line.append("null");  // no service matched (404), or the head never parsed
  }
  line.append(",\"status\":");
  append_uint(line, c->status);
  line.append(",\"bytes_in\":");
  append_uint(line, c->bytes_in);
  line.append(",\"bytes_out\":");
  append_uint(line, c->out.queued_total() - c->out_mark);
  line.append(",\"upstream\":");
  if (c->target_name.empty()) {
    line.append("null");
  } else {
    line.append("\"");
    append_json_text(line, c->target_name);
    line.append("\"");
  }
  line.append(",\"upstream_ms\":");
  if (c->upstream_us >= 0) {
    append_ms(line, c->upstream_us);
  } else {
    line.append("null");
  }
  line.append(",\"total_ms\":");
  append_ms(line, total_us);
  line.append(",\"cache\":\"").append(cache_result_name(c->cache_result));
  line.append(complete ? "\",\"complete\":true}\n" : "\",\"complete\":false}\n");
  log_queue_->push(line);
}

}  // namespace ringmaster::proxy
