// The client side of a worker: receive, parse, validate, answer locally or hand the request
// to an upstream connection, and send responses back in order. Where the exchange stands and
// which deadline runs is ClientExchange's (client_exchange.h): the code here maps completions
// to its events and its answers to submissions and timer lists (ARCHITECTURE.md §3).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"
#include "worker.h"

namespace ringmaster::proxy {

void Worker::arm_client_recv(ClientConn* c) {
  io_uring_sqe* sqe = ring_->get_sqe();
  io_uring_prep_recv_multishot(sqe, c->fd, nullptr, 0, 0);
  ring_->use_registered(sqe, c->fd);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_->group_id();
  io_uring_sqe_set_data64(sqe, io::pack_user_data(c, io::OpTag::client_recv));
  c->recv_armed = true;
  ++c->in_flight;
}

void Worker::update_client_recv(ClientConn* c) {
  if (!c->ex.receives() || c->starved || c->recv_cancel_pending) return;
  // Too much unparsed input (our output is backed up): the input is held, and resumes once
  // parsing took some (ClientExchange::on_input_held says what that means for deadlines).
  bool held_full = c->held.size() >= kClientHeldMax;
  if (held_full != c->ex.input_held()) [[unlikely]] {
    arm_client_timer(c, held_full ? c->ex.on_input_held() : c->ex.on_input_resumed());
  }
  if (!held_full && !c->recv_armed) {
    arm_client_recv(c);
  } else if (held_full && c->recv_armed) {
    // Stop the multishot receive; the kernel keeps the rest and TCP pushes back on the client.
    cancel(io::pack_user_data(c, io::OpTag::client_recv));
    c->recv_cancel_pending = true;
  }
}

void Worker::on_client_recv(ClientConn* c, io_uring_cqe* cqe) {
  bool more = cqe->flags & IORING_CQE_F_MORE;
  if (!more) {
    c->recv_armed = false;
    c->recv_cancel_pending = false;
    --c->in_flight;
  }
  int res = cqe->res;
  bool has_buffer = cqe->flags & IORING_CQE_F_BUFFER;
  uint16_t buffer_id = has_buffer ? static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : 0;
  // With incremental buffers the bytes start where the previous receive into this buffer
  // (of any client) ended.
  uint32_t offset = has_buffer ? buffers_->received(buffer_id, res > 0 ? static_cast<uint32_t>(res) : 0, cqe->flags) : 0;
  ClientState state = c->ex.state();
  bool keep = has_buffer && res > 0 && !c->ex.discards_input();
  if (has_buffer && !keep) buffers_->release(buffer_id);
  if (state == ClientState::closed) return;
  if (res == -ENOBUFS) {
    c->starved = true;
    starved_.push_back(c);
    return;
  }
  if (res == -ECANCELED) {
    update_client_recv(c);
    return;
  }
  if (res <= 0) {
    client_input_ended(c, res);
    return;
  }
  if (state == ClientState::lingering) {
    if (!more) update_client_recv(c);
    return;
  }
  c->held.push_back(HeldBuffer{buffer_id, offset, static_cast<uint32_t>(res)});
  // The first byte of the next request starts the head deadline (unless our answers are
  // backed up: see pump_client_once); body bytes move the client's deadline (on_bytes).
  bool backed_up = state == ClientState::idle && c->out.backed_up(kOutSoftLimit);
  arm_client_timer(c, c->ex.on_bytes(static_cast<uint32_t>(res), backed_up));
  // A request starts with its first byte (a new connection is reading_head from accept on).
  if (c->ex.state() == ClientState::reading_head && c->request_start_us == 0) begin_request(c);
  pump_client(c);
}

void Worker::consume_held(ClientConn* c, size_t bytes) {
  HeldBuffer& h = c->held.front();
  h.offset += static_cast<uint32_t>(bytes);
  h.length -= static_cast<uint32_t>(bytes);
  if (h.length == 0) {
    buffers_->release(h.buffer_id);
    c->held.erase(c->held.begin());
  }
}

void Worker::release_held(ClientConn* c) {
  for (const HeldBuffer& h : c->held) buffers_->release(h.buffer_id);
  c->held.clear();
}

void Worker::pump_client(ClientConn* c) {
  // Handlers reached from inside the loop (a local response finishing an exchange, say) only
  // change state; the loop picks that up, so pipelined requests never recurse.
  if (c->pumping) return;
  c->pumping = true;
  while (c->ex.state() != ClientState::closed && pump_client_once(c)) {
  }
  c->pumping = false;
  if (c->ex.due_input_end(!c->held.empty())) {
    client_input_ended(c, 0);
    return;
  }
  update_client_recv(c);
}

// One step of parsing; false when no progress is possible until more I/O completes.
bool Worker::pump_client_once(ClientConn* c) {
  if (c->held.empty()) return false;
  HeldBuffer& h = c->held.front();
  const char* data = buffers_->buffer(h.buffer_id) + h.offset;
  switch (c->ex.state()) {
    case ClientState::idle:
      // The next request waits while this client's answers are backed up: a pipelining
      // client that does not read would otherwise get every cached or local answer queued
      // at once, without bound. Its held input then stops its receive and TCP pushes back;
      // on_client_send resumes the pump.
      if (!c->ex.start_next(c->out.backed_up(kOutSoftLimit))) return false;
      arm_client_timer(c, ClientTimer::header);
      begin_request(c);
      return true;
    case ClientState::reading_head: {
      if (!c->parser) {
        if (!spare_parsers_.empty()) {
          c->parser = std::move(spare_parsers_.back());
          spare_parsers_.pop_back();
        } else {
          c->parser = std::make_unique<http::RequestParser>(options_.limits);
        }
      }
      http::ParseResult r = c->parser->parse_head(data, h.length);
      consume_held(c, r.consumed);
      c->bytes_in += r.consumed;
      if (r.status == http::ParseStatus::error) {
        stats_.rejected.add();
        RM_LOG_DEBUG("rejected request from %s: %u %.*s", c->ip, c->parser->error_status(),
                     static_cast<int>(c->parser->error_reason().size()), c->parser->error_reason().data());
        c->ex.on_head_rejected();
        c->method = http::Method::get;
        local_response(c, c->parser->error_status());
        return true;
      }
      if (r.status == http::ParseStatus::head_done) on_request_head(c);
      return true;
    }
    case ClientState::exchanging: {
      if (c->ex.request_complete() || c->upstream == nullptr) return false;
      base::ByteBuffer& out = c->upstream->out.pending();
      size_t queued = c->upstream->out.size();
      // Each parse_body call may add up to 32 framing bytes to what it consumes.
      if (queued + 64 >= kOutSoftLimit) return false;
      size_t take = std::min<size_t>(h.length, kOutSoftLimit - queued - 32);
      http::ParseResult r = c->parser->parse_body(data, take, out);
      consume_held(c, r.consumed);
      c->bytes_in += r.consumed;
      kick_upstream_send(c->upstream);
      if (r.status == http::ParseStatus::error) {
        stats_.rejected.add();
        // The rest of its input is never parsed (ClientExchange::on_body_rejected).
        if (c->ex.on_body_rejected() == BodyRejected::close) {
          close_client(c);
        } else {
          local_response(c, c->parser->error_status());
        }
        return true;
      }
      if (r.status == http::ParseStatus::message_done && c->ex.on_body_complete()) finish_exchange(c);
      return r.consumed > 0 || r.status == http::ParseStatus::message_done;
    }
    case ClientState::closing:
    case ClientState::lingering:
    case ClientState::closed:
      return false;
  }
  return false;
}

void Worker::on_request_head(ClientConn* c) {
  const http::RequestHead& head = c->parser->head();
  stats_.requests.add();
  c->head_parsed = true;
  arm_client_timer(c, c->ex.on_head(head.keep_alive, c->parser->body_done()));
  c->method = head.method;
  c->version_minor = head.version_minor;
  c->tried = upstream::TriedSet{};
  if (!route_request(c)) return;  // 404, or 413 over the service's body-bytes-max: no 100
  if (head.expect_continue && !c->ex.request_complete()) {
    // We will read the body ourselves, so we invite it (as nginx does) rather than relaying
    // the backend's 100 Continue.
    http::write_continue(c->out.pending());
    kick_client_send(c);
  }
  if (try_cache(c)) return;
  start_attempt(c, nullptr);
}

void Worker::local_response(ClientConn* c, uint16_t status, uint32_t retry_after_s) {
  if (c->background) {  // a cache refresh that got no answer has nobody to tell
    end_background_refresh(c, false);
    return;
  }
  if (c->queued_on != nullptr) {
    unlink_queued(c);
    c->queued_bytes.reset();
  }
  if (status >= 502 && status <= 504 && serve_stale(c, true)) return;
  c->fill.reset();  // an error answer is never stored
  end_upstream_time(c);
  if (c->upstream) {
    UpstreamConn* u = c->upstream;
    detach(c);
    close_upstream(u);
  }
  c->status = status;
  if (status == 502) stats_.responses_502.add();
  if (status == 503) stats_.responses_503.add();
  if (status == 504) stats_.responses_504.add();
  // Unread request body bytes make the connection's next request boundary unknown: close.
  c->ex.close_unless_request_complete();
  http::write_error_response(status, !c->ex.keep_alive(), c->method == http::Method::head, c->out.pending(),
                             retry_after_s, request_id(c));
  c->ex.on_whole_response();
  kick_client_send(c);
  finish_exchange(c);
}

void Worker::arm_between_requests(ClientConn* c, ClientTimer timer) {
  // (Which deadline runs between requests: ClientExchange::between_requests.) Nothing left
  // to send: an idle keep-alive client holds no output memory (OutQueue).
  if (timer == ClientTimer::idle) c->out.release();
  arm_client_timer(c, timer);
}

void Worker::finish_exchange(ClientConn* c) {
  if (c->background) {
    end_background_refresh(c, c->status < 500);
    return;
  }
  if (c->request_start_us != 0) request_finished(c, true);
  end_cache_claim(c);
  ClientExchange::Finish f = c->ex.finish(c->out.empty());
  if (f.closing) {
    arm_client_timer(c, f.timer);
    // Pipelined requests after a closing response are never forwarded.
    release_held(c);
    if (f.begin_linger) begin_linger(c);
    return;
  }
  c->parser->reset();
  arm_between_requests(c, f.timer);
  if (c->held.empty()) {
    // Idle keep-alive connections hold no parser: thousands of them cost little memory.
    recycle_parser(std::move(c->parser));
    std::vector<HeldBuffer>().swap(c->held);
  }
  if (!c->pumping) pump_client(c);
}

void Worker::kick_client_send(ClientConn* c) {
  if (c->ex.state() == ClientState::closed) return;
  if (c->background) {
    c->out.release();  // a cache refresh: what a client would get is already in the entry
    return;
  }
  const msghdr* msg = c->out.next_send();
  if (msg == nullptr) return;
  io_uring_sqe* sqe = ring_->get_sqe();
  prep_send(sqe, c->fd, msg);
  ring_->use_registered(sqe, c->fd);
  io_uring_sqe_set_data64(sqe, io::pack_user_data(c, io::OpTag::client_send));
  ++c->in_flight;
}

void Worker::on_client_send(ClientConn* c, int res) {
  --c->in_flight;
  if (c->ex.state() == ClientState::closed) return;
  if (res < 0) {
    close_client(c);
    return;
  }
  c->out.on_sent(static_cast<size_t>(res));
  auto out_empty = [c] { return c->out.empty(); };
  arm_between_requests(c, c->ex.on_sent(out_empty));
  kick_client_send(c);
  if (c->upstream && c->upstream->x.state() == UpstreamState::busy) pump_upstream(c->upstream);
  if (c->ex.state() == ClientState::idle && !c->held.empty()) pump_client(c);  // was backed up
  switch (c->ex.after_send(out_empty)) {
    case AfterSend::carry_on:
      return;
    case AfterSend::linger:
      begin_linger(c);
      return;
    case AfterSend::close:  // idle while draining, its last answer out
      close_client(c);
      return;
  }
}

void Worker::on_client_timer(ClientConn* c) {
  // Every deadline of a client connection comes here, the cache's and the queue's too: what
  // it means is the machine's rule (ClientExchange::on_timeout): a backend holding the whole
  // request, or a body held back because the backend takes it slowly, is waited on, never
  // answered 408.
  bool head = c->ex.state() == ClientState::reading_head;
  switch (c->ex.on_timeout(c->upstream != nullptr)) {
    case ClientTimeout::answer_408:
      if (head) RM_LOG_DEBUG("header timeout from %s", c->ip);  // slowloris
      local_response(c, 408);
      return;
    case ClientTimeout::rearm:
      arm_client_timer(c, ClientTimer::client);
      return;
    case ClientTimeout::close:
      close_client(c);
      return;
    case ClientTimeout::fetch_alone:
      on_cache_wait_timer(c);
      return;
    case ClientTimeout::answer_503:
      on_queue_timer(c);
      return;
  }
}

void Worker::client_input_ended(ClientConn* c, int res) {
  // Body bytes held for a slow backend came before the EOF: decided once they are parsed
  // (pump_client).
  if (c->ex.defer_input_end(res == 0, !c->held.empty())) return;
  // A client may half-close after a complete request and wait for the answer; a closing
  // connection still sends its last one.
  if (!c->ex.on_input_ended(res == 0)) close_client(c);
}

void Worker::begin_linger(ClientConn* c) {
  release_held(c);
  if (!c->ex.begin_linger()) {
    close_client(c);
    return;
  }
  ::shutdown(c->fd, SHUT_WR);
  arm_client_timer(c, ClientTimer::linger);
  update_client_recv(c);
}

void Worker::close_client(ClientConn* c) {
  if (c->ex.state() == ClientState::closed) return;
  if (c->background) {  // cut off (a truncated answer, a drain): the stale entry stays
    end_background_refresh(c, false);
    return;
  }
  if (c->request_start_us != 0) request_finished(c, false);  // cut off mid-request
  if (c->upstream) {
    UpstreamConn* u = c->upstream;
    detach(c);
    close_upstream(u);
  }
  if (c->ex.waiting() == ClientWait::cache) unpark_cache_waiter(c);
  if (c->queued_on != nullptr) {
    unlink_queued(c);
    c->queued_bytes.reset();
  }
  c->fill.reset();  // a response cut short is never stored
  end_cache_claim(c);
  release_service(c);
  c->ex.on_closed();
  TimerList::disarm(&c->timer);
  release_held(c);
  if (c->parser) recycle_parser(std::move(c->parser));
  // shutdown() completes any outstanding receive or send at once; the descriptor itself is
  // closed when the last completion has arrived (bury_dead).
  if (c->in_flight > 0) ::shutdown(c->fd, SHUT_RDWR);
  if (c->recv_armed) cancel(io::pack_user_data(c, io::OpTag::client_recv));
  if (c->starved) starved_.erase(std::find(starved_.begin(), starved_.end(), c));
  c->starved = false;
  --clients_;
  connections_->fetch_sub(1, std::memory_order_relaxed);
  stats_.connections_open.set(clients_);
  dead_clients_.push_back(c);
}

}  // namespace ringmaster::proxy
