// The client exchange as a machine without I/O (ARCHITECTURE.md §3, "The proxy's connection
// machines"): where one client connection stands, and which of the client's deadlines runs.
//
// A plain object. It never touches a socket, a ring or a clock: the reactor (client_conn.cc)
// maps completions to the events below and carries out what they return — which deadline to
// arm (a ClientTimer, armed by the reactor on the matching TimerList at its own now), whether
// to answer 408, close, linger or keep waiting. Everything else the exchange does (parsing,
// routing, cache, upstream) stays with its module; this object only holds the state those
// decisions read, so that the rules below are one screen of code, tested in
// tests/unit/proxy/client_exchange_test.cc with a fake clock and an invariant check after
// every step.
//
// The blame rule: the client's deadlines cover only what the client owes — the request head
// (--header-timeout-ms), its body and reading our answer (--client-timeout-ms), the next
// request (--idle-timeout-ms). Once the whole request is in and a backend holds it, the
// client owes nothing: only the upstream side's deadlines may end the exchange (502/504),
// never a 408. While the request waits for a cached answer or for an upstream connection,
// the cache's or the queue's deadline runs instead of the client's (`waiting`).
//
// Thread: the reactor's. Checks stay on (ARCHITECTURE.md §4): every step that changes the
// state ends with check_invariants(); the steps a request takes many times (bytes of a body,
// sends, the response's progress) check only their own precondition, so that the request
// path costs what it did before the machine (instruction counts in the commit). The unit
// tests run check_invariants() after every step.
#pragma once

#include <cstdint>

#include "ringmaster/base/check.h"

namespace ringmaster::proxy {

// Request body bytes that count as progress for --client-timeout-ms (see on_bytes).
inline constexpr uint32_t kClientProgressBytes = 1024;

enum class ClientState : uint8_t {
  idle,          // keep-alive: waiting for the first byte of the next request
  reading_head,  // a request head is arriving (whole-head deadline running)
  exchanging,    // head parsed (or rejected); request body and/or response in flight
  closing,       // last response queued; close (lingering) once it is sent
  lingering,     // our side shut down; discarding input until EOF or the linger deadline
  closed,
};

// The deadline a step asks the reactor to arm on the connection's one timer node.
enum class ClientTimer : uint8_t {
  keep,     // leave the timer as it is
  header,   // --header-timeout-ms: the whole head
  idle,     // --idle-timeout-ms: the next request's first byte
  client,   // --client-timeout-ms: body progress, reading our answer
  linger,   // kLingerMs: discarding input after our last byte
};

static_assert(static_cast<int>(ClientTimer::linger) == 4, "Worker::client_lists_ is indexed by ClientTimer");

// What the reactor does when the connection's deadline fires (the client's own, or the one
// that runs while the request waits: ClientWait).
enum class ClientTimeout : uint8_t {
  answer_408,   // the client owes a request (head or body) it did not send: 408, then close
  close,        // the client does not read our answer, or never sent a next request
  rearm,        // the client owes nothing (a backend holds the whole request): wait on
  fetch_alone,  // the cache's owner is slow: stop waiting, go upstream without a claim
  answer_503,   // no upstream connection freed up in the queue's time: 503 + Retry-After
};

// A request body we refuse (it does not parse, or it is over the service's body-bytes-max):
// answer it with the error, or close when part of a response already went out.
enum class BodyRejected : uint8_t { answer, close };

// What a drain (graceful shutdown, reload) does to a connection: close it now (idle, nothing
// left to send; or past the drain deadline), or let the exchange in flight finish and close
// after its answer.
enum class DrainAction : uint8_t { close_now, finish_first };

// What follows a completed send.
enum class AfterSend : uint8_t { carry_on, linger, close };

// Whose deadline runs while the request waits for something other than the client.
enum class ClientWait : uint8_t { none, cache, queue };

// The request side and the response side of the current exchange.
enum class RequestSide : uint8_t { incomplete, complete };
enum class ResponseSide : uint8_t { pending, started, complete };

class ClientExchange {
 public:
  ClientState state() const { return state_; }
  bool keep_alive() const { return keep_alive_; }
  bool request_complete() const { return request_ == RequestSide::complete; }
  bool response_started() const { return response_ != ResponseSide::pending; }
  bool response_complete() const { return response_ == ResponseSide::complete; }
  bool peer_eof() const { return peer_eof_; }
  bool input_end_deferred() const { return input_end_deferred_; }
  bool input_held() const { return input_held_; }
  bool draining() const { return draining_; }
  ClientWait waiting() const { return wait_; }
  // The client's deadline governs (not the cache's, nor the upstream queue's).
  bool client_deadline_runs() const { return state_ == ClientState::exchanging && wait_ == ClientWait::none; }

  // ---- Events ----

  // A new connection: its first request's head is due within the header deadline, counted
  // from accept. `draining`: accepted while the reactor drains (a handover's last accepts):
  // served once, without keep-alive.
  ClientTimer on_accept(bool draining) {
    state_ = ClientState::reading_head;
    draining_ = draining;
    check_invariants();
    return ClientTimer::header;
  }

  // A background cache refresh: a request without a client, complete from the start, that
  // never reads and ends after its one answer.
  void start_background() {
    state_ = ClientState::exchanging;
    peer_eof_ = true;
    keep_alive_ = false;
    request_ = RequestSide::complete;
    check_invariants();
  }

  // `bytes` of input arrived. While idle they start the next request — unless our answers to
  // this client are backed up (`out_backed_up`): a pipelining client that does not read would
  // otherwise get every cached or local answer queued at once; the request then waits,
  // idle, and start_next() begins it once the output drained. During an exchange a body
  // must make real progress to keep the connection: the deadline moves only once
  // kClientProgressBytes arrived since it was last set, so a client dribbling one byte at a
  // time is cut after --client-timeout-ms like a silent one.
  ClientTimer on_bytes(uint32_t bytes, bool out_backed_up) {
    if (state_ == ClientState::idle && !out_backed_up) {
      state_ = ClientState::reading_head;
      check_invariants();
      return ClientTimer::header;
    }
    if (client_deadline_runs()) {
      progress_bytes_ += bytes;
      if (progress_bytes_ >= kClientProgressBytes) {
        progress_bytes_ = 0;
        return ClientTimer::client;
      }
    }
    return ClientTimer::keep;
  }

  // Input is held while idle (pipelined, or it arrived while backed up): begin the next
  // request unless our answers are still backed up (then false: wait for a send).
  bool start_next(bool out_backed_up) {
    RM_CHECK(state_ == ClientState::idle);
    if (out_backed_up) return false;
    state_ = ClientState::reading_head;
    check_invariants();
    return true;
  }

  // A whole head parsed: the exchange begins; the client now owes its body (if any) and
  // reading our answer.
  ClientTimer on_head(bool head_keep_alive, bool body_complete) {
    RM_CHECK(state_ == ClientState::reading_head);
    state_ = ClientState::exchanging;
    progress_bytes_ = 0;
    keep_alive_ = head_keep_alive && !draining_;
    request_ = body_complete ? RequestSide::complete : RequestSide::incomplete;
    response_ = ResponseSide::pending;
    wait_ = ClientWait::none;
    check_invariants();
    return ClientTimer::client;
  }

  // A head that cannot be served (malformed, or not complete in time): an error answer
  // follows, and the connection closes after it.
  void on_head_rejected() {
    RM_CHECK(state_ == ClientState::reading_head);
    state_ = ClientState::exchanging;
    keep_alive_ = false;
    request_ = RequestSide::incomplete;
    response_ = ResponseSide::pending;
    check_invariants();
  }

  // The request body parsed to its end; true when the response is complete too (the
  // exchange is over: finish()).
  bool on_body_complete() {
    RM_CHECK(state_ == ClientState::exchanging);
    request_ = RequestSide::complete;
    return response_complete();
  }

  // A body we refuse (it does not parse, or is over the service's body-bytes-max): no later
  // request boundary is known, so the connection closes after the error answer, and the
  // rest of its input (unparsed body, pipelined requests) is never parsed: finish() drops
  // it. Once a backend's answer started, no error answer fits in: close at once.
  BodyRejected on_body_rejected() {
    RM_CHECK(state_ == ClientState::exchanging && request_ != RequestSide::complete);
    keep_alive_ = false;
    check_invariants();
    return response_started() ? BodyRejected::close : BodyRejected::answer;
  }

  // Unread request body bytes make the next request's boundary unknown: close after this
  // answer (a backend may answer before the whole body arrived; a local error may too).
  void close_unless_request_complete() {
    if (request_ != RequestSide::complete) keep_alive_ = false;
  }

  // Response progress: its head went out (from a backend, `close` when its framing ends
  // with the connection), and its end.
  void on_response_head(bool close) {
    RM_CHECK(state_ == ClientState::exchanging && response_ == ResponseSide::pending && wait_ == ClientWait::none);
    response_ = ResponseSide::started;
    if (close) keep_alive_ = false;
  }
  void on_response_complete() { response_ = ResponseSide::complete; }
  // A whole answer written at once (local, cached, 304 from a revalidation).
  void on_whole_response() {
    RM_CHECK(state_ == ClientState::exchanging && wait_ == ClientWait::none);
    response_ = ResponseSide::complete;
  }

  // The request waits for a cached answer another request is fetching, or for an upstream
  // connection (--upstream-max-conns): that deadline runs instead of the client's. When the
  // wait ends, the client's deadline is armed again if the exchange goes on.
  void begin_wait(ClientWait what) {
    RM_CHECK(state_ == ClientState::exchanging && what != ClientWait::none);
    wait_ = what;
    check_invariants();
  }
  ClientTimer end_wait() {
    wait_ = ClientWait::none;
    check_invariants();
    return state_ == ClientState::exchanging ? ClientTimer::client : ClientTimer::keep;
  }

  // The exchange is over (answered, or a local answer written). Keep-alive: back to idle
  // with the deadline between_requests() picks. Otherwise closing: the client's deadline
  // covers sending the last answer; `begin_linger` says to linger at once (nothing left to
  // send); pipelined input after a closing answer is never forwarded.
  struct Finish {
    ClientTimer timer;
    bool closing;
    bool begin_linger;
  };
  Finish finish(bool out_empty) {
    wait_ = ClientWait::none;
    if (draining_) keep_alive_ = false;
    Finish f{};
    if (!keep_alive_) {
      state_ = ClientState::closing;
      f = Finish{ClientTimer::client, true, out_empty};
    } else {
      state_ = ClientState::idle;
      request_ = RequestSide::incomplete;
      response_ = ResponseSide::pending;
      progress_bytes_ = 0;
      f = Finish{between_requests(out_empty), false, false};
    }
    check_invariants();
    return f;
  }

  // Answers may still be going out between requests (a cached one is queued whole the
  // moment it is found): until they are, the send-progress deadline governs, as during an
  // exchange, so a slow but steady reader is not cut and a drain lets it finish; the
  // keep-alive wait starts when the last byte is sent.
  static ClientTimer between_requests(bool out_empty) { return out_empty ? ClientTimer::idle : ClientTimer::client; }

  // A send completed: the client reads, which is progress it owes (a request waiting for
  // the cache or for an upstream connection keeps that deadline). `out_empty()` says whether
  // nothing is left to send (asked only when it matters: it walks the output queue).
  template <typename OutEmpty>
  ClientTimer on_sent(OutEmpty&& out_empty) const {
    if (client_deadline_runs() || state_ == ClientState::closing) return ClientTimer::client;
    if (state_ == ClientState::idle) return between_requests(out_empty());
    return ClientTimer::keep;
  }
  // After a send (and what it started: the next pipelined request): the last answer of a
  // closing connection is out: linger (begin_linger); an idle connection of a draining
  // reactor sent its last answer: close it now, as on_drain does with idle ones.
  template <typename OutEmpty>
  AfterSend after_send(OutEmpty&& out_empty) const {
    if (state_ == ClientState::closing) return out_empty() ? AfterSend::linger : AfterSend::carry_on;
    if (draining_ && state_ == ClientState::idle && out_empty()) return AfterSend::close;
    return AfterSend::carry_on;
  }

  // The unparsed input reached its bound (the reactor's held buffers): the reactor stops
  // receiving and TCP pushes back on the client, until on_input_resumed. This happens when
  // our output backs up: idle, answers to a pipelining client that does not read (the next
  // request waits, start_next); exchanging, a request body the backend takes slower than the
  // client sends it. The deadlines do not move: idle, the send deadline runs (the client
  // owes reading our answers); exchanging, the body's progress deadline keeps running (body
  // progress counts at receive), but while the input is held it does not blame the client
  // (on_timeout rearms: the backend's deadline decides).
  ClientTimer on_input_held() {
    // Held input is input still to be parsed: never while discarding, nor after the EOF
    // (every step that ends the input clears it).
    RM_CHECK(!input_held_ && !discards_input() && !peer_eof_);
    input_held_ = true;
    check_invariants();
    return ClientTimer::keep;
  }
  ClientTimer on_input_resumed() {
    input_held_ = false;
    return ClientTimer::keep;
  }
  // Whether input may still arrive (the reactor keeps a receive posted unless the input is
  // held): not once the connection closed or the client's input ended.
  bool receives() const { return state_ != ClientState::closed && !peer_eof_; }
  // Input that arrives now is dropped unparsed: lingering (discarded until EOF) or closed.
  bool discards_input() const { return state_ == ClientState::lingering || state_ == ClientState::closed; }

  // The reactor drains (graceful shutdown, reload). Idle connections with nothing left to
  // send close now; any other finishes what it has in flight and closes after its answer
  // (finish(): no keep-alive; heads parsed from now on are not kept alive either); an idle
  // one still sending closes once its last answer is out (after_send). Called again on every
  // drain tick for every connection (idempotent).
  DrainAction on_drain(bool out_empty) {
    draining_ = true;
    return state_ == ClientState::idle && out_empty ? DrainAction::close_now : DrainAction::finish_first;
  }
  // The drain's deadline (--shutdown-timeout-ms) passed: whatever a connection still owes or
  // is owed, it closes.
  DrainAction on_drain_deadline() {
    draining_ = true;
    return DrainAction::close_now;
  }

  // The connection's deadline fired: the client's own, or while the request waits the
  // cache's or the queue's (one place decides what a fired deadline means).
  // `backend_holds_request`: an upstream connection carries the current request (the blame
  // rule above).
  ClientTimeout on_timeout(bool backend_holds_request) {
    ClientTimeout verdict = ClientTimeout::close;
    if (wait_ != ClientWait::none) {
      // Not the client's deadline: it owes nothing while its request waits. The wait ends.
      verdict = wait_ == ClientWait::cache ? ClientTimeout::fetch_alone : ClientTimeout::answer_503;
      wait_ = ClientWait::none;
    } else if (state_ == ClientState::reading_head) {
      // A slow or stalled head (slowloris).
      on_head_rejected();
      verdict = ClientTimeout::answer_408;
    } else if (state_ == ClientState::exchanging && !response_started()) {
      if ((request_complete() || input_held_) && backend_holds_request) {
        // Only the upstream side's deadlines (connect, --upstream-timeout-ms) may end
        // this, with the backend blamed — even when both timeouts are equal. Likewise
        // while the body is held because the backend takes it slower than the client sends
        // it: the client is not receiving only because we stopped reading it.
        verdict = ClientTimeout::rearm;
      } else {
        keep_alive_ = false;
        verdict = ClientTimeout::answer_408;
      }
    }
    check_invariants();
    return verdict;
  }

  // The client's input ended: EOF (`clean`) or an error. True: keep the connection for now
  // (a client may half-close after a complete request and wait for the answer; a closing
  // connection still sends its last answer); false: close it.
  bool on_input_ended(bool clean) {
    peer_eof_ = true;
    input_end_deferred_ = false;
    input_held_ = false;  // nothing more is received
    bool keep = false;
    if (state_ == ClientState::exchanging && clean && request_complete()) {
      keep_alive_ = false;
      keep = true;
    } else if (state_ == ClientState::closing && clean) {
      keep = true;
    }
    check_invariants();
    return keep;
  }

  // The client's clean EOF arrived while part of its request body is still held unparsed
  // (`body_held`: the backend is slower than the client). Those bytes came before the EOF,
  // so the EOF is recorded (nothing more is received) and on_input_ended decides once the
  // held body is parsed (due_input_end). False: decide now.
  bool defer_input_end(bool clean, bool body_held) {
    if (!clean || !body_held || state_ != ClientState::exchanging || request_complete()) return false;
    peer_eof_ = true;
    input_end_deferred_ = true;
    input_held_ = false;  // nothing more is received; the held bytes are parsed as before
    check_invariants();
    return true;
  }

  // A deferred EOF is due once nothing of the body is held, the body completed, or the
  // exchange ended some other way (an error answer).
  bool due_input_end(bool body_held) const {
    return input_end_deferred_ && (!body_held || request_complete() || state_ != ClientState::exchanging);
  }

  // The last answer is out: shut our side and discard input for a while, so that the
  // kernel does not answer the client's in-flight bytes with a RST that would destroy our
  // response. False: the client already closed its side, close now.
  bool begin_linger() {
    input_held_ = false;  // what was held is dropped; lingering discards input
    if (peer_eof_) return false;
    state_ = ClientState::lingering;
    check_invariants();
    return true;
  }

  void on_closed() {
    state_ = ClientState::closed;
    wait_ = ClientWait::none;
    input_held_ = false;
    check_invariants();
  }

  // Always on (ARCHITECTURE.md §4): a few compares per step. (The held input's invariant,
  // never while discarding nor after the EOF, is checked where it is set, on_input_held:
  // one more compare here moved the compiler's inlining of the hot steps, +40 instructions
  // per cache hit.)
  void check_invariants() const {
    // Only a request in an exchange waits on another side's deadline, and only before its
    // answer began.
    RM_CHECK(wait_ == ClientWait::none || (state_ == ClientState::exchanging && response_ == ResponseSide::pending));
    // A connection that closes never goes back to idle; one that is closing knows it.
    RM_CHECK(keep_alive_ || (state_ != ClientState::idle && state_ != ClientState::reading_head));
    RM_CHECK((state_ != ClientState::closing && state_ != ClientState::lingering) || !keep_alive_);
    // A request is only waited on, or answered, inside an exchange.
    RM_CHECK(response_ == ResponseSide::pending || state_ != ClientState::reading_head);
    RM_CHECK(progress_bytes_ < kClientProgressBytes);
    // A deferred EOF is an EOF: nothing more is received meanwhile.
    RM_CHECK(!input_end_deferred_ || peer_eof_);
  }

 private:
  ClientState state_ = ClientState::idle;
  RequestSide request_ = RequestSide::incomplete;
  ResponseSide response_ = ResponseSide::pending;
  ClientWait wait_ = ClientWait::none;
  bool keep_alive_ = true;
  bool peer_eof_ = false;       // the client's input ended (EOF or error)
  bool input_end_deferred_ = false;  // ... behind held body bytes (defer_input_end)
  bool input_held_ = false;     // the reactor stopped receiving: unparsed input at its bound
  bool draining_ = false;       // the reactor drains (on_drain, or accepted while draining)
  uint32_t progress_bytes_ = 0;  // body bytes since the client deadline last moved
};

}  // namespace ringmaster::proxy
