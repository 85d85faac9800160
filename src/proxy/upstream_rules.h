// The upstream exchange's pure rules as plain functions (ARCHITECTURE.md §3, "The proxy's
// connection machines"): where a request goes on its target, what to do with a request whose
// upstream connection broke, and whether a connection whose exchange ended may go back to
// the idle pool. No I/O, no clock: the upstream machine (upstream_exchange.h) and
// upstream_conn.cc call them with the facts; they are tested from tables in
// tests/unit/proxy/upstream_rules_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ringmaster::proxy {

// A request's next target picked (start_attempt): send it now (on an idle connection or a
// new one), or wait in the target's FIFO for a connection (--upstream-max-conns) — also
// when others already wait there: first come, first served. The last two facts are asked
// only when needed (`idle_connection()`, `can_open()`: a pool and a limit lookup).
enum class Placement : uint8_t { send_now, wait_in_queue };
template <typename IdleConnection, typename CanOpen>
Placement place(bool others_waiting, IdleConnection&& idle_connection, CanOpen&& can_open) {
  if (others_waiting) return Placement::wait_in_queue;
  return idle_connection() || can_open() ? Placement::send_now : Placement::wait_in_queue;
}

// No target left to try: "unavailable" when the service has none at all, a bad gateway when
// every one was tried and failed (refused or timed-out connects fail over to the next).
inline uint16_t status_without_target(size_t targets) { return targets == 0 ? 503 : 502; }

// The facts about an upstream connection that broke (EOF or error) with a request on it.
struct BrokenExchange {
  bool response_started = false;  // part of the answer already went to the client
  bool got_bytes = false;         // the backend sent any byte of an answer
  bool idempotent = false;        // the request's method may be sent twice (RFC 9110 9.2.2)
  bool has_body = false;          // the request has a body (we did not keep it to resend)
  bool reused = false;            // the connection served a request before this one
  bool target_known = false;      // its target is still in the snapshot
  bool can_open = false;          // the service may open one more connection to that target
};

enum class AfterBreak : uint8_t {
  fail,                 // no retry: 502 (or a cut-off answer once part of it went out)
  wait_for_target,      // the same target, but its connections are all taken: queue for one
  fresh_connection,     // the same target on a new connection (the keep-alive race)
  next_target,          // eject the target like a failed connect; the next least-used one
};

// Only a request whose whole message we can write again (idempotent, no body) is resent,
// and never once a response byte came back. A reused keep-alive connection that the backend
// closed just as we reused it is an ordinary race: the same target again, on a fresh
// connection. Anything else means the backend died holding the request.
inline AfterBreak after_break(const BrokenExchange& b) {
  if (b.response_started || b.got_bytes) return AfterBreak::fail;
  if (!b.idempotent || b.has_body) return AfterBreak::fail;
  if (b.reused && b.target_known) return b.can_open ? AfterBreak::fresh_connection : AfterBreak::wait_for_target;
  return AfterBreak::next_target;
}

// The facts about a connection whose response just ended.
struct EndedExchange {
  bool backend_keep_alive = false;  // the response did not ask to close
  bool request_complete = false;    // the whole request (body included) went out
  bool request_bytes_left = false;  // bytes queued toward the backend not yet sent
  bool response_bytes_left = false; // bytes past the end of the response
  bool draining = false;
  uint32_t idle_cap = 0;            // idle connections kept for its target (0: no reuse)
};

// Reuse only a connection whose request and response both ended cleanly with nothing left
// over on either side: bytes past the end of a response mean the backend and we disagree on
// framing.
inline bool reusable(const EndedExchange& e) {
  return e.backend_keep_alive && e.request_complete && !e.request_bytes_left && !e.response_bytes_left &&
         !e.draining && e.idle_cap > 0;
}

}  // namespace ringmaster::proxy
