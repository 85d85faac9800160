// The upstream exchange as a machine without I/O (ARCHITECTURE.md §3, "The proxy's connection
// machines"): where one upstream connection stands, which of its deadlines runs, and what a
// connect result, a send, the response's progress, the backend's end, an error or a fired
// deadline mean for it and for the client's exchange.
//
// A plain object. It never touches a socket, a ring or a clock: the reactor
// (upstream_conn.cc) maps completions to the events below and carries out the UpstreamStep
// they return — which deadline to set (an UpstreamTimer: the connect timeout linked to the
// connect, the service's upstream timer list, the idle pool's expiry), what becomes of the
// connection and its request (carry on, resend it on a fresh connection or to the next
// target, fail it, back to the pool, close) and what the client's exchange is told (a
// ClientEvent: the answer's head, its end, an error answer, a cut-off). Which target, the pools, the
// wait queues, parsing and the output queues stay with the reactor; this object holds only
// the state those decisions read. Tested in tests/unit/proxy/upstream_exchange_test.cc with a
// fake clock and fake I/O and an invariant check after every step.
//
// Who is blamed: a connect that is refused or times out is the target's fault, never the
// request's — the request moves, untouched, to the next target (502 once none is left:
// upstream_rules.h status_without_target). A backend that holds a sent request longer than
// --upstream-timeout-ms without progress is a gateway timeout (504). A backend that closes,
// errs or sends what does not parse is a bad gateway (502), unless the request may be sent
// again (after_break: a reused keep-alive connection closed just as we reused it). An idle
// pooled connection blames nobody: it just closes. Once part of the answer went to the
// client no status can be sent any more: the client is cut off.
//
// Thread: the reactor's. Checks stay on (ARCHITECTURE.md §4): every step that changes the
// state ends with check_invariants(); the steps a request takes many times (sends, bytes)
// check nothing, so the request path costs what it did before the machine (instruction
// counts in the commit). The unit tests run check_invariants() after every step.
#pragma once

#include <cstdint>

#include "ringmaster/base/check.h"
#include "upstream_rules.h"

namespace ringmaster::proxy {

enum class UpstreamState : uint8_t {
  connecting,  // a connect (with its linked timeout) is in flight
  busy,        // connected, a request on it
  idle,        // in the idle pool: no request, only its close is watched
  closed,
};

// The deadline a step asks the reactor to set on the connection.
enum class UpstreamTimer : uint8_t {
  keep,      // leave it as it is
  none,      // disarm: no upstream deadline runs (the client's own deadline governs)
  connect,   // the service's connect-timeout-ms, linked to the connect (on_connect(false))
  response,  // --upstream-timeout-ms: the backend's progress (sending, the first byte, each byte)
  idle,      // --upstream-idle-timeout-ms: unused in the pool (on_idle_expired)
};

// What becomes of the connection and its request.
enum class UpstreamAction : uint8_t {
  go,                  // carry on: send, receive (the timer says which deadline)
  hold,                // the backend ended behind bytes held for a slow client: parse those
                       // first (on_held_parsed); nothing more is received
  failover,            // the connect failed: eject the target, close, and move the request's
                       // bytes untouched to the next least-used target
  resend_same_target,  // close, and send the request again to the same target on a fresh
                       // connection (or queue for one when it may open none)
  resend_next_target,  // close, eject the target like a failed connect, send it again elsewhere
  fail,                // the request fails (`client` says how the client hears it)
  complete,            // the response ended with the connection (close-delimited): close
  pool,                // back to the idle pool (the timer: idle)
  close,               // close the connection
};

// What the client's exchange must be told.
enum class ClientEvent : uint8_t {
  none,
  response_head,      // the answer's head went out (ClientExchange::on_response_head)
  response_complete,  // the answer ended (ClientExchange::on_response_complete)
  answer_error,       // nothing of the answer went out: answer `status` locally (502 / 504)
  cut_off,            // part of the answer went out: closing is the only honest signal left
};

struct UpstreamStep {
  UpstreamAction action = UpstreamAction::go;
  UpstreamTimer timer = UpstreamTimer::keep;
  ClientEvent client = ClientEvent::none;
  uint16_t status = 0;  // with answer_error and cut_off: 502 or 504 (the access log's verdict)
};

// The facts about the request that only the client's side knows, asked only when a broken
// connection may be retried.
struct RequestFacts {
  bool idempotent = false;    // its method may be sent twice (RFC 9110 9.2.2)
  bool has_body = false;      // it has a body (not kept to resend)
  bool target_known = false;  // the connection's target is still in the snapshot
};

class UpstreamExchange {
 public:
  UpstreamState state() const { return state_; }
  bool attached() const { return attached_; }  // a request is on it
  bool reused() const { return reused_; }
  bool got_bytes() const { return got_bytes_; }
  bool response_started() const { return response_started_; }
  // The backend ended its side behind held bytes (hold): nothing more is received.
  bool peer_ended() const { return peer_ended_; }

  // ---- Events ----

  // A new connection: the connect is submitted with its deadline linked to it.
  UpstreamTimer on_open() {
    RM_CHECK(state_ == UpstreamState::connecting && !attached_);
    return UpstreamTimer::connect;
  }

  // A request goes on the connection: a new one still connecting (its deadline runs from the
  // connect's result), or one from the idle pool (reused), whose response deadline starts now.
  UpstreamTimer on_attach() {
    RM_CHECK(!attached_ && (state_ == UpstreamState::connecting || state_ == UpstreamState::idle));
    attached_ = true;
    got_bytes_ = false;
    response_started_ = false;
    peer_ended_ = false;
    UpstreamTimer t = UpstreamTimer::keep;
    if (state_ == UpstreamState::idle) {
      state_ = UpstreamState::busy;
      reused_ = true;
      t = UpstreamTimer::response;
    }
    check_invariants();
    return t;
  }

  // The request leaves the connection (answered, failed, the client gone); the reactor
  // closes or pools the connection next.
  void on_detach() { attached_ = false; }

  // The connect's result. Refused, unreachable or cancelled by the linked timeout: the
  // target is to blame, the request fails over untouched.
  UpstreamStep on_connect(bool ok) {
    RM_CHECK(state_ == UpstreamState::connecting);
    UpstreamStep s;
    if (ok) {
      state_ = UpstreamState::busy;
      s.timer = attached_ ? UpstreamTimer::response : UpstreamTimer::keep;
    } else {
      attached_ = false;
      s.action = UpstreamAction::failover;
    }
    check_invariants();
    return s;
  }

  // Request bytes went out: progress the backend made (reading).
  UpstreamTimer on_sent() const { return attached_ ? UpstreamTimer::response : UpstreamTimer::keep; }

  // Response bytes arrived for the request.
  UpstreamTimer on_bytes() {
    got_bytes_ = true;
    return UpstreamTimer::response;
  }

  // The response head is forwarded to the client; then its end by its framing (the parser's
  // verdict; an end with the connection is on_input_ended's).
  ClientEvent on_response_head() {
    RM_CHECK(attached_ && got_bytes_);
    response_started_ = true;
    return ClientEvent::response_head;
  }
  ClientEvent on_response_end() const {
    RM_CHECK(response_started_);
    return ClientEvent::response_complete;
  }

  // The response ended (its framing said so). Reuse only a connection whose request and
  // response both ended cleanly (upstream_rules.h reusable) and whose target's pool has room
  // (`pool_has_room()`, asked only then); otherwise close it.
  template <typename PoolHasRoom>
  UpstreamStep on_response_done(const EndedExchange& e, PoolHasRoom&& pool_has_room) {
    RM_CHECK(attached_ && state_ == UpstreamState::busy);
    attached_ = false;
    UpstreamStep s;
    if (reusable(e) && !peer_ended_ && pool_has_room()) {
      state_ = UpstreamState::idle;
      s.action = UpstreamAction::pool;
      s.timer = UpstreamTimer::idle;
    } else {
      s.action = UpstreamAction::close;
      s.timer = UpstreamTimer::none;
    }
    peer_ended_ = false;
    check_invariants();
    return s;
  }

  // The backend's side ended: EOF (`clean`) or an error (a receive or a send failed). With
  // bytes of its answer still held for a slow client (`held`), those came first: hold, and
  // decide once they are parsed (on_held_parsed); from then the client's own deadline
  // governs, not the backend's. `ask.facts()` (RequestFacts) is asked only when the request
  // may be resent; `ask.ends_body()` only when a started answer ended cleanly (true: a
  // close-delimited body ends here).
  template <typename Ask>
  UpstreamStep on_input_ended(bool clean, bool held, const Ask& ask) {
    if (!attached_) return idle_closed();
    if (held && response_started_ && !peer_ended_) {
      peer_ended_ = true;
      peer_end_clean_ = clean;
      check_invariants();
      return UpstreamStep{UpstreamAction::hold, UpstreamTimer::none, ClientEvent::none, 0};
    }
    return broken(clean, ask);
  }
  // The bytes held behind the backend's end are parsed (or will not be: the client is slow).
  template <typename Ask>
  UpstreamStep on_held_parsed(const Ask& ask) {
    RM_CHECK(peer_ended_ && attached_);
    return broken(peer_end_clean_, ask);
  }

  // The response does not parse: the backend is to blame.
  UpstreamStep on_bad_response() {
    RM_CHECK(attached_);
    return fail(502);
  }

  // The upstream deadline fired: a backend holding the request without progress (504).
  UpstreamStep on_timeout() {
    if (!attached_) return idle_closed();
    return fail(504);
  }

  // An idle pooled connection became readable (the backend closed it, or sent what nothing
  // asked for), or outlived its idle deadline: close it, blaming nobody.
  UpstreamStep on_idle_input() { return idle_closed(); }
  UpstreamStep on_idle_expired() { return idle_closed(); }

  void on_closed() {
    RM_CHECK(!attached_);
    state_ = UpstreamState::closed;
    peer_ended_ = false;
    check_invariants();
  }

  // Always on (ARCHITECTURE.md §4): a few compares per step.
  void check_invariants() const {
    // A request is on a connection that connects or is busy; never on one pooled or closed.
    RM_CHECK(!attached_ || state_ == UpstreamState::connecting || state_ == UpstreamState::busy);
    // A connection still connecting was never used and has heard nothing.
    RM_CHECK(state_ != UpstreamState::connecting || (!reused_ && !got_bytes_ && !response_started_));
    // An answer starts with bytes from the backend.
    RM_CHECK(!response_started_ || got_bytes_);
    // A held end belongs to a started answer still on the connection.
    RM_CHECK(!peer_ended_ || (attached_ && response_started_ && state_ == UpstreamState::busy));
  }

 private:
  UpstreamStep idle_closed() {
    RM_CHECK(!attached_);
    return UpstreamStep{UpstreamAction::close, UpstreamTimer::none, ClientEvent::none, 0};
  }

  UpstreamStep fail(uint16_t status) {
    attached_ = false;
    peer_ended_ = false;
    ClientEvent e = response_started_ ? ClientEvent::cut_off : ClientEvent::answer_error;
    return UpstreamStep{UpstreamAction::fail, UpstreamTimer::none, e, status};
  }

  // The connection broke with the request on it: resend it (after_break's rule), end a
  // close-delimited answer, or fail it (502).
  template <typename Ask>
  UpstreamStep broken(bool clean, const Ask& ask) {
    RM_CHECK(attached_);
    if (!response_started_ && !got_bytes_) {
      RequestFacts r = ask.facts();
      BrokenExchange b;
      b.idempotent = r.idempotent;
      b.has_body = r.has_body;
      b.reused = reused_;
      b.target_known = r.target_known;
      b.can_open = true;  // known once the broken connection gave its slot back (the reactor)
      switch (after_break(b)) {
        case AfterBreak::fresh_connection:
        case AfterBreak::wait_for_target:
          attached_ = false;
          return UpstreamStep{UpstreamAction::resend_same_target, UpstreamTimer::none, ClientEvent::none, 0};
        case AfterBreak::next_target:
          attached_ = false;
          return UpstreamStep{UpstreamAction::resend_next_target, UpstreamTimer::none, ClientEvent::none, 0};
        case AfterBreak::fail:
          break;
      }
    }
    if (response_started_ && clean && ask.ends_body()) {
      attached_ = false;
      peer_ended_ = false;
      return UpstreamStep{UpstreamAction::complete, UpstreamTimer::none, ClientEvent::response_complete, 0};
    }
    return fail(502);
  }

  UpstreamState state_ = UpstreamState::connecting;
  bool attached_ = false;
  bool reused_ = false;            // served a request before this one
  bool got_bytes_ = false;         // response bytes arrived for the current request
  bool response_started_ = false;  // its head went to the client
  bool peer_ended_ = false;        // the backend ended behind held bytes (hold)
  bool peer_end_clean_ = false;    // ... with an EOF (not an error)
};

}  // namespace ringmaster::proxy
