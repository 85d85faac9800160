// The client side of a worker: receive, parse, validate, answer locally or hand the request
// to an upstream connection, and send responses back in order.
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
  if (c->state == ClientState::closed || c->peer_eof || c->starved || c->recv_cancel_pending) return;
  bool want = c->held.size() < kClientHeldMax;
  if (want && !c->recv_armed) {
    arm_client_recv(c);
  } else if (!want && c->recv_armed) {
    // Too much unparsed input: stop the multishot receive; the kernel keeps the rest and TCP
    // pushes back on the client.
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
  bool keep = has_buffer && res > 0 && c->state != ClientState::closed && c->state != ClientState::lingering;
  if (has_buffer && !keep) buffers_->release(buffer_id);
  if (c->state == ClientState::closed) return;
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
  if (c->state == ClientState::lingering) {
    if (!more) update_client_recv(c);
    return;
  }
  c->held.push_back(HeldBuffer{buffer_id, offset, static_cast<uint32_t>(res)});
  if (c->state == ClientState::idle && !c->out.backed_up(kOutSoftLimit)) {
    // First byte of the next request: the whole head must now arrive within the deadline.
    // (While this client's answers are backed up the request waits, idle; see
    // pump_client_once.)
    c->state = ClientState::reading_head;
    header_timers_.arm(&c->timer, now_ms_);
  } else if (c->state == ClientState::exchanging && !c->cache_waiting && c->queued_on == nullptr) {
    // A body must make real progress to keep the connection: the inactivity deadline moves
    // only once kClientProgressBytes arrived since it was last set, so a client dribbling
    // one byte at a time is cut after --client-timeout-ms like a silent one.
    c->progress_bytes += static_cast<uint32_t>(res);
    if (c->progress_bytes >= kClientProgressBytes) {
      c->progress_bytes = 0;
      client_timers_.arm(&c->timer, now_ms_);
    }
  }
  // A request starts with its first byte (a new connection is reading_head from accept on).
  if (c->state == ClientState::reading_head && c->request_start_us == 0) begin_request(c);
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
  while (c->state != ClientState::closed && pump_client_once(c)) {
  }
  c->pumping = false;
  update_client_recv(c);
}

// One step of parsing; false when no progress is possible until more I/O completes.
bool Worker::pump_client_once(ClientConn* c) {
  if (c->held.empty()) return false;
  HeldBuffer& h = c->held.front();
  const char* data = buffers_->buffer(h.buffer_id) + h.offset;
  switch (c->state) {
    case ClientState::idle:
      // The next request waits while this client's answers are backed up: a pipelining
      // client that does not read would otherwise get every cached or local answer queued
      // at once, without bound. Its held input then stops its receive and TCP pushes back;
      // on_client_send resumes the pump.
      if (c->out.backed_up(kOutSoftLimit)) return false;
      c->state = ClientState::reading_head;
      header_timers_.arm(&c->timer, now_ms_);
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
        c->keep_alive = false;
        c->request_done = false;
        c->method = http::Method::get;
        c->state = ClientState::exchanging;
        local_response(c, c->parser->error_status());
        return true;
      }
      if (r.status == http::ParseStatus::head_done) on_request_head(c);
      return true;
    }
    case ClientState::exchanging: {
      if (c->request_done || c->upstream == nullptr) return false;
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
        c->keep_alive = false;
        if (c->response_started) {
          close_client(c);
        } else {
          local_response(c, c->parser->error_status());
        }
        return true;
      }
      if (r.status == http::ParseStatus::message_done) {
        c->request_done = true;
        if (c->response_done) finish_exchange(c);
      }
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
  c->state = ClientState::exchanging;
  client_timers_.arm(&c->timer, now_ms_);
  c->progress_bytes = 0;
  c->method = head.method;
  c->version_minor = head.version_minor;
  c->keep_alive = head.keep_alive && !draining_;
  c->request_done = c->parser->body_done();
  c->response_started = false;
  c->response_done = false;
  c->tried = upstream::TriedSet{};
  if (!route_request(c)) return;  // 404, or 413 over the service's body-bytes-max: no 100
  if (head.expect_continue && !c->request_done) {
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
  if (!c->request_done) c->keep_alive = false;
  http::write_error_response(status, !c->keep_alive, c->method == http::Method::head, c->out.pending(),
                             retry_after_s, request_id(c));
  c->response_started = true;
  c->response_done = true;
  kick_client_send(c);
  finish_exchange(c);
}

void Worker::arm_between_requests(ClientConn* c) {
  // Answers may still be going out between requests (a cached one is queued whole the
  // moment it is found): until they are, the send-progress deadline governs, as during an
  // exchange, so a slow but steady reader is not cut and the drain lets it finish; the
  // keep-alive wait starts when the last byte is sent.
  if (c->out.empty()) {
    // Nothing left to send: an idle keep-alive client holds no output memory (OutQueue).
    c->out.release();
    idle_timers_.arm(&c->timer, now_ms_);
  } else {
    client_timers_.arm(&c->timer, now_ms_);
  }
}

void Worker::finish_exchange(ClientConn* c) {
  if (c->background) {
    end_background_refresh(c, c->status < 500);
    return;
  }
  if (c->request_start_us != 0) request_finished(c, true);
  end_cache_claim(c);
  if (draining_) c->keep_alive = false;
  if (!c->keep_alive) {
    c->state = ClientState::closing;
    client_timers_.arm(&c->timer, now_ms_);
    // Pipelined requests after a closing response are never forwarded.
    release_held(c);
    if (c->out.empty()) begin_linger(c);
    return;
  }
  c->parser->reset();
  c->state = ClientState::idle;
  arm_between_requests(c);
  if (c->held.empty()) {
    // Idle keep-alive connections hold no parser: thousands of them cost little memory.
    recycle_parser(std::move(c->parser));
    std::vector<HeldBuffer>().swap(c->held);
  }
  if (!c->pumping) pump_client(c);
}

void Worker::kick_client_send(ClientConn* c) {
  if (c->state == ClientState::closed) return;
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
  if (c->state == ClientState::closed) return;
  if (res < 0) {
    close_client(c);
    return;
  }
  c->out.on_sent(static_cast<size_t>(res));
  // (A request waiting for the cache or for an upstream connection keeps that deadline.)
  if ((c->state == ClientState::exchanging && !c->cache_waiting && c->queued_on == nullptr) ||
      c->state == ClientState::closing) {
    client_timers_.arm(&c->timer, now_ms_);
  }
  if (c->state == ClientState::idle) arm_between_requests(c);
  kick_client_send(c);
  if (c->upstream && c->upstream->state == UpstreamState::busy) pump_upstream(c->upstream);
  if (c->state == ClientState::idle && !c->held.empty()) pump_client(c);  // was backed up
  if (c->state == ClientState::closing && c->out.empty()) begin_linger(c);
}

void Worker::on_client_timer(ClientConn* c) {
  switch (c->state) {
    case ClientState::reading_head:
      // Slow or stalled head (slowloris): 408 and close.
      RM_LOG_DEBUG("header timeout from %s", c->ip);
      c->keep_alive = false;
      c->request_done = false;
      c->state = ClientState::exchanging;
      local_response(c, 408);
      return;
    case ClientState::exchanging:
      if (!c->response_started && c->request_done && c->upstream != nullptr) {
        // The client owes nothing: its whole request is in and a backend has it. Only the
        // upstream side's deadlines (connect, --upstream-timeout-ms) may end this, with the
        // backend blamed (502/504), never a 408 — even when both timeouts are equal.
        client_timers_.arm(&c->timer, now_ms_);
        return;
      }
      if (!c->response_started) {
        c->keep_alive = false;
        local_response(c, 408);
        return;
      }
      close_client(c);
      return;
    default:
      close_client(c);
  }
}

void Worker::client_input_ended(ClientConn* c, int res) {
  c->peer_eof = true;
  switch (c->state) {
    case ClientState::exchanging:
      // A client may half-close after sending a complete request; wait for the response.
      if (res == 0 && c->request_done) {
        c->keep_alive = false;
        return;
      }
      close_client(c);
      return;
    case ClientState::closing:
      if (res == 0) return;  // still sending our last response
      close_client(c);
      return;
    default:
      close_client(c);
  }
}

void Worker::begin_linger(ClientConn* c) {
  release_held(c);
  if (c->peer_eof) {
    close_client(c);
    return;
  }
  ::shutdown(c->fd, SHUT_WR);
  c->state = ClientState::lingering;
  linger_timers_.arm(&c->timer, now_ms_);
  update_client_recv(c);
}

void Worker::close_client(ClientConn* c) {
  if (c->state == ClientState::closed) return;
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
  if (c->cache_waiting) unpark_cache_waiter(c);
  if (c->queued_on != nullptr) {
    unlink_queued(c);
    c->queued_bytes.reset();
  }
  c->fill.reset();  // a response cut short is never stored
  end_cache_claim(c);
  release_service(c);
  c->state = ClientState::closed;
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
