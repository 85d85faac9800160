// The client exchange machine (src/proxy/client_exchange.h) driven by a fake clock and fake
// I/O: every client deadline and who is blamed when it fires (the cache's and the queue's
// too), pipelining order, backpressure (input held and resumed), refused bodies, drain,
// half-close and errors. The Reactor below does what client_conn.cc
// does with the machine's answers (arm the one timer node, answer locally, linger, close),
// with time as a number and the socket as counters; check_invariants() runs after every
// step.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "proxy/client_exchange.h"

namespace ringmaster::proxy {
namespace {

struct Durations {
  int64_t header_ms = 1000;
  int64_t idle_ms = 5000;
  int64_t client_ms = 2000;
  int64_t linger_ms = 2000;
  int64_t upstream_ms = 2000;
  int64_t cache_wait_ms = 500;
  int64_t queue_ms = 800;
};

// What a pipelined request is: answered from the cache at once (a whole answer of
// `answer_bytes`), or sent to a backend that answers when the test says so.
struct Request {
  int id;
  bool cached = false;
  bool with_body = false;
  uint64_t answer_bytes = 100;
};

constexpr uint64_t kOutBoundBytes = 256 * 1024;  // the reactor's kOutSoftLimit
constexpr size_t kHeldMax = 4;  // requests held unparsed before the receive stops (kClientHeldMax)

class Reactor {
 public:
  explicit Reactor(Durations d = {}, bool draining_at_accept = false) : draining(draining_at_accept), d_(d) {
    arm(x.on_accept(draining_at_accept));
  }

  ClientExchange x;
  int64_t now_ms = 0;
  std::vector<std::string> events;  // what a user would see: "408 #1", "504 #2", "200 #3", "close"
  std::deque<Request> held;         // pipelined requests received, not begun
  std::deque<Request> in_kernel;    // sent by the client, not received: our receive is stopped
  bool body_held = false;           // the request's body waits for a backend slow to take it
  uint64_t out_bytes = 0;           // queued toward the client, not yet read
  bool draining = false;
  bool closed = false;
  bool lingering_shut = false;  // our side shut down (SHUT_WR)

  // The connection's one timer node: which deadline it runs, and when.
  enum class Node { none, header, idle, client, linger, upstream_wait, cache_wait, queue_wait };
  Node node = Node::none;
  int64_t deadline_ms = 0;
  // The upstream connection's own node (Worker: UpstreamConn::timer).
  bool backend_holds = false;
  int64_t upstream_deadline_ms = 0;
  int current = 0;  // id of the request in the exchange
  bool pumping = false;  // inside Worker::pump_client

  void check() const {
    x.check_invariants();
    if (closed) {
      ASSERT_EQ(x.state(), ClientState::closed);
      return;
    }
    // The node runs the deadline the state calls for.
    switch (x.state()) {
      case ClientState::idle:
        ASSERT_TRUE(node == Node::idle || node == Node::client);
        ASSERT_EQ(node == Node::idle, out_bytes == 0);
        break;
      case ClientState::reading_head:
        ASSERT_EQ(node, Node::header);
        break;
      case ClientState::exchanging:
        ASSERT_EQ(node, x.waiting() == ClientWait::cache   ? Node::cache_wait
                        : x.waiting() == ClientWait::queue ? Node::queue_wait
                                                           : Node::client);
        break;
      case ClientState::closing:
        ASSERT_EQ(node, Node::client);
        ASSERT_FALSE(x.keep_alive());
        break;
      case ClientState::lingering:
        ASSERT_EQ(node, Node::linger);
        ASSERT_EQ(out_bytes, 0u);
        break;
      case ClientState::closed:
        FAIL() << "closed without close()";
    }
    ASSERT_TRUE(!backend_holds || x.state() == ClientState::exchanging);
    // The receive stops exactly while the unparsed input is at its bound; nothing stays in
    // the kernel while we receive.
    // (A closing connection's held input is dropped without a new decision: it is not
    // parsed any more, and lingering starts receiving again.)
    // (Checked between steps: inside the pump the receive is decided only at its end.)
    if (pumping) return;
    if (x.receives() && x.state() != ClientState::closing) {
      ASSERT_EQ(x.input_held(), held.size() >= kHeldMax || body_held);
    }
    if (x.receives()) {
      ASSERT_TRUE(x.input_held() || in_kernel.empty());
    }
    // Held input is input still to be parsed: never while discarding, nor after the EOF.
    ASSERT_TRUE(!x.input_held() || (!x.discards_input() && !x.peer_eof()));
    // A draining reactor has no idle connection with nothing left to send.
    ASSERT_FALSE(x.draining() && x.state() == ClientState::idle && out_bytes == 0);
  }

  // ---- Fake I/O: what the completions would say ----

  // Requests arrive (pipelined when several): received at once, up to the held bound; the
  // rest waits in the kernel while the input is held.
  void receive(std::vector<Request> requests, uint32_t bytes = 200) {
    if (closed) return;
    if (x.discards_input()) {  // lingering: dropped unparsed
      check();
      return;
    }
    for (const Request& r : requests) in_kernel.push_back(r);
    deliver(bytes);
    check();
  }
  // Body bytes of the request in the exchange.
  void receive_body(uint32_t bytes, bool ends) {
    ASSERT_EQ(x.state(), ClientState::exchanging);
    arm(x.on_bytes(bytes, out_bytes > kOutBoundBytes));
    if (ends && x.on_body_complete()) finish();
    check();
  }
  // The client reads `bytes` of our output (a send completes).
  void client_reads(uint64_t bytes) {
    if (closed || out_bytes == 0) return;  // no send in flight
    out_bytes -= std::min(bytes, out_bytes);
    auto out_empty = [this] { return out_bytes == 0; };
    arm(x.on_sent(out_empty));
    if (x.state() == ClientState::idle && !held.empty()) pump();
    switch (x.after_send(out_empty)) {
      case AfterSend::carry_on:
        break;
      case AfterSend::linger:
        linger();
        break;
      case AfterSend::close:
        close();
        break;
    }
    check();
  }
  // The backend takes the request body slower than the client sends it (`full`): what we
  // received waits for the upstream send, the held input reaches its bound and the receive
  // stops (Worker::update_client_recv); or the upstream send drained and it resumes.
  void body_backs_up(bool full) {
    ASSERT_TRUE(x.state() == ClientState::exchanging && backend_holds && !x.request_complete());
    body_held = full;
    update_recv();
    check();
  }
  // Worker::pump_client_once: the body of the request in the exchange does not parse (or is
  // over the limit).
  void body_rejected(uint16_t status) {
    ASSERT_EQ(x.state(), ClientState::exchanging);
    if (x.on_body_rejected() == BodyRejected::close) {
      close();
    } else {
      answer_locally(status);
    }
    check();
  }
  void client_closes(bool clean) {
    if (x.on_input_ended(clean)) {
      check();
      return;
    }
    close();
  }
  // The backend answers the request in the exchange (head and whole body).
  void backend_answers(uint16_t status, uint64_t bytes) {
    ASSERT_TRUE(backend_holds);
    backend_holds = false;
    x.on_response_head(false);
    x.on_response_complete();
    out_bytes += bytes;
    events.push_back(std::to_string(status) + " #" + std::to_string(current));
    x.close_unless_request_complete();
    finish();
    check();
  }
  // The backend sends only its head; the body follows later.
  void backend_starts_answer(uint64_t bytes) {
    ASSERT_TRUE(backend_holds);
    x.on_response_head(false);
    out_bytes += bytes;
    check();
  }
  void wait_for(ClientWait what) {
    x.begin_wait(what);
    node = what == ClientWait::cache ? Node::cache_wait : Node::queue_wait;
    deadline_ms = now_ms + (what == ClientWait::cache ? d_.cache_wait_ms : d_.queue_ms);
    check();
  }
  // Worker::drain_tick, on every tick: idle clients with nothing left to send go now; past
  // the drain deadline, every client.
  void drain_tick(bool past_deadline = false) {
    if (closed) return;
    draining = true;
    DrainAction action = x.on_drain(out_bytes == 0);
    if (past_deadline) action = x.on_drain_deadline();
    if (action == DrainAction::close_now) close();
    check();
  }
  void begin_drain() { drain_tick(); }

  // ---- The fake clock ----

  void advance(int64_t ms) {
    int64_t end = now_ms + ms;
    for (;;) {
      if (closed) break;
      bool client_due = node != Node::none && deadline_ms <= end;
      bool upstream_due = backend_holds && upstream_deadline_ms <= end;
      if (!client_due && !upstream_due) break;
      // Equal deadlines: the client's lists run first in a loop turn (Worker::run_timers).
      if (upstream_due && (!client_due || upstream_deadline_ms < deadline_ms)) {
        now_ms = upstream_deadline_ms;
        // Worker::upstream_failed: 504, or a cut-off answer once part of it went out.
        if (x.response_started()) {
          close();
        } else {
          answer_locally(504);
        }
      } else {
        now_ms = deadline_ms;
        fire();
      }
      check();
    }
    now_ms = end;
  }

 private:
  Durations d_;

  void arm(ClientTimer t) {
    switch (t) {
      case ClientTimer::keep:
        return;
      case ClientTimer::header:
        node = Node::header;
        deadline_ms = now_ms + d_.header_ms;
        return;
      case ClientTimer::idle:
        node = Node::idle;
        deadline_ms = now_ms + d_.idle_ms;
        return;
      case ClientTimer::client:
        node = Node::client;
        deadline_ms = now_ms + d_.client_ms;
        return;
      case ClientTimer::linger:
        node = Node::linger;
        deadline_ms = now_ms + d_.linger_ms;
        return;
    }
  }

  // Worker::on_client_timer: every deadline of the connection, the waits' too.
  void fire() {
    Node fired = node;
    node = Node::none;
    ClientTimeout verdict = x.on_timeout(backend_holds);
    // A wait's deadline means the wait's verdict, and only it does.
    ASSERT_EQ(fired == Node::cache_wait, verdict == ClientTimeout::fetch_alone);
    ASSERT_EQ(fired == Node::queue_wait, verdict == ClientTimeout::answer_503);
    switch (verdict) {
      case ClientTimeout::fetch_alone:
        // The cache's owner is slow: fetch for ourselves (Worker::unpark_cache_waiter).
        arm(x.end_wait());
        to_backend();
        return;
      case ClientTimeout::answer_503:
        x.end_wait();  // Worker::unlink_queued, before the answer
        answer_locally(503);
        return;
      case ClientTimeout::answer_408:
        answer_locally(408);
        return;
      case ClientTimeout::close:
        close();
        return;
      case ClientTimeout::rearm:
        arm(ClientTimer::client);
        return;
    }
  }

  // Worker::on_client_recv: what the kernel holds comes in, up to the held bound.
  void deliver(uint32_t bytes) {
    if (closed || !x.receives() || x.input_held() || in_kernel.empty()) return;
    while (!in_kernel.empty() && held.size() < kHeldMax) {
      held.push_back(in_kernel.front());
      in_kernel.pop_front();
    }
    arm(x.on_bytes(bytes, out_bytes > kOutBoundBytes));
    pump();
  }

  // Worker::pump_client: begin held requests one at a time, in order (an exchange finishing
  // inside the loop only changes state; the loop picks it up, never recursing); then
  // Worker::update_client_recv: the input is held at its bound, and resumes below it.
  void pump() {
    if (pumping) return;
    pumping = true;
    pump_once();
    pumping = false;
    update_recv();
  }
  void update_recv() {
    if (closed || !x.receives()) return;
    bool full = held.size() >= kHeldMax || body_held;
    if (full != x.input_held()) arm(full ? x.on_input_held() : x.on_input_resumed());
    if (!full) deliver(200);  // a receive is posted: what the kernel holds comes in
  }
  void pump_once() {
    while (!closed) {
      if (x.state() == ClientState::idle) {
        if (held.empty() || !x.start_next(out_bytes > kOutBoundBytes)) return;
        arm(ClientTimer::header);
        continue;
      }
      if (x.state() != ClientState::reading_head || held.empty()) return;
      Request r = held.front();
      held.pop_front();
      current = r.id;
      arm(x.on_head(true, !r.with_body));
      if (r.cached) {
        out_bytes += r.answer_bytes;
        x.on_whole_response();
        events.push_back("200 #" + std::to_string(r.id));
        finish();
      } else {
        to_backend();
      }
      check();
    }
  }

  void to_backend() {
    backend_holds = true;
    upstream_deadline_ms = now_ms + d_.upstream_ms;
  }

  // Worker::local_response.
  void answer_locally(uint16_t status) {
    backend_holds = false;
    x.close_unless_request_complete();
    out_bytes += 150;
    x.on_whole_response();
    events.push_back(std::to_string(status) + " #" + std::to_string(current));
    finish();
  }

  // Worker::finish_exchange.
  void finish() {
    ClientExchange::Finish f = x.finish(out_bytes == 0);
    arm(f.timer);
    if (f.closing) {
      held.clear();  // pipelined requests after a closing answer are never forwarded
      body_held = false;
      if (f.begin_linger) linger();
      return;
    }
    pump();
  }

  void linger() {
    held.clear();  // Worker::begin_linger releases what was held; lingering discards input
    in_kernel.clear();
    if (!x.begin_linger()) {
      close();
      return;
    }
    lingering_shut = true;
    arm(ClientTimer::linger);
  }

  void close() {
    x.on_closed();
    closed = true;
    backend_holds = false;
    body_held = false;
    node = Node::none;
    events.push_back("close");
  }
};

using Events = std::vector<std::string>;

// ---- Deadlines and blame ----

TEST(ClientExchange, HeadNotCompleteInTimeIs408ThenLingerThenClose) {
  Reactor r;
  r.advance(999);
  EXPECT_TRUE(r.events.empty());
  r.advance(1);
  EXPECT_EQ(r.events, (Events{"408 #0"}));
  EXPECT_EQ(r.x.state(), ClientState::closing);
  r.client_reads(150);
  EXPECT_EQ(r.x.state(), ClientState::lingering);
  EXPECT_TRUE(r.lingering_shut);
  r.advance(2000);
  EXPECT_EQ(r.events, (Events{"408 #0", "close"}));
}

TEST(ClientExchange, HeadDeadlineCountsFromAcceptNotFromEachByte) {
  Reactor r;
  for (int i = 0; i < 9; ++i) {
    r.advance(100);
    r.x.on_bytes(1, false);  // a slowloris byte: no new deadline
    r.check();
  }
  r.advance(100);
  EXPECT_EQ(r.events, (Events{"408 #0"}));
}

TEST(ClientExchange, IdleKeepAliveConnectionClosesAfterIdleTimeoutWithout408) {
  Reactor r;
  r.receive({{1, true}});
  r.client_reads(100);
  EXPECT_EQ(r.x.state(), ClientState::idle);
  r.advance(4999);
  EXPECT_EQ(r.events, (Events{"200 #1"}));
  r.advance(1);
  EXPECT_EQ(r.events, (Events{"200 #1", "close"}));
}

TEST(ClientExchange, StalledBodyIs408EvenWhileABackendHoldsTheHead) {
  Reactor r;
  r.receive({{1, false, true}});
  ASSERT_TRUE(r.backend_holds);
  r.advance(1999);
  EXPECT_TRUE(r.events.empty());
  r.advance(1);
  EXPECT_EQ(r.events, (Events{"408 #1"}));
  EXPECT_FALSE(r.x.keep_alive());
}

TEST(ClientExchange, DribbledBodyIsCutLikeASilentOne) {
  Durations d;
  d.upstream_ms = 60000;
  Reactor r(d);
  r.receive({{1, false, true}});
  for (int i = 0; i < 3; ++i) {
    r.advance(500);
    r.receive_body(10, false);  // far below kClientProgressBytes
  }
  r.advance(500);
  EXPECT_EQ(r.events, (Events{"408 #1"}));
}

TEST(ClientExchange, BodyMakingProgressKeepsTheConnection) {
  Durations d;
  d.upstream_ms = 60000;
  Reactor r(d);
  r.receive({{1, false, true}});
  for (int i = 0; i < 10; ++i) {
    r.advance(1500);
    r.receive_body(kClientProgressBytes, false);
  }
  r.receive_body(10, true);
  r.backend_answers(200, 100);
  EXPECT_EQ(r.events, (Events{"200 #1"}));
  EXPECT_EQ(r.x.state(), ClientState::idle);
}

TEST(ClientExchange, CompleteRequestWaitingOnABackendIsTheBackendsFault504NeverA408) {
  // Equal timeouts: the client's fires first in the same millisecond, and must not blame it.
  Reactor r;
  r.receive({{1}});
  r.advance(2000);
  EXPECT_EQ(r.events, (Events{"504 #1"}));
  // A client timeout shorter than the upstream one: still only the upstream's.
  Durations d;
  d.client_ms = 500;
  d.upstream_ms = 3000;
  Reactor s(d);
  s.receive({{1}});
  s.advance(2999);
  EXPECT_TRUE(s.events.empty());
  s.advance(1);
  EXPECT_EQ(s.events, (Events{"504 #1"}));
  // 504 after a complete request keeps the connection.
  s.client_reads(150);
  EXPECT_EQ(s.x.state(), ClientState::idle);
}

TEST(ClientExchange, ClientThatDoesNotReadOurAnswerIsClosedNot408) {
  Durations d;
  d.upstream_ms = 60000;
  Reactor r(d);
  r.receive({{1}});
  r.backend_starts_answer(kOutBoundBytes);
  r.advance(2000);
  EXPECT_EQ(r.events, (Events{"close"}));
}

TEST(ClientExchange, SlowButSteadyReaderIsNotCut) {
  Durations d;
  d.upstream_ms = 60000;
  Reactor r(d);
  r.receive({{1, true, false, 10 * 1024 * 1024}});
  for (int i = 0; i < 20; ++i) {
    r.advance(1500);
    r.client_reads(512 * 1024);
  }
  EXPECT_EQ(r.out_bytes, 0u);
  EXPECT_EQ(r.x.state(), ClientState::idle);
  EXPECT_EQ(r.node, Reactor::Node::idle);
  EXPECT_EQ(r.events, (Events{"200 #1"}));
}

TEST(ClientExchange, CacheWaitRunsTheCacheDeadlineThenTheRequestGoesUpstream) {
  Durations d;
  d.client_ms = 100;  // shorter than the wait: it must not fire meanwhile
  Reactor r(d);
  r.receive({{1}});
  r.backend_holds = false;  // the cache glue parks it instead
  r.wait_for(ClientWait::cache);
  r.advance(499);
  EXPECT_TRUE(r.events.empty());
  r.advance(1);
  EXPECT_EQ(r.x.waiting(), ClientWait::none);
  EXPECT_TRUE(r.backend_holds);
  r.backend_answers(200, 10);
  EXPECT_EQ(r.events, (Events{"200 #1"}));
}

TEST(ClientExchange, QueueWaitTimeoutIs503AndBlamesNobodyOnTheClientSide) {
  Durations d;
  d.client_ms = 100;
  Reactor r(d);
  r.receive({{1}});
  r.backend_holds = false;
  r.wait_for(ClientWait::queue);
  r.advance(800);
  EXPECT_EQ(r.events, (Events{"503 #1"}));
  EXPECT_TRUE(r.x.keep_alive());
}

// ---- Pipelining and backpressure ----

TEST(ClientExchange, PipelinedRequestsAreAnsweredInOrderOneAtATime) {
  Reactor r;
  r.receive({{1}, {2, true}, {3}});
  EXPECT_EQ(r.current, 1);
  EXPECT_EQ(r.held.size(), 2u);
  r.backend_answers(200, 100);
  // #2 came from the cache at once; #3 went upstream.
  EXPECT_EQ(r.current, 3);
  r.backend_answers(201, 100);
  EXPECT_EQ(r.events, (Events{"200 #1", "200 #2", "201 #3"}));
  r.client_reads(300);
  EXPECT_EQ(r.node, Reactor::Node::idle);
}

TEST(ClientExchange, BackedUpAnswersHoldTheNextRequestUntilTheClientReads) {
  Reactor r;
  uint64_t big = kOutBoundBytes + 1;
  r.receive({{1, true, false, big}, {2, true, false, big}, {3, true}});
  // #1 answered; its answer is above the bound, so #2 waits, idle, under the send deadline.
  EXPECT_EQ(r.events, (Events{"200 #1"}));
  EXPECT_EQ(r.x.state(), ClientState::idle);
  EXPECT_EQ(r.node, Reactor::Node::client);
  r.client_reads(10);  // back under the bound: #2 begins, and backs the output up again
  EXPECT_EQ(r.events, (Events{"200 #1", "200 #2"}));
  r.client_reads(big);
  EXPECT_EQ(r.events, (Events{"200 #1", "200 #2", "200 #3"}));
  r.client_reads(UINT64_MAX);
  EXPECT_EQ(r.node, Reactor::Node::idle);
  // A client that stops reading with answers backed up is closed by the send deadline.
  r.receive({{4, true, false, 2 * big}, {5, true}});
  r.advance(2000);
  EXPECT_EQ(r.events.back(), "close");
  EXPECT_EQ(r.events.size(), 5u);
}

TEST(ClientExchange, BytesWhileBackedUpDoNotStartTheHeadDeadline) {
  Reactor r;
  r.receive({{1, true, false, kOutBoundBytes + 1}});
  r.receive({{2, true}});
  EXPECT_EQ(r.x.state(), ClientState::idle);
  EXPECT_EQ(r.node, Reactor::Node::client);
}

// ---- Drain, half-close, errors ----

TEST(ClientExchange, DrainLetsTheExchangeFinishThenClosesAndDropsPipelinedRequests) {
  Reactor r;
  r.receive({{1}, {2}});
  r.begin_drain();
  EXPECT_FALSE(r.closed);
  r.backend_answers(200, 100);
  EXPECT_EQ(r.x.state(), ClientState::closing);
  EXPECT_TRUE(r.held.empty());
  r.client_reads(100);
  EXPECT_EQ(r.x.state(), ClientState::lingering);
  r.client_closes(true);
  EXPECT_EQ(r.events, (Events{"200 #1", "close"}));
}

TEST(ClientExchange, DrainClosesIdleClientsAtOnceAndHeadsParsedDuringItAreNotKeptAlive) {
  Reactor r;
  r.receive({{1, true}});
  r.client_reads(100);
  r.begin_drain();
  EXPECT_EQ(r.events, (Events{"200 #1", "close"}));
  Reactor s;
  s.begin_drain();  // reading its first head: it may still send it
  s.receive({{1}});
  EXPECT_FALSE(s.x.keep_alive());
}

TEST(ClientExchange, DrainClosesAnIdleClientOnceItsLastAnswerIsSent) {
  Reactor r;
  r.receive({{1, true, false, 1000}});
  r.begin_drain();  // idle, but still sending: it may read its answer
  EXPECT_FALSE(r.closed);
  r.client_reads(400);
  EXPECT_FALSE(r.closed);
  r.client_reads(600);
  EXPECT_EQ(r.events, (Events{"200 #1", "close"}));
}

TEST(ClientExchange, DrainDeadlineClosesEveryConnectionWhateverItOwes) {
  Reactor busy;
  busy.receive({{1}});
  busy.begin_drain();
  busy.advance(1000);
  EXPECT_FALSE(busy.closed);
  busy.drain_tick(true);
  EXPECT_EQ(busy.events, (Events{"close"}));
  Reactor closing;
  closing.advance(1000);  // 408, not read yet
  closing.drain_tick(true);  // the deadline came before any tick: still closed
  EXPECT_EQ(closing.events, (Events{"408 #0", "close"}));
}

TEST(ClientExchange, AcceptedWhileDrainingIsServedOnceWithoutKeepAlive) {
  Reactor r({}, true);
  r.receive({{1, true}, {2, true}});
  EXPECT_EQ(r.events, (Events{"200 #1"}));
  EXPECT_EQ(r.x.state(), ClientState::closing);
  r.client_reads(100);
  EXPECT_EQ(r.x.state(), ClientState::lingering);
}

TEST(ClientExchange, HalfCloseAfterACompleteRequestStillGetsTheAnswer) {
  Reactor r;
  r.receive({{1}});
  r.client_closes(true);
  EXPECT_FALSE(r.closed);
  r.backend_answers(200, 100);
  EXPECT_EQ(r.x.state(), ClientState::closing);
  r.client_reads(100);  // no linger: the client already closed its side
  EXPECT_EQ(r.events, (Events{"200 #1", "close"}));
  EXPECT_FALSE(r.lingering_shut);
}

TEST(ClientExchange, HalfCloseMidBodyOrAnErrorCloses) {
  Reactor r;
  r.receive({{1, false, true}});
  r.client_closes(true);
  EXPECT_EQ(r.events, (Events{"close"}));
  Reactor s;
  s.receive({{1}});
  s.client_closes(false);
  EXPECT_EQ(s.events, (Events{"close"}));
  Reactor idle;
  idle.receive({{1, true}});
  idle.client_reads(100);
  idle.client_closes(true);
  EXPECT_EQ(idle.events, (Events{"200 #1", "close"}));
}

TEST(ClientExchange, EofBehindHeldBodyBytesWaitsForThemThenGetsTheAnswer) {
  // A client that sends its whole body and half-closes while the proxy still holds part of
  // it (the backend is slower): the EOF is recorded, the held body is forwarded, then the
  // client gets its answer as any half-closing client does.
  ClientExchange x;
  x.on_accept(false);
  x.on_head(true, false);
  EXPECT_FALSE(x.defer_input_end(false, true));  // an error: decided now
  EXPECT_TRUE(x.defer_input_end(true, true));
  EXPECT_TRUE(x.peer_eof());  // nothing more is received
  EXPECT_FALSE(x.due_input_end(true));
  x.on_body_complete();
  EXPECT_TRUE(x.due_input_end(true));  // (only pipelined bytes left)
  EXPECT_TRUE(x.on_input_ended(true));  // kept for its answer, not kept alive
  EXPECT_FALSE(x.keep_alive());
  EXPECT_FALSE(x.input_end_deferred());
  x.check_invariants();

  ClientExchange cut;  // the held bytes run out before the body ends: a cut upload
  cut.on_accept(false);
  cut.on_head(true, false);
  EXPECT_TRUE(cut.defer_input_end(true, true));
  EXPECT_TRUE(cut.due_input_end(false));
  EXPECT_FALSE(cut.on_input_ended(true));

  ClientExchange nothing_held;
  nothing_held.on_accept(false);
  nothing_held.on_head(true, false);
  EXPECT_FALSE(nothing_held.defer_input_end(true, false));
}

TEST(ClientExchange, BackendAnsweringBeforeTheBodyEndedClosesAfterTheAnswer) {
  Reactor r;
  r.receive({{1, false, true}, {2}});
  r.backend_answers(413, 100);
  EXPECT_EQ(r.x.state(), ClientState::closing);
  EXPECT_TRUE(r.held.empty());
}

TEST(ClientExchange, ClosingConnectionKeepsSendingWhenTheClientHalfCloses) {
  Reactor r;
  r.advance(1000);  // 408
  r.client_closes(true);
  EXPECT_FALSE(r.closed);
  r.client_reads(150);
  EXPECT_EQ(r.events, (Events{"408 #0", "close"}));
}

// ---- Input held (backpressure), refused bodies ----

TEST(ClientExchange, InputHeldStopsReceivingMovesNoDeadlineAndResumesInOrder) {
  Reactor r;
  uint64_t big = kOutBoundBytes + 1;
  std::vector<Request> many;
  for (int i = 1; i <= 7; ++i) many.push_back({i, true, false, big});
  r.receive(many);
  // #1 answered and backed up: #2..#5 held at the bound, #6 and #7 left in the kernel.
  EXPECT_EQ(r.events, (Events{"200 #1"}));
  EXPECT_TRUE(r.x.input_held());
  EXPECT_EQ(r.held.size(), kHeldMax);
  EXPECT_EQ(r.in_kernel.size(), 2u);
  EXPECT_EQ(r.node, Reactor::Node::client);  // the client owes reading our answers
  int64_t deadline = r.deadline_ms;
  r.advance(1000);
  r.receive({{8, true}});  // more sent meanwhile: not received, no deadline moves
  EXPECT_EQ(r.deadline_ms, deadline);
  EXPECT_EQ(r.in_kernel.size(), 3u);
  // The client reads: #2 begins, the input resumes, and everything is answered in order.
  for (int i = 0; i < 8; ++i) r.client_reads(big);
  EXPECT_EQ(r.events, (Events{"200 #1", "200 #2", "200 #3", "200 #4", "200 #5", "200 #6", "200 #7", "200 #8"}));
  EXPECT_FALSE(r.x.input_held());
  EXPECT_TRUE(r.in_kernel.empty());
  EXPECT_EQ(r.node, Reactor::Node::idle);
}

TEST(ClientExchange, ClientHeldForNotReadingIsClosedByTheSendDeadline) {
  Reactor r;
  std::vector<Request> many;
  for (int i = 1; i <= 6; ++i) many.push_back({i, true, false, kOutBoundBytes + 1});
  r.receive(many);
  ASSERT_TRUE(r.x.input_held());
  r.advance(1999);
  EXPECT_FALSE(r.closed);
  r.advance(1);
  EXPECT_EQ(r.events, (Events{"200 #1", "close"}));
}

// A backend that stops taking the body stalls the client through us (we stop receiving):
// the client makes no progress through no fault of its own. Its body deadline passes without
// a 408; the backend's deadline ends the exchange (504).
TEST(ClientExchange, BodyHeldForASlowBackendBlamesTheBackendNotTheClient) {
  Durations d;
  d.client_ms = 400;
  d.upstream_ms = 1500;
  Reactor r(d);
  r.receive({{1, false, true}});
  r.receive_body(100000, false);
  r.body_backs_up(true);
  ASSERT_TRUE(r.x.input_held());
  r.advance(1499);  // the client's 400 ms passed three times
  EXPECT_TRUE(r.events.empty());
  r.advance(1);
  EXPECT_EQ(r.events, (Events{"504 #1"}));
}

// Once the backend takes the body again, the client owes its progress again.
TEST(ClientExchange, BodyResumedThenStalledByTheClientIs408) {
  Durations d;
  d.client_ms = 400;
  d.upstream_ms = 5000;
  Reactor r(d);
  r.receive({{1, false, true}});
  r.receive_body(100000, false);
  r.body_backs_up(true);
  r.advance(1000);
  EXPECT_TRUE(r.events.empty());
  r.body_backs_up(false);
  r.advance(400);  // at most one more client deadline: the client sends nothing
  EXPECT_EQ(r.events, (Events{"408 #1"}));
}

TEST(ClientExchange, RefusedBodyIsAnsweredThenClosedAndTheRestOfTheInputDropped) {
  Reactor r;
  r.receive({{1, false, true}, {2}});
  r.receive_body(100, false);
  r.body_rejected(413);
  EXPECT_EQ(r.events, (Events{"413 #1"}));
  EXPECT_EQ(r.x.state(), ClientState::closing);
  EXPECT_FALSE(r.x.keep_alive());
  EXPECT_TRUE(r.held.empty());  // #2 is never forwarded
  r.client_reads(150);
  EXPECT_EQ(r.x.state(), ClientState::lingering);
  r.advance(2000);
  EXPECT_EQ(r.events, (Events{"413 #1", "close"}));
}

TEST(ClientExchange, BodyRefusedAfterTheAnswerStartedClosesAtOnce) {
  Durations d;
  d.upstream_ms = 60000;
  Reactor r(d);
  r.receive({{1, false, true}});
  r.backend_starts_answer(100);
  r.body_rejected(400);
  EXPECT_EQ(r.events, (Events{"close"}));
}

// ---- Any order of events keeps the invariants ----

TEST(ClientExchange, RandomWalksKeepTheInvariants) {
  std::mt19937 rng(1234);
  for (int walk = 0; walk < 300; ++walk) {
    Durations d;
    d.client_ms = 100 + rng() % 3000;
    d.upstream_ms = 100 + rng() % 3000;
    Reactor r(d);
    for (int step = 0; step < 200 && !r.closed; ++step) {
      switch (rng() % 12) {
        case 0:
          r.receive({{step, rng() % 2 == 0, rng() % 4 == 0, rng() % (2 * kOutBoundBytes)}});
          break;
        case 1:
          if (r.x.state() == ClientState::exchanging && !r.x.request_complete() && !r.body_held) {
            r.receive_body(static_cast<uint32_t>(rng() % 2048), rng() % 3 == 0);
          }
          break;
        case 2:
          if (r.backend_holds && r.x.waiting() == ClientWait::none) {
            if (r.x.response_started()) {
              r.client_reads(rng() % kOutBoundBytes);
            } else {
              r.backend_answers(200, rng() % (2 * kOutBoundBytes));
            }
          }
          break;
        case 3:
          r.client_reads(rng() % kOutBoundBytes);
          break;
        case 4:
          r.advance(static_cast<int64_t>(rng() % 2500));
          break;
        case 5:
          if (rng() % 8 == 0) r.client_closes(rng() % 2 == 0);
          break;
        case 6:
          if (rng() % 16 == 0) r.begin_drain();
          break;
        case 7:
          if (r.backend_holds && !r.x.response_started() && r.x.waiting() == ClientWait::none) {
            r.backend_starts_answer(rng() % kOutBoundBytes);
          }
          break;
        case 8:
          if (r.backend_holds && r.x.waiting() == ClientWait::none && !r.x.response_started() &&
              r.x.request_complete()) {
            r.backend_holds = false;
            r.wait_for(rng() % 2 ? ClientWait::cache : ClientWait::queue);
          }
          break;
        case 9:
          if (r.x.state() == ClientState::exchanging && !r.x.request_complete() && r.x.waiting() == ClientWait::none &&
              rng() % 4 == 0) {
            r.body_rejected(400);
          }
          break;
        case 10:
          if (r.draining && rng() % 8 == 0) r.drain_tick(rng() % 4 == 0);
          break;
        case 11:
          if (r.x.state() == ClientState::exchanging && r.backend_holds && !r.x.request_complete() &&
              r.x.waiting() == ClientWait::none && r.x.receives()) {
            r.body_backs_up(rng() % 2 == 0);
          }
          break;
      }
      r.check();
      if (::testing::Test::HasFatalFailure()) return;
    }
    // Whatever happened, time alone ends every connection: nothing waits forever.
    r.advance(1000000);
    EXPECT_TRUE(r.closed) << "walk " << walk << " state " << static_cast<int>(r.x.state());
  }
}

}  // namespace
}  // namespace ringmaster::proxy
