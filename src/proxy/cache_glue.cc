// The cache on the request path: lookup before routing, miss collapsing across reactors, and
// filling an entry while the response streams to the client.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>

#include "ringmaster/base/log.h"
#include "ringmaster/http/wire.h"
#include "worker.h"

namespace ringmaster::proxy {
namespace {

int64_t unix_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A hit whose stored head and body (or range) add up to at most this is copied into the
// connection's own output buffer and goes out as one plain send; a larger one is sent from
// the entry without a copy. The kernel copies the bytes into the socket either way; for a
// small answer, sharing costs more than the copy: two references taken and dropped on the
// entry (atomics on a line every reactor hitting it touches), three output chunks instead of
// one, and a sendmsg with three iovecs instead of a send (perf/instructions: write_hit and
// the queue's chunk churn were ~2,000 of a hit's 7,851 user instructions, README Measured).
// A page: memcpy of 4 KiB costs less than that fixed overhead on the machines measured.
constexpr size_t kHitCopyBytesMax = 4096;

void to_cache_fields(const std::vector<http::Field>& in, cache::Fields& out) {
  out.clear();
  for (const http::Field& f : in) out.push_back(cache::HeaderField{f.name, f.value});
}

}  // namespace

const cache::RequestInfo& Worker::cache_request_info(ClientConn* c) {
  const http::RequestHead& head = c->parser->head();
  to_cache_fields(head.fields, cache_fields_);
  cache_info_.is_get = head.method == http::Method::get;
  cache_info_.is_head = head.method == http::Method::head;
  cache_info_.host = head.host;
  cache_info_.target = head.target;
  cache_info_.fields = &cache_fields_;
  return cache_info_;
}

bool Worker::try_cache(ClientConn* c) {
  cache::Cache* cache = cache_of(c);
  c->cache_owner = false;
  c->cache_policy = {};
  c->revalidate.reset();
  c->cache_refreshed = false;
  if (cache == nullptr || c->parser->head().framing != http::BodyFraming::none) return false;
  const cache::RequestInfo& info = cache_request_info(c);
  c->cache_policy = cache::classify_request(info);
  if (!c->cache_policy.lookup && !c->cache_policy.store) return false;
  cache::primary_key(info, c->cache_key);
  c->cache_hash = cache::hash_key(c->cache_key);
  c->cache_epoch = cache->epoch();
  if (c->cache_policy.lookup) {
    cache::EntryRef hit = cache->lookup(c->cache_key, c->cache_hash, info, now_ms_, &c->revalidate);
    if (hit) {
      stats_.cache_hits.add();
      c->service->slot->cache_hits.add();
      c->cache_result = CacheResult::hit;
      serve_hit(c, std::move(hit));
      return true;
    }
    // Within the entry's stale-while-revalidate window: the stale entry now, and one
    // refresh in the background (RFC 5861 section 3).
    if (c->revalidate && cache::may_serve_while_revalidating(*c->revalidate, now_ms_)) {
      serve_while_revalidating(c, cache);
      return true;
    }
    // A stale entry with a validator is revalidated, unless the client's request is itself
    // conditional (then its own validators go upstream and the answer is the client's) or
    // asks for a range (then the origin answers the range).
    if (c->revalidate && (c->cache_policy.has_range || cache::is_conditional(cache_fields_))) c->revalidate.reset();
  }
  // A miss is counted when the request goes upstream; a collapsed wait is not a miss (it is
  // usually answered from the cache once the owner's response is stored).
  if (!c->cache_policy.store) {
    stats_.cache_misses.add();
    c->service->slot->cache_misses.add();
    c->cache_result = CacheResult::miss;
    return false;
  }
  switch (cache->claim(c->cache_key, c->cache_hash, static_cast<unsigned>(index_), now_ms_,
                       options_.cache_lock_timeout_ms)) {
    case cache::Cache::Claim::owner:
      stats_.cache_misses.add();
      c->service->slot->cache_misses.add();
      c->cache_result = CacheResult::miss;
      c->cache_owner = true;
      return false;
    case cache::Cache::Claim::wait:
      // Someone is already fetching this key: wait for its response instead of sending the
      // backend one more identical request (a cleared cache under load is no thundering herd).
      stats_.cache_collapsed_waits.add();
      park_cache_waiter(c);
      return true;
    case cache::Cache::Claim::pass:
      stats_.cache_misses.add();
      c->service->slot->cache_misses.add();
      c->cache_result = CacheResult::miss;
      return false;
  }
  return false;
}

void Worker::serve_while_revalidating(ClientConn* c, cache::Cache* cache) {
  // One refresh per key: the claim that collapses misses collapses refreshes too. Whoever
  // holds it — a refresh under way, or a client revalidating past the window — will store
  // what the origin says; until then every request gets the stale entry at once.
  ClientConn* refresh = nullptr;
  if (cache->claim(c->cache_key, c->cache_hash, static_cast<unsigned>(index_), now_ms_,
                   options_.cache_lock_timeout_ms) == cache::Cache::Claim::owner) {
    refresh = prepare_background_refresh(c);
    if (refresh == nullptr) {
      // Not started (too many in flight): give the claim back as if nothing happened, so
      // the next request for the key may start the refresh.
      wake_reactors(cache->release(c->cache_key, c->cache_hash, true, now_ms_, options_.cache_pass_ms));
    }
  }
  // (A claim table too full to track the key, Claim::pass, also starts nothing.)
  stats_.cache_stale_served.add();
  // The client is answered before the refresh starts: write_hit reads this request's fields
  // from the scratch that the refresh's own request would overwrite.
  serve_hit(c, std::move(c->revalidate));
  if (refresh != nullptr) start_attempt(refresh, nullptr);
}

ClientConn* Worker::prepare_background_refresh(ClientConn* c) {
  if (draining_) return nullptr;
  if (background_refreshes_ >= kBackgroundRefreshesMax) {
    stats_.cache_refreshes_refused.add();
    return nullptr;
  }
  // The refresh's request: the client's GET (a HEAD's too: the entry needs the body) with
  // its end-to-end fields, but without its own preconditions and Range (the validators
  // that go upstream are the entry's, added by write_request_head), carrying the client's
  // request id so that the backend's log ties the refresh to the request that started it.
  // Parsed like any request, so everything downstream sees an ordinary exchange.
  const http::RequestHead& head = c->parser->head();
  std::string text;
  http::wire::request_line(text, "GET", head.target, head.version_minor);
  auto field = [&text](std::string_view name, std::string_view value) { http::wire::field(text, name, value); };
  if (!head.host.empty()) field("Host", head.host);
  for (const http::Field& f : head.fields) {
    if (cache::carried_by_refresh(f.name)) field(f.name, f.value);
  }
  if (!head.x_forwarded_for.empty()) field("X-Forwarded-For", head.x_forwarded_for);
  if (!head.via.empty()) field("Via", head.via);
  field("X-Request-Id", request_id(c));
  http::wire::end_of_head(text);
  std::unique_ptr<http::RequestParser> parser;
  if (!spare_parsers_.empty()) {
    parser = std::move(spare_parsers_.back());
    spare_parsers_.pop_back();
  } else {
    parser = std::make_unique<http::RequestParser>(options_.limits);
  }
  http::ParseResult parsed = parser->parse_head(text.data(), text.size());
  if (parsed.status != http::ParseStatus::head_done) {
    // Only a head that grew past --header-bytes-max by the lines above gets here.
    recycle_parser(std::move(parser));
    stats_.cache_refreshes_refused.add();
    return nullptr;
  }
  ClientConn* b = client_slab_.make();
  b->worker = this;
  b->fd = -1;
  b->background = true;
  b->out.set_pool(&out_pool_);
  b->parser = std::move(parser);
  b->head_parsed = true;
  b->ex.start_background();  // never receives; its request is complete; no keep-alive
  b->method = http::Method::get;
  b->version_minor = b->parser->head().version_minor;
  b->service = c->service;
  ++b->service->clients;
  // It takes over the client's claim on the key, and asks about the stale entry.
  b->cache_policy.lookup = true;
  b->cache_policy.store = true;
  b->cache_owner = true;
  b->cache_key = c->cache_key;
  b->cache_hash = c->cache_hash;
  b->cache_epoch = c->cache_epoch;
  b->revalidate = c->revalidate.share();
  std::memcpy(b->ip, c->ip, sizeof b->ip);
  // The whole refresh is bounded by --client-timeout-ms (no client sends re-arm it),
  // besides the upstream deadlines.
  client_timers_.arm(&b->timer, now_ms_);
  ++background_refreshes_;
  stats_.cache_refreshes_started.add();
  return b;
}

void Worker::end_background_refresh(ClientConn* b, bool answered) {
  // Every way a refresh ends comes here (finish_exchange, local_response, close_client,
  // serve_stale): with an answer from the origin, or without one (no target, a 5xx, a
  // broken or timed-out exchange), when the stale entry stays as it was.
  if (b->ex.state() == ClientState::closed) return;
  if (b->queued_on != nullptr) {
    unlink_queued(b);
    b->queued_bytes.reset();
  }
  if (b->upstream != nullptr) {
    end_upstream_time(b);
    UpstreamConn* u = b->upstream;
    detach(b);
    close_upstream(u);
  }
  if (!answered) b->fill.reset();
  bool stored = end_cache_claim(b, answered);
  if (answered && !stored) {
    // A full answer that could not be stored (no-store now, too large, ...): the stale
    // entry no longer is what the origin says; don't keep serving it.
    cache_of(b)->invalidate(b->cache_key, b->cache_hash);
  }
  (answered ? stats_.cache_refreshes_succeeded : stats_.cache_refreshes_failed).add();
  --background_refreshes_;
  release_service(b);
  b->ex.on_closed();
  TimerList::disarm(&b->timer);
  b->out.release();
  if (b->parser) recycle_parser(std::move(b->parser));
  dead_clients_.push_back(b);  // buried with the clients (no descriptor, nothing in flight)
}

void Worker::serve_hit(ClientConn* c, cache::EntryRef entry) {
  write_hit(c, std::move(entry));
  kick_client_send(c);
  finish_exchange(c);
}

void Worker::write_hit(ClientConn* c, cache::EntryRef entry) {
  const cache::Entry& e = *entry;
  base::ByteBuffer* out = &c->out.pending();
  bool close = !c->ex.keep_alive();
  // cache_fields_ holds this request's fields (try_cache filled it just before).
  bool not_modified = cache::not_modified(e, cache_fields_);
  // A Range request is answered from the whole stored body (preconditions come first).
  // (Constructed only for a Range request: zeroing its 32 slots is not for every hit.)
  std::optional<cache::ByteRanges> ranges;
  cache::RangeAnswer range_answer = cache::RangeAnswer::whole;
  if (!not_modified && c->cache_policy.has_range) range_answer = cache::select_range(e, cache_fields_, ranges.emplace());
  const char* body = e.body.data();
  size_t body_len = e.body.size();
  std::unique_ptr<cache::MultipartRanges> multipart;  // several ranges (rare: allocating is fine)
  bool copy = false;  // the head and body go into the owned buffer (kHitCopyBytesMax)
  int64_t content_length = -1;  // written by http::wire::hit_fields when set (the 304, 416 and multipart heads have theirs)
  c->status = not_modified                                        ? 304
              : range_answer == cache::RangeAnswer::unsatisfiable ? 416
              : range_answer == cache::RangeAnswer::whole         ? e.status
                                                                   : 206;
  if (not_modified) {
    stats_.cache_not_modified.add();
    std::string extra;
    cache::append_304_fields(e, extra);
    http::wire::status_line(*out, 304, http::reason_phrase(304));
    out->append(extra);
  } else if (range_answer == cache::RangeAnswer::unsatisfiable) {
    http::wire::status_line(*out, 416, http::reason_phrase(416));
    http::wire::unsatisfied_range(*out, e.body.size());
    http::wire::field(*out, "Content-Length", "0");
    body_len = 0;
  } else if (range_answer == cache::RangeAnswer::multipart) {
    // A boundary no two answers of this reactor share, and unlikely in any body.
    uint64_t mixed = (++boundary_serial_ + (static_cast<uint64_t>(index_) << 48)) * 0x9E3779B97F4A7C15ull ^ e.key_hash;
    char boundary[17];
    for (int i = 15; i >= 0; --i, mixed >>= 4) boundary[i] = "0123456789abcdef"[mixed & 15];
    boundary[16] = '\0';
    multipart = std::make_unique<cache::MultipartRanges>(e, *ranges, std::string_view(boundary, 16));
    http::wire::status_line(*out, 206, http::reason_phrase(206));
    out->append(multipart->fields());
    http::wire::field(*out, "Content-Length", multipart->body_bytes());
    body_len = 0;  // the parts follow the head
  } else {
    size_t fields_at = 0;
    if (range_answer == cache::RangeAnswer::partial) {
      // The stored fields after a 206 status line (the stored one says 200).
      fields_at = e.head.find("\r\n") + 2;
      http::wire::status_line(*out, 206, http::reason_phrase(206));
      const cache::ByteRange& range = ranges->range[0];
      body += range.first;
      body_len = range.last - range.first + 1;
    }
    copy = e.head.size() - fields_at + body_len <= kHitCopyBytesMax;
    if (copy) {
      out->append(e.head.data() + fields_at, e.head.size() - fields_at);
    } else {
      c->out.append_shared(entry.share(), e.head.data() + fields_at, e.head.size() - fields_at);
      out = &c->out.pending();
    }
    if (range_answer == cache::RangeAnswer::partial) {
      const cache::ByteRange& range = ranges->range[0];
      http::wire::content_range(*out, range.first, range.last, e.body.size());
    }
    content_length = static_cast<int64_t>(body_len);
  }
  http::wire::hit_fields(*out, {.content_length = content_length,
                                .age_s = static_cast<uint64_t>(cache::age_seconds(e, now_ms_)),
                                .request_id = request_id(c),
                                .close = close,
                                .http10 = c->version_minor == 0});
  if (multipart && c->method != http::Method::head) {
    for (size_t i = 0; i < ranges->count; ++i) {
      c->out.pending().append(multipart->part_head(i));
      const cache::ByteRange& r = ranges->range[i];
      c->out.append_shared(entry.share(), e.body.data() + r.first, r.last - r.first + 1);
    }
    c->out.pending().append(multipart->tail());
  } else if (!not_modified && body_len > 0 && c->method != http::Method::head) {
    if (copy) {
      out->append(body, body_len);
    } else {
      c->out.append_shared(std::move(entry), body, body_len);
    }
  }
  c->ex.on_whole_response();
}

bool Worker::answer_revalidated(ClientConn* c, const http::ResponseHead& response) {
  // RFC 9111 4.3.3/4.3.4: the origin says the stored response is still good. Freshen it
  // with the 304's fields, store the result and answer from it, as a hit would.
  if (!c->revalidate || response.status != 304 || !cache::revalidatable(*c->revalidate)) return false;
  to_cache_fields(response.fields, cache_response_fields_);
  const cache::RequestInfo& info = cache_request_info(c);
  cache::Freshened fresh = cache::freshen(*c->revalidate, info, cache_response_fields_,
                                          c->cache_policy.has_authorization, cache_ttl_ms_of(c),
                                          unix_now_ms(), now_ms_);
  if (fresh.entry) fresh.entry->stale_window_ms = options_.cache_serve_stale_ms;
  if (fresh.storable) {
    c->cache_refreshed = cache_of(c)->insert(fresh.entry.share(), c->cache_epoch);
  } else {
    cache_of(c)->invalidate(c->cache_key, c->cache_hash);  // the 304 forbids reusing it
  }
  stats_.cache_revalidated.add();
  write_hit(c, fresh.entry ? std::move(fresh.entry) : std::move(c->revalidate));
  return true;
}

void Worker::park_cache_waiter(ClientConn* c) {
  c->ex.begin_wait(ClientWait::cache);
  cache_wait_timers_.arm(&c->timer, now_ms_);
  cache_waiters_.push_back(c);
}

void Worker::unpark_cache_waiter(ClientConn* c) {
  ClientTimer timer = c->ex.end_wait();
  auto it = std::find(cache_waiters_.begin(), cache_waiters_.end(), c);
  if (it != cache_waiters_.end()) {
    *it = cache_waiters_.back();
    cache_waiters_.pop_back();
  }
  arm_client_timer(c, timer);
}

void Worker::wake_cache_waiters() {
  // Every waiter looks again: the entry it waited for is there (a hit), or the owner gave up
  // (it claims the key itself, or goes upstream unclaimed for a key marked pass).
  std::vector<ClientConn*> waiters;
  waiters.swap(cache_waiters_);
  for (ClientConn* c : waiters) {
    ClientTimer timer = c->ex.end_wait();
    if (c->ex.state() != ClientState::exchanging) continue;
    arm_client_timer(c, timer);
    if (!try_cache(c)) start_attempt(c, nullptr);
  }
}

void Worker::on_cache_wait_timer(ClientConn* c) {
  // (From on_client_timer: the machine ended the wait, ClientTimeout::fetch_alone.) The
  // owner is slow: stop waiting and fetch for ourselves, without a claim.
  unpark_cache_waiter(c);
  c->cache_owner = false;
  stats_.cache_misses.add();
  c->service->slot->cache_misses.add();
  c->cache_result = CacheResult::miss;
  start_attempt(c, nullptr);
}

void Worker::start_fill(ClientConn* c, UpstreamConn* u) {
  const http::ResponseHead& head = u->parser->head();
  to_cache_fields(head.fields, cache_response_fields_);
  cache::StoreDecision decision =
      cache::classify_response(head.status, cache_response_fields_, c->cache_policy.has_authorization,
                               cache_ttl_ms_of(c), unix_now_ms());
  // A 204 announcing a body is an invalid exchange (RFC 9110 8.6): whatever follows it is
  // not part of this response, and the response itself is not trusted.
  bool body_where_none_may_be = head.status == 204 && head.has_content_length && head.content_length > 0;
  if (!decision.store || body_where_none_may_be ||
      (head.framing == http::BodyFraming::content_length && head.content_length > options_.cache_object_bytes_max)) {
    stats_.cache_not_stored.add();
    return;
  }
  const cache::RequestInfo& info = cache_request_info(c);
  c->fill = std::make_unique<cache::EntryBuilder>(c->cache_key, c->cache_hash, info, head.status,
                                                  cache_response_fields_, decision,
                                                  options_.cache_object_bytes_max);
  c->fill->entry().stale_window_ms = options_.cache_serve_stale_ms;
}

http::ParseResult Worker::parse_body_filling(ClientConn* c, UpstreamConn* u, const char* data, size_t len) {
  // The decoded body goes to the entry and to the client; re-chunking for the client is done
  // here because the entry needs the bytes without framing.
  fill_scratch_.clear();
  http::ParseResult r = u->parser->parse_body(data, len, fill_scratch_, false);
  if (!fill_scratch_.empty()) {
    if (!c->fill->abandoned() && !c->fill->append_body(fill_scratch_.data(), fill_scratch_.size())) {
      stats_.cache_not_stored.add();
    }
    base::ByteBuffer& out = c->out.pending();
    if (c->framing.rechunk) {
      http::wire::chunk(out, fill_scratch_.data(), fill_scratch_.size());
    } else {
      out.append(fill_scratch_.view());
    }
  }
  if (r.status == http::ParseStatus::message_done && c->framing.rechunk) http::wire::last_chunk(c->out.pending());
  return r;
}

bool Worker::end_cache_claim(ClientConn* c, bool pass_if_unstored) {
  bool stored = c->cache_refreshed;
  c->revalidate.reset();
  c->cache_refreshed = false;
  if (c->fill) {
    if (c->ex.response_complete() && !c->fill->abandoned()) {
      cache::EntryRef entry = c->fill->finish(now_ms_);
      if (entry) {
        stored = cache_of(c)->insert(std::move(entry), c->cache_epoch);
      }
    }
    c->fill.reset();
  }
  if (!c->cache_owner) return stored;
  c->cache_owner = false;
  wake_reactors(cache_of(c)->release(c->cache_key, c->cache_hash, stored || !pass_if_unstored, now_ms_,
                                     options_.cache_pass_ms));
  return stored;
}

void Worker::wake_reactors(const cache::ReactorSet& reactors) {
  reactors.for_each([this](unsigned r) {
    if (static_cast<int>(r) == index_) {
      local_wake_pending_ = true;
    } else if (r < wake_fds_->size()) {
      uint64_t one = 1;
      (void)!::write((*wake_fds_)[r], &one, sizeof one);
    }
  });
}

bool Worker::serve_stale(ClientConn* c, bool disconnected) {
  // RFC 9111 4.2.4: with no usable answer from the origin, a stale entry answers when its
  // response allows it: no target answered (within --cache-serve-stale), or one answered
  // 5xx (within the response's stale-if-error, or --cache-serve-stale when the operator
  // opted in with --cache-stale-on-5xx). Its Age tells the client how old it is.
  if (c->background) {
    // A refresh that got no usable answer: the stale entry stays (and keeps answering).
    end_background_refresh(c, false);
    return true;
  }
  bool window = disconnected || options_.cache_stale_on_5xx;
  if (!c->revalidate || c->ex.response_started() || !cache::may_serve_stale(*c->revalidate, now_ms_, window)) {
    return false;
  }
  if (c->upstream) {
    UpstreamConn* u = c->upstream;
    detach(c);
    close_upstream(u);
  }
  c->fill.reset();
  stats_.cache_stale_served.add();
  cache_request_info(c);  // write_hit reads this request's fields (the scratch served others since)
  serve_hit(c, std::move(c->revalidate));
  return true;
}

void Worker::invalidate_after_unsafe(ClientConn* c, const http::ResponseHead& response) {
  // RFC 9111 4.4: the request changed what the target (and the same-origin URIs the response
  // names) would answer; stored answers for them are now suspect.
  const cache::RequestInfo& info = cache_request_info(c);
  to_cache_fields(response.fields, cache_response_fields_);
  stats_.cache_invalidated.add(cache_of(c)->invalidate_after_unsafe(info, cache_response_fields_));
}

void Worker::arm_wake_read() {
  io_uring_sqe* sqe = ring_->get_sqe();
  io_uring_prep_read(sqe, (*wake_fds_)[index_], &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, io::pack_user_data(this, io::OpTag::wake));
}

}  // namespace ringmaster::proxy
