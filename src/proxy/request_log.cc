// What a worker records about each request: the latency histograms and the access log line.
// A request opens at its first byte (begin_request) and closes once answered or cut off
// (request_finished); everything here runs on the reactor and never waits.
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "ringmaster/base/clock.h"
#include "worker.h"

namespace ringmaster::proxy {
namespace {

// Appends `text` as the inside of a JSON string. Request targets and methods passed strict
// validation, but a quote, a backslash or a byte outside printable ASCII is escaped anyway.
void append_json_text(std::string& out, std::string_view text) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += ch;
    }
  }
}

void append_ms(std::string& out, int64_t us) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(us) / 1000.0);
  out += text;
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
}

void Worker::end_upstream_time(ClientConn* c) {
  if (c->upstream_start_us != 0 && c->upstream_us < 0) c->upstream_us = base::now_us() - c->upstream_start_us;
}

void Worker::request_finished(ClientConn* c, bool complete) {
  end_upstream_time(c);
  int64_t total_us = base::now_us() - c->request_start_us;
  stats_.request_time.observe_us(static_cast<uint64_t>(total_us));
  if (c->upstream_us >= 0) stats_.upstream_time.observe_us(static_cast<uint64_t>(c->upstream_us));
  if (log_queue_ != nullptr) log_request(c, total_us, complete);
  c->request_start_us = 0;
}

void Worker::log_request(ClientConn* c, int64_t total_us, bool complete) {
  timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  if (wall.tv_sec != log_second_) {
    tm parts;
    gmtime_r(&wall.tv_sec, &parts);
    strftime(log_time_, sizeof log_time_, "%Y-%m-%dT%H:%M:%S", &parts);
    log_second_ = wall.tv_sec;
  }
  std::string& line = log_line_;
  char number[64];
  line.clear();
  std::snprintf(number, sizeof number, ".%03ldZ", wall.tv_nsec / 1000000);
  line.append("{\"time\":\"").append(log_time_).append(number);
  std::snprintf(number, sizeof number, "\",\"id\":\"%d-%d-%llu\"", static_cast<int>(getpid()), index_,
                static_cast<unsigned long long>(++log_sequence_));
  line.append(number).append(",\"client\":\"").append(c->ip).append("\",\"method\":");
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
  std::snprintf(number, sizeof number, ",\"status\":%u,\"bytes_in\":%llu,\"bytes_out\":%llu", c->status,
                static_cast<unsigned long long>(c->bytes_in),
                static_cast<unsigned long long>(c->out.queued_total() - c->out_mark));
  line.append(number).append(",\"upstream\":");
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
