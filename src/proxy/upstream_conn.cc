// The upstream side of a worker: pick a target, reuse or open a connection, forward the
// request, parse the response and stream it to the client; fail over on refused or timed-out
// connects; keep healthy connections in a per-target pool.
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"
#include "ringmaster/io/socket.h"
#include "worker.h"

namespace ringmaster::proxy {
namespace {

// What the upstream machine may ask when the backend's side ended (UpstreamExchange::
// on_input_ended): the request's facts, and whether a close-delimited body ends here.
struct BackendEnd {
  UpstreamConn* u;
  RequestFacts facts() const {
    const http::RequestHead& head = u->client->parser->head();
    RequestFacts f;
    f.idempotent = head.is_idempotent();
    f.has_body = head.framing != http::BodyFraming::none;
    f.target_known = u->target != nullptr;
    return f;
  }
  // Anything else unfinished at the backend's end is a truncated response.
  bool ends_body() const {
    ClientConn* c = u->client;
    return u->parser->finish(c->out.pending(), c->framing.rechunk).status == http::ParseStatus::message_done;
  }
};

}  // namespace

void Worker::start_attempt(ClientConn* c, base::ByteBuffer* carried) {
  upstream::Balancer& balancer = c->service->balancer;  // routed before any attempt
  for (;;) {
    int index = balancer.pick(c->tried, now_ms_);
    if (index < 0) {
      local_response(c, status_without_target(balancer.size()));
      return;
    }
    upstream::TargetState* target = balancer.state(index);
    c->tried.add(target);
    balancer_.on_pick(target);
    // Every connection this reactor may hold to the target is busy (or others already wait):
    // wait for one instead of opening more (--upstream-max-conns).
    auto idle_connection = [&] { return !idle_pool(target).empty(); };
    auto can_open = [&] { return balancer.can_open(target); };
    if (place(target->slots[index_].queued > 0, idle_connection, can_open) == Placement::wait_in_queue) {
      enqueue(c, target, carried);
      return;
    }
    if (send_now(c, target, carried)) return;
  }
}

bool Worker::send_now(ClientConn* c, upstream::TargetState* target, base::ByteBuffer* carried) {
  UpstreamConn* u = take_idle(target);
  if (u != nullptr) balancer_.on_request_sent(target);
  if (u == nullptr) u = open_upstream(target, &c->service->connect_timeout);
  if (u == nullptr) return false;  // no socket: count it as that target failing
  attach(c, u);  // a reused connection's response deadline starts now
  if (c->upstream_start_us == 0) c->upstream_start_us = base::now_us();
  if (log_queue_ != nullptr) c->target_name = target->name;
  if (carried != nullptr) {
    // Failover after a failed connect: nothing was sent, so the queued head and body
    // bytes move to the new connection unchanged.
    std::swap(u->out.pending(), *carried);
  } else {
    write_request_head(c, u);
  }
  if (u->x.state() == UpstreamState::busy) {
    arm_upstream_recv(u);  // a reused connection was only watched while idle
    kick_upstream_send(u);
  }
  return true;
}

// ---- The wait queue (--upstream-max-conns; HAProxy's per-server maxconn and queue) ----

uint32_t Worker::retry_after_s(const ClientConn* c) {
  // A client told to come back after the longest wait we would have made it sit through.
  return std::max<uint32_t>(1, (c->service->limits.upstream_queue_timeout_ms + 999) / 1000);
}

void Worker::enqueue(ClientConn* c, upstream::TargetState* target, base::ByteBuffer* carried) {
  upstream::ReactorSlot& slot = target->slots[index_];
  if (slot.queued >= c->service->queue_max) {
    stats_.upstream_queue_full.add();
    local_response(c, 503, retry_after_s(c));
    return;
  }
  if (carried != nullptr && !carried->empty()) {
    c->queued_bytes = std::make_unique<base::ByteBuffer>();
    std::swap(*c->queued_bytes, *carried);
  }
  WaitQueue& q = wait_queues_[target];
  c->ex.begin_wait(ClientWait::queue);
  c->queued_on = target;
  c->queue_prev = q.tail;
  c->queue_next = nullptr;
  if (q.tail != nullptr) {
    q.tail->queue_next = c;
  } else {
    q.head = c;
  }
  q.tail = c;
  ++slot.queued;
  ++queued_total_;
  c->queued_at_us = base::now_us();
  // While it waits the client owes nothing: the queue's deadline replaces the client's.
  c->service->queue_timers->arm(&c->timer, now_ms_);
  stats_.upstream_queued.add();
  stats_.upstream_queue_length.set(queued_total_);
}

void Worker::unlink_queued(ClientConn* c) {
  upstream::TargetState* target = c->queued_on;
  if (target == nullptr) return;
  WaitQueue& q = wait_queues_[target];
  if (c->queue_prev != nullptr) {
    c->queue_prev->queue_next = c->queue_next;
  } else {
    q.head = c->queue_next;
  }
  if (c->queue_next != nullptr) {
    c->queue_next->queue_prev = c->queue_prev;
  } else {
    q.tail = c->queue_prev;
  }
  c->queue_prev = c->queue_next = nullptr;
  c->queued_on = nullptr;
  c->ex.end_wait();  // (the caller arms what follows: a send, or a local answer)
  --target->slots[index_].queued;
  --queued_total_;
  TimerList::disarm(&c->timer);
  stats_.upstream_queue_wait.observe_us(static_cast<uint64_t>(std::max<int64_t>(0, base::now_us() - c->queued_at_us)));
  stats_.upstream_queue_length.set(queued_total_);
}

void Worker::serve_queues() {
  // Once per loop turn, after the completions: connections released or closed during the
  // turn go to the oldest waiters. The targets are listed first because a failover below
  // may queue a request on another target (inserting into the map).
  queue_scratch_.clear();
  for (auto& [target, q] : wait_queues_) {
    if (q.head != nullptr) queue_scratch_.push_back(target);
  }
  for (upstream::TargetState* target : queue_scratch_) {
    for (;;) {
      auto it = wait_queues_.find(target);
      if (it == wait_queues_.end() || it->second.head == nullptr) break;
      ClientConn* c = it->second.head;
      // The oldest waiter's service limits the connections it may open.
      if (idle_pool(target).empty() && !c->service->balancer.can_open(target)) break;
      unlink_queued(c);
      std::unique_ptr<base::ByteBuffer> bytes = std::move(c->queued_bytes);
      client_timers_.arm(&c->timer, now_ms_);
      if (!send_now(c, target, bytes.get())) {
        balancer_.on_connect_failure(target, now_ms_);
        start_attempt(c, bytes.get());
      }
      if (c->ex.state() != ClientState::closed) pump_client(c);  // a body waiting to be forwarded
    }
  }
}

void Worker::on_queue_timer(ClientConn* c) {
  RM_LOG_DEBUG("%s waited %u ms for a connection to %s", c->ip, c->service->limits.upstream_queue_timeout_ms,
               c->queued_on->name.c_str());
  unlink_queued(c);
  c->queued_bytes.reset();
  stats_.upstream_queue_timeouts.add();
  local_response(c, 503, retry_after_s(c));
}

void Worker::write_request_head(ClientConn* c, UpstreamConn* u) {
  http::ForwardContext ctx;
  ctx.client_ip = c->ip;
  ctx.request_id = request_id(c);
  // With the cache on, ringmaster is a surrogate (W3C Edge Architecture): it says so, and
  // answers to Surrogate-Control directives targeted at its token.
  ctx.surrogate_capability = cache_of(c) != nullptr;
  const http::RequestHead& head = c->parser->head();
  bool missing_host = head.host.empty() && u->target != nullptr;
  if (!missing_host && !(c->revalidate && cache::revalidatable(*c->revalidate))) {
    http::serialize_request_head(head, ctx, u->out.pending());
    return;
  }
  // Rare enough that a copy of the head is fine.
  http::RequestHead changed = head;
  // An HTTP/1.0 client may omit Host; HTTP/1.1 backends require one: name the target (as
  // nginx's default proxy_set_header Host does).
  if (missing_host) changed.host = u->target->name;
  // Revalidating a stale entry: ask whether it changed (RFC 9111 4.3.1).
  if (c->revalidate && cache::revalidatable(*c->revalidate)) {
    if (!c->revalidate->etag.empty()) changed.fields.push_back(http::Field{"If-None-Match", c->revalidate->etag});
    if (!c->revalidate->last_modified.empty()) {
      changed.fields.push_back(http::Field{"If-Modified-Since", c->revalidate->last_modified});
    }
    stats_.cache_revalidations.add();
  }
  http::serialize_request_head(changed, ctx, u->out.pending());
}

UpstreamConn* Worker::take_idle(upstream::TargetState* target) {
  auto& pool = idle_pool(target);
  if (pool.empty()) return nullptr;
  UpstreamConn* u = pool.back().conn;
  pool.pop_back();
  --target->slots[index_].conns_idle;
  stats_.upstream_reused.add();
  return u;
}

UpstreamConn* Worker::open_upstream(upstream::TargetState* target, __kernel_timespec* connect_timeout) {
  int fd = io::connect_socket(target->address);
  if (fd < 0) {
    RM_LOG_WARN("socket for %s: %s", target->name.c_str(), std::strerror(-fd));
    balancer_.on_connect_failure(target, now_ms_);
    return nullptr;
  }
  stats_.upstream_connects.add();
  ++upstreams_;
  ++target->slots[index_].conns_open;
  stats_.upstream_connections_open.set(upstreams_);
  UpstreamConn* u = upstream_slab_.make();
  u->worker = this;
  u->fd = fd;
  u->target = target;
  u->out.set_pool(&out_pool_);
  u->live_index = live_upstreams_.size();
  live_upstreams_.push_back(u);
  ring_->install_file(&u->fd);
  u->x.on_open();
  // Connect with a linked timeout: a target that does not answer SYNs fails over after
  // the service's connect-timeout-ms instead of the kernel's minutes. (The kernel copies the
  // timespec at submission, before any ServiceLocal can go: see adopt_routes.)
  io_uring_sqe* sqe = ring_->get_sqe();
  io_uring_prep_connect(sqe, fd, target->address.get(), target->address.length);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data64(sqe, io::pack_user_data(u, io::OpTag::upstream_connect));
  io_uring_sqe* timeout = ring_->get_sqe();
  io_uring_prep_link_timeout(timeout, connect_timeout, 0);
  io_uring_sqe_set_data64(timeout, io::pack_user_data(nullptr, io::OpTag::ignore));
  ++u->in_flight;
  return u;
}

void Worker::attach(ClientConn* c, UpstreamConn* u) {
  c->upstream = u;
  u->client = c;
  if (!u->parser) {
    if (!spare_response_parsers_.empty()) {
      u->parser = std::move(spare_response_parsers_.back());
      spare_response_parsers_.pop_back();
    } else {
      u->parser = std::make_unique<http::ResponseParser>();
    }
  }
  u->parser->reset(c->method);
  set_upstream_timer(u, u->x.on_attach());
}

void Worker::set_upstream_timer(UpstreamConn* u, UpstreamTimer timer) {
  // The connect's deadline is linked to it (open_upstream); the idle one is the pool's
  // expiry (release_upstream).
  if (timer == UpstreamTimer::response) {
    upstream_timers(u->client).arm(&u->timer, now_ms_);
  } else if (timer == UpstreamTimer::none) {
    TimerList::disarm(&u->timer);
  }
}

void Worker::detach(ClientConn* c) {
  if (c->upstream == nullptr) return;
  c->upstream->client = nullptr;
  c->upstream->x.on_detach();
  TimerList::disarm(&c->upstream->timer);
  c->upstream = nullptr;
}

void Worker::on_upstream_connect(UpstreamConn* u, int res) {
  --u->in_flight;
  if (u->x.state() == UpstreamState::closed) return;
  UpstreamStep step = u->x.on_connect(res == 0);
  if (step.action == UpstreamAction::go) {
    if (u->target) {
      balancer_.on_connect_success(u->target);
      if (u->client) balancer_.on_request_sent(u->target);
    }
    arm_upstream_recv(u);
    kick_upstream_send(u);
    set_upstream_timer(u, step.timer);
    return;
  }
  stats_.upstream_connect_failures.add();
  RM_LOG_DEBUG("connect to %s failed: %s", target_name(u), res == -ECANCELED ? "timeout" : std::strerror(-res));
  carry_out(u, step);
}

void Worker::arm_upstream_recv(UpstreamConn* u) {
  // With a poll posted (it was idle), the completion arms the receive (on_upstream_recv).
  if (u->recv_armed || u->x.state() == UpstreamState::closed || u->x.peer_ended()) return;
  if (u->client == nullptr) {
    // Idle: only notice the backend closing (or sending what nobody asked for), without a
    // buffer; 10,000 pooled connections then cost no read memory.
    io_uring_sqe* sqe = ring_->get_sqe();
    io_uring_prep_poll_add(sqe, u->fd, POLLIN | POLLRDHUP);
    io_uring_sqe_set_data64(sqe, io::pack_user_data(u, io::OpTag::upstream_recv));
    u->recv_armed = true;
    u->recv_is_poll = true;
    ++u->in_flight;
    return;
  }
  if (u->read_buffer == nullptr) u->read_buffer = read_buffers_.take();
  if (u->read_begin > 0) {
    std::memmove(u->read_buffer, u->read_buffer + u->read_begin, u->unparsed());
    u->read_end -= u->read_begin;
    u->read_begin = 0;
  }
  if (u->read_end >= kUpstreamReadBytes) return;  // full: the client is slow, TCP pushes back
  io_uring_sqe* sqe = ring_->get_sqe();
  io_uring_prep_recv(sqe, u->fd, u->read_buffer + u->read_end, kUpstreamReadBytes - u->read_end, 0);
  ring_->use_registered(sqe, u->fd);
  // The answer to what we just sent is not there yet: wait for readiness instead of trying
  // a receive that fails and then arms the poll anyway (seen in the proxied flame graph).
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  io_uring_sqe_set_data64(sqe, io::pack_user_data(u, io::OpTag::upstream_recv));
  u->recv_armed = true;
  ++u->in_flight;
}

void Worker::kick_upstream_send(UpstreamConn* u) {
  if (u->x.state() != UpstreamState::busy) return;
  const msghdr* msg = u->out.next_send();
  if (msg == nullptr) return;
  io_uring_sqe* sqe = ring_->get_sqe();
  prep_send(sqe, u->fd, msg);
  ring_->use_registered(sqe, u->fd);
  io_uring_sqe_set_data64(sqe, io::pack_user_data(u, io::OpTag::upstream_send));
  ++u->in_flight;
}

void Worker::on_upstream_send(UpstreamConn* u, int res) {
  --u->in_flight;
  if (u->x.state() == UpstreamState::closed) return;
  if (res < 0) {
    // The backend stopped reading (it may already have answered): an error end.
    carry_out(u, u->x.on_input_ended(false, false, BackendEnd{u}));
    return;
  }
  u->out.on_sent(static_cast<size_t>(res));
  kick_upstream_send(u);
  ClientConn* c = u->client;
  if (c) {
    set_upstream_timer(u, u->x.on_sent());
    pump_client(c);  // resume a body paused on backpressure
  }
}

void Worker::release_read_buffer(UpstreamConn* u) {
  // Never while a receive may still write into it, nor with unparsed bytes in it (the
  // graveyard gives it back in any case).
  if (u->read_buffer == nullptr || (u->recv_armed && !u->recv_is_poll) || u->unparsed() != 0) return;
  u->read_begin = u->read_end = 0;
  read_buffers_.give(u->read_buffer);
  u->read_buffer = nullptr;
  if (read_buffers_.warm_free() > read_buffers_warm()) freed_bytes_ += kUpstreamReadBytes;
}

void Worker::on_upstream_recv(UpstreamConn* u, int res) {
  --u->in_flight;
  u->recv_armed = false;
  bool was_poll = u->recv_is_poll;
  u->recv_is_poll = false;
  if (u->x.state() == UpstreamState::closed) return;
  if (was_poll && u->client != nullptr) {
    arm_upstream_recv(u);  // reused meanwhile: what arrived is its answer
    return;
  }
  if (!u->x.attached()) {
    // Readable while idle: the backend closed it, or sent what nothing asked for; never
    // reuse it.
    carry_out(u, u->x.on_idle_input());
    return;
  }
  if (res <= 0) {
    // With response bytes still held for a slow client (pump_upstream stopped at
    // kOutSoftLimit), what we hold came before the end, so the end waits for it (the
    // machine holds); the client's send completions pump on, and the client's own send
    // deadline governs, not the upstream timeout.
    bool held = u->unparsed() != 0;
    carry_out(u, u->x.on_input_ended(res == 0, held, BackendEnd{u}));
    return;
  }
  u->read_end += static_cast<uint32_t>(res);
  set_upstream_timer(u, u->x.on_bytes());
  pump_upstream(u);
}

void Worker::pump_upstream(UpstreamConn* u) {
  ClientConn* c = u->client;
  const char* buf = u->read_buffer;
  size_t off = u->read_begin;
  while (off < u->read_end && !c->ex.response_complete()) {
    const char* data = buf + off;
    size_t len = u->read_end - off;
    if (!c->ex.response_started()) {
      // 103 Early Hints go ahead to an HTTP/1.1 client (RFC 9110 15.2: never to HTTP/1.0).
      u->parser->forward_early_hints(c->version_minor == 1 ? &c->out.pending() : nullptr);
      http::ParseResult r = u->parser->parse_head(data, len);
      u->parser->forward_early_hints(nullptr);
      off += r.consumed;
      if (r.status == http::ParseStatus::error) {
        RM_LOG_WARN("bad response head from %s: %.*s", target_name(u),
                    static_cast<int>(u->parser->error_reason().size()), u->parser->error_reason().data());
        carry_out(u, u->x.on_bad_response());
        return;
      }
      if (r.status != http::ParseStatus::head_done) break;
      const http::ResponseHead& head = u->parser->head();
      if (answer_revalidated(c, head)) continue;  // a whole answer, from the refreshed entry
      if (head.status >= 500 && head.status <= 504 && serve_stale(c, false)) return;
      c->status = head.status;
      c->framing = http::choose_response_framing(head, c->method, c->version_minor, c->ex.keep_alive() && !draining_);
      http::serialize_response_head(head, c->framing, c->version_minor, "ringmaster", c->out.pending(),
                                    request_id(c));
      tell_client(c, u->x.on_response_head());
      if (c->cache_owner) start_fill(c, u);
      if (cache_of(c) != nullptr && head.status >= 200 && head.status < 400 &&
          cache::invalidates_on_success(c->parser->head().method_text)) {
        invalidate_after_unsafe(c, head);
      }
      if (u->parser->body_done()) tell_client(c, u->x.on_response_end());
      continue;
    }
    size_t queued = c->out.size();
    if (queued + 64 >= kOutSoftLimit) break;  // the client is slow: leave the rest in our buffer
    size_t take = std::min(len, kOutSoftLimit - queued - 32);
    http::ParseResult r = c->fill ? parse_body_filling(c, u, data, take)
                                  : u->parser->parse_body(data, take, c->out.pending(), c->framing.rechunk);
    off += r.consumed;
    if (r.status == http::ParseStatus::error) {
      carry_out(u, u->x.on_bad_response());
      return;
    }
    if (r.status == http::ParseStatus::message_done) tell_client(c, u->x.on_response_end());
    if (r.consumed == 0) break;
  }
  u->read_begin = static_cast<uint32_t>(off);
  kick_client_send(c);
  if (c->ex.response_complete()) {
    on_response_done(c);
    return;
  }
  if (u->x.peer_ended()) {
    // Ended once every held byte is parsed, or when the parser stopped short of the client's
    // bound (it will take nothing more from what is held).
    if (u->unparsed() == 0 || c->out.size() + 64 < kOutSoftLimit) {
      carry_out(u, u->x.on_held_parsed(BackendEnd{u}));
    }
    return;
  }
  arm_upstream_recv(u);
}

void Worker::on_response_done(ClientConn* c) {
  end_upstream_time(c);
  UpstreamConn* u = c->upstream;
  if (u != nullptr) {
    // Reuse only a connection whose request and response both ended cleanly and whose
    // target's pool has room (the machine's rule).
    uint32_t cap = idle_cap(idle_max_, c->service);
    EndedExchange ended;
    ended.backend_keep_alive = u->parser->head().keep_alive;
    ended.request_complete = c->ex.request_complete();
    ended.request_bytes_left = !u->out.empty();
    ended.response_bytes_left = u->unparsed() != 0;
    ended.draining = draining_;
    ended.idle_cap = cap;
    auto pool_has_room = [&] { return u->target != nullptr && idle_pool(u->target).size() < cap; };
    UpstreamStep step = u->x.on_response_done(ended, pool_has_room);
    // Bytes past the end of the response (a body on a 204, a second response) mean the
    // backend and we disagree on framing: what we took for the whole response may not be.
    if (c->fill && u->unparsed() != 0) {
      c->fill.reset();
      stats_.cache_not_stored.add();
    }
    detach(c);
    if (step.action == UpstreamAction::pool) {
      release_upstream(u, c->service->limits.upstream_idle_timeout_ms);
    } else {
      close_upstream(u);
    }
  }
  // A backend may answer before the whole request body arrived; the rest cannot be
  // forwarded anywhere, so the client connection closes after this response.
  c->ex.close_unless_request_complete();
  finish_exchange(c);
}

void Worker::carry_out(UpstreamConn* u, const UpstreamStep& step) {
  ClientConn* c = u->client;
  set_upstream_timer(u, step.timer);
  switch (step.action) {
    case UpstreamAction::go:
    case UpstreamAction::hold:
      return;
    case UpstreamAction::pool:  // (on_response_done carries it out)
    case UpstreamAction::close:
      if (u->x.state() == UpstreamState::idle) remove_from_idle_pool(u);
      close_upstream(u);
      return;
    case UpstreamAction::failover: {
      // Refused, unreachable, or cancelled by the linked timeout: eject the target for a
      // while and move the request, untouched, to the next least-used target.
      if (u->target) balancer_.on_connect_failure(u->target, now_ms_);
      base::ByteBuffer carried;
      std::swap(carried, u->out.pending());
      if (c) detach(c);
      close_upstream(u);
      if (c) start_attempt(c, &carried);
      if (c && c->ex.state() != ClientState::closed) pump_client(c);
      return;
    }
    case UpstreamAction::resend_same_target:
    case UpstreamAction::resend_next_target:
      resend(c, u, step.action == UpstreamAction::resend_same_target);
      return;
    case UpstreamAction::complete:
      tell_client(c, step.client);
      kick_client_send(c);
      detach(c);
      close_upstream(u);
      on_response_done(c);
      return;
    case UpstreamAction::fail:
      end_upstream_time(c);
      c->fill.reset();
      tell_client(c, step.client, step.status);
      return;
  }
}

void Worker::tell_client(ClientConn* c, ClientEvent event, uint16_t status) {
  switch (event) {
    case ClientEvent::none:
      return;
    case ClientEvent::response_head:
      c->ex.on_response_head(c->framing.close);
      return;
    case ClientEvent::response_complete:
      c->ex.on_response_complete();
      return;
    case ClientEvent::answer_error:
      local_response(c, status);
      return;
    case ClientEvent::cut_off:
      // Part of the response already went out: closing is the only honest signal left.
      stats_.truncated.add();
      close_client(c);
      return;
  }
}

void Worker::resend(ClientConn* c, UpstreamConn* broken, bool same_target) {
  // The connection broke before any answer and the request may be sent again (the
  // machine's rule, after_break): the same target on a fresh connection (or queued for one
  // when it may open none: its slot went to an older waiter meanwhile), else the next.
  upstream::TargetState* target = broken->target;
  detach(c);
  close_upstream(broken);
  stats_.upstream_retries.add();
  if (same_target) {
    if (!c->service->balancer.can_open(target)) {
      enqueue(c, target, nullptr);
      return;
    }
    if (UpstreamConn* u = open_upstream(target, &c->service->connect_timeout)) {
      attach(c, u);
      write_request_head(c, u);
      return;
    }
    // no socket: as a failed connect
  }
  if (target != nullptr) balancer_.on_connect_failure(target, now_ms_);
  start_attempt(c, nullptr);
}

void Worker::on_upstream_timer(UpstreamConn* u) {
  if (u->client != nullptr) RM_LOG_DEBUG("upstream %s timed out", target_name(u));
  carry_out(u, u->x.on_timeout());
}

void Worker::release_upstream(UpstreamConn* u, uint32_t idle_timeout_ms) {
  u->out.release();
  release_read_buffer(u);
  recycle_response_parser(u);
  int64_t expires_ms = now_ms_ + idle_timeout_ms;
  idle_pool(u->target).push_back(IdleConn{u, expires_ms});
  idle_sweep_at_ms_ = std::min(idle_sweep_at_ms_, expires_ms);
  ++u->target->slots[index_].conns_idle;
  // An idle connection keeps a receive posted: it notices the backend closing it.
  arm_upstream_recv(u);
}

void Worker::remove_from_idle_pool(UpstreamConn* u) {
  if (u->target == nullptr) return;
  auto& pool = idle_pool(u->target);
  auto it = std::find_if(pool.begin(), pool.end(), [u](const IdleConn& e) { return e.conn == u; });
  if (it != pool.end()) pool.erase(it);
}

void Worker::forget_target(UpstreamConn* u) {
  // The connection no longer counts against its target's limit (it closes, or the target
  // left the snapshot and the connection only finishes its exchange).
  if (u->target == nullptr) return;
  upstream::ReactorSlot& slot = u->target->slots[index_];
  --slot.conns_open;
  if (u->x.state() == UpstreamState::idle) --slot.conns_idle;
  u->target = nullptr;
}

void Worker::close_upstream(UpstreamConn* u) {
  if (u->x.state() == UpstreamState::closed) return;
  RM_CHECK(u->client == nullptr);
  forget_target(u);
  u->x.on_closed();
  TimerList::disarm(&u->timer);
  // Swap-remove from the live list; from here on the connection only waits to be buried.
  UpstreamConn* last = live_upstreams_.back();
  live_upstreams_[u->live_index] = last;
  last->live_index = u->live_index;
  live_upstreams_.pop_back();
  --upstreams_;
  stats_.upstream_connections_open.set(upstreams_);
  if (u->in_flight > 0) {
    ::shutdown(u->fd, SHUT_RDWR);
    // shutdown() does not end a pending connect; cancelling it fires its linked timeout too.
    cancel(io::pack_user_data(u, io::OpTag::upstream_connect));
  }
  dead_upstreams_.push_back(u);
}

}  // namespace ringmaster::proxy
