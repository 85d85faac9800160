// The upstream exchange machine (src/proxy/upstream_exchange.h) driven by a fake clock and
// fake I/O: every upstream deadline and who is blamed when it fires (a failover, 502, 504,
// nobody), failover on a failed connect, which requests a connection that broke may resend,
// and when a connection goes back to the idle pool. The Reactor below does what
// upstream_conn.cc does with the machine's steps (set the one timer node, resend, answer,
// pool, close), with time as a number and the backend as a script; check_invariants() runs
// after every step.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "proxy/upstream_exchange.h"

namespace ringmaster::proxy {
namespace {

// The request and the response as the reactor would answer the machine's questions.
struct Ask {
  RequestFacts request{true, false, true};  // a GET without a body, to a known target
  bool close_delimited = false;             // the response's body ends with the connection
  mutable int facts_asked = 0;
  mutable int ends_asked = 0;
  RequestFacts facts() const {
    ++facts_asked;
    return request;
  }
  bool ends_body() const {
    ++ends_asked;
    return close_delimited;
  }
};

// A reusable ending: keep-alive, both sides complete, nothing left over, a pool of 8.
EndedExchange clean_end() {
  EndedExchange e;
  e.backend_keep_alive = true;
  e.request_complete = true;
  e.idle_cap = 8;
  return e;
}

class Reactor {
 public:
  // The service's deadlines: connect-timeout-ms, --upstream-timeout-ms, --upstream-idle-timeout-ms.
  int64_t connect_ms = 1000;
  int64_t upstream_ms = 2000;
  int64_t idle_ms = 5000;

  UpstreamExchange x;
  Ask ask;
  int64_t now_ms = 0;
  // What a user (or the reactor's bookkeeping) would see: "failover", "502", "504",
  // "cut 502", "resend same", "resend next", "complete", "pool", "close".
  std::vector<std::string> events;
  bool closed = false;
  bool pooled = false;
  bool holding = false;  // a request is on the connection (the reactor's u->client)

  // The connection's one timer node (the connect's linked timeout counts as one here).
  enum class Node { none, connect, response, idle };
  Node node = Node::none;
  int64_t deadline_ms = 0;

  void open() {
    set(x.on_open());
    attach();
  }
  void attach() {
    pooled = false;
    holding = true;
    set(x.on_attach());
  }
  void connect(bool ok) { carry(x.on_connect(ok)); }
  void sent() { set(x.on_sent()); }
  void bytes() { set(x.on_bytes()); }
  void head() {
    bytes();
    EXPECT_EQ(x.on_response_head(), ClientEvent::response_head);
  }
  void done(const EndedExchange& e, bool room = true) {
    carry(x.on_response_done(e, [&] {
      ++room_asked;
      return room;
    }));
  }
  void peer_ends(bool clean, bool held = false) {
    if (!x.attached()) {
      carry(x.on_idle_input());
      return;
    }
    carry(x.on_input_ended(clean, held, ask));
  }
  void held_parsed() { carry(x.on_held_parsed(ask)); }
  void bad_response() { carry(x.on_bad_response()); }

  void advance(int64_t ms) {
    now_ms += ms;
    if (node == Node::none || now_ms < deadline_ms || closed) return;
    Node fired = node;
    node = Node::none;
    switch (fired) {
      case Node::connect:
        connect(false);  // the linked timeout cancels the connect
        break;
      case Node::response:
        carry(x.on_timeout());
        break;
      case Node::idle:
        carry(x.on_idle_expired());
        break;
      case Node::none:
        break;
    }
  }

  void check() const {
    x.check_invariants();
    ASSERT_EQ(x.attached(), holding);
    if (closed) {
      ASSERT_EQ(x.state(), UpstreamState::closed);
      ASSERT_EQ(node, Node::none);
      return;
    }
    // The node runs the deadline the state calls for.
    switch (x.state()) {
      case UpstreamState::connecting:
        ASSERT_EQ(node, Node::connect);
        break;
      case UpstreamState::busy:
        ASSERT_EQ(node, x.peer_ended() ? Node::none : Node::response);
        break;
      case UpstreamState::idle:
        ASSERT_TRUE(pooled);
        ASSERT_EQ(node, Node::idle);
        break;
      case UpstreamState::closed:
        FAIL() << "closed without the reactor closing it";
    }
  }

  std::string last() const { return events.empty() ? "" : events.back(); }
  int room_asked = 0;

 private:
  void set(UpstreamTimer t) {
    switch (t) {
      case UpstreamTimer::keep:
        return;
      case UpstreamTimer::none:
        node = Node::none;
        return;
      case UpstreamTimer::connect:
        arm(Node::connect, connect_ms);
        return;
      case UpstreamTimer::response:
        arm(Node::response, upstream_ms);
        return;
      case UpstreamTimer::idle:
        arm(Node::idle, idle_ms);
        return;
    }
  }
  void arm(Node n, int64_t ms) {
    node = n;
    deadline_ms = now_ms + ms;
  }

  void close() {
    holding = false;
    x.on_detach();
    x.on_closed();
    closed = true;
    pooled = false;
    node = Node::none;
  }

  void carry(const UpstreamStep& s) {
    // By UpstreamAction, in its order.
    static const char* const kNames[] = {"go",   "hold",     "failover", "resend same", "resend next",
                                         "fail", "complete", "pool",     "close"};
    set(s.timer);
    if (s.action == UpstreamAction::go || s.action == UpstreamAction::hold) return;
    if (s.action == UpstreamAction::fail) {
      EXPECT_TRUE(s.client == ClientEvent::answer_error || s.client == ClientEvent::cut_off);
      events.push_back((s.client == ClientEvent::cut_off ? "cut " : "") + std::to_string(s.status));
    } else {
      EXPECT_EQ(s.client, s.action == UpstreamAction::complete ? ClientEvent::response_complete : ClientEvent::none);
      events.push_back(kNames[static_cast<int>(s.action)]);
    }
    if (s.action == UpstreamAction::pool) {
      holding = false;
      pooled = true;
      return;
    }
    close();
  }
};

// A connection with a request on it, connected.
Reactor connected() {
  Reactor r;
  r.open();
  r.connect(true);
  return r;
}

// A connection that served one request and went back to the pool.
Reactor pooled_connection() {
  Reactor r = connected();
  r.sent();
  r.head();
  EXPECT_EQ(r.x.on_response_end(), ClientEvent::response_complete);  // by its framing
  r.done(clean_end());
  return r;
}

// The deadline running fires `in_ms` from now, not a millisecond earlier, with `event`.
void expect_fires(Reactor& r, int64_t in_ms, const std::string& event) {
  size_t before = r.events.size();
  r.advance(in_ms - 1);
  EXPECT_EQ(r.events.size(), before);
  r.advance(1);
  EXPECT_EQ(r.last(), event);
  EXPECT_TRUE(r.closed);
  r.check();
}

// ---- Deadlines and blame ----

TEST(UpstreamExchange, ConnectTimeoutFailsOverToTheNextTargetNotA504) {
  Reactor r;
  r.open();
  EXPECT_EQ(r.node, Reactor::Node::connect);
  expect_fires(r, 1000, "failover");
}

TEST(UpstreamExchange, RefusedConnectFailsOverWithTheRequestUntouched) {
  Reactor r;
  r.open();
  r.connect(false);
  EXPECT_EQ(r.last(), "failover");
  EXPECT_EQ(r.ask.facts_asked, 0);  // nothing was sent: no resend rule applies
  r.check();
}

TEST(UpstreamExchange, ConnectedRequestRunsTheUpstreamDeadlineFromTheConnect) {
  Reactor r;
  r.open();
  r.advance(600);
  r.connect(true);
  EXPECT_EQ(r.x.state(), UpstreamState::busy);
  EXPECT_EQ(r.node, Reactor::Node::response);
  EXPECT_EQ(r.deadline_ms, 2600);
  r.check();
}

TEST(UpstreamExchange, SilentBackendHoldingTheRequestIsAGatewayTimeout504) {
  Reactor r = connected();
  r.sent();
  expect_fires(r, 2000, "504");
}

TEST(UpstreamExchange, EverySendAndEveryByteIsProgressThatMovesTheDeadline) {
  Reactor r = connected();
  r.advance(1500);
  r.sent();  // the backend reads a slow upload
  r.advance(1500);
  r.bytes();  // a first byte, no whole head yet
  r.advance(1500);
  EXPECT_TRUE(r.events.empty());
  r.advance(500);
  EXPECT_EQ(r.last(), "504");  // still nothing of the answer went out: a clean 504
}

TEST(UpstreamExchange, BackendStallingMidAnswerCutsTheClientOff) {
  Reactor r = connected();
  r.sent();
  r.head();
  expect_fires(r, 2000, "cut 504");
}

TEST(UpstreamExchange, ResponseThatDoesNotParseIsABadGateway) {
  Reactor r = connected();
  r.bytes();
  r.bad_response();
  EXPECT_EQ(r.last(), "502");

  Reactor after_head = connected();
  after_head.head();
  after_head.bad_response();  // a broken chunk
  EXPECT_EQ(after_head.last(), "cut 502");
}

// ---- A connection that broke with the request on it ----

// A request on a connection from the pool that the backend closes (`clean`) or resets
// before any byte of an answer: what becomes of it.
std::string reused_then_broken(RequestFacts request, bool clean) {
  Reactor r = pooled_connection();
  r.ask.request = request;
  r.attach();
  EXPECT_TRUE(r.x.reused());
  r.sent();
  r.peer_ends(clean);
  r.check();
  return r.last();
}

constexpr RequestFacts kGet{true, false, true};
constexpr RequestFacts kPost{false, true, true};

TEST(UpstreamExchange, ReusedConnectionClosedByThePeerResendsAnIdempotentRequestToTheSameTarget) {
  // The keep-alive race: the backend closed it just as we reused it.
  EXPECT_EQ(reused_then_broken(kGet, true), "resend same");
  EXPECT_EQ(reused_then_broken(kGet, false), "resend same");
}

TEST(UpstreamExchange, NonIdempotentRequestOnAReusedConnectionIsNeverSentTwice) {
  EXPECT_EQ(reused_then_broken(kPost, true), "502");
  EXPECT_EQ(reused_then_broken(RequestFacts{false, false, true}, true), "502");  // a bodiless POST
}

TEST(UpstreamExchange, RequestWithABodyIsNotResentItsBodyIsGone) {
  EXPECT_EQ(reused_then_broken(RequestFacts{true, true, true}, false), "502");  // a PUT
}

TEST(UpstreamExchange, ReusedConnectionToATargetThatLeftGoesToTheNextTarget) {
  EXPECT_EQ(reused_then_broken(RequestFacts{true, false, false}, true), "resend next");
}

TEST(UpstreamExchange, FreshConnectionDyingWithTheRequestEjectsTheTargetAndTriesTheNext) {
  Reactor r = connected();
  r.sent();
  r.peer_ends(false);
  EXPECT_EQ(r.last(), "resend next");

  Reactor post = connected();  // ... but only a request that may be sent twice
  post.ask.request = kPost;
  post.sent();
  post.peer_ends(true);
  EXPECT_EQ(post.last(), "502");
}

TEST(UpstreamExchange, NoResendOnceTheBackendSentAByte) {
  Reactor r = pooled_connection();
  r.attach();
  r.bytes();
  r.peer_ends(true);
  EXPECT_EQ(r.last(), "502");
  EXPECT_EQ(r.ask.facts_asked, 0);
}

TEST(UpstreamExchange, CloseDelimitedBodyEndsWithTheConnectionAnErrorCutsIt) {
  Reactor r = connected();
  r.ask.close_delimited = true;
  r.head();
  r.peer_ends(true);
  EXPECT_EQ(r.last(), "complete");

  Reactor reset = connected();
  reset.ask.close_delimited = true;
  reset.head();
  reset.peer_ends(false);  // a reset is not an end of message
  EXPECT_EQ(reset.last(), "cut 502");
  EXPECT_EQ(reset.ask.ends_asked, 0);

  Reactor short_body = connected();  // a Content-Length body cut short
  short_body.head();
  short_body.peer_ends(true);
  EXPECT_EQ(short_body.last(), "cut 502");
}

TEST(UpstreamExchange, EndBehindBytesHeldForASlowClientWaitsForThemWithoutTheUpstreamDeadline) {
  Reactor r = connected();
  r.ask.close_delimited = true;
  r.head();
  r.peer_ends(true, /*held=*/true);
  EXPECT_TRUE(r.events.empty());
  EXPECT_TRUE(r.x.peer_ended());
  EXPECT_EQ(r.node, Reactor::Node::none);  // the backend owes nothing more: no 504
  r.check();
  r.advance(100000);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.ask.ends_asked, 0);
  r.held_parsed();
  EXPECT_EQ(r.last(), "complete");
  r.check();
}

TEST(UpstreamExchange, HeldEndIsNeverReusedEvenIfTheResponseEndedByItsFraming) {
  Reactor r = connected();
  r.head();
  r.peer_ends(true, /*held=*/true);
  r.done(clean_end());
  EXPECT_EQ(r.last(), "close");
  EXPECT_EQ(r.room_asked, 0);
}

// ---- The idle pool ----

TEST(UpstreamExchange, CleanKeepAliveExchangeGoesBackToThePoolAndIsReused) {
  Reactor r = pooled_connection();
  EXPECT_EQ(r.last(), "pool");
  EXPECT_EQ(r.x.state(), UpstreamState::idle);
  EXPECT_EQ(r.node, Reactor::Node::idle);
  r.check();
  r.advance(4000);
  r.attach();  // reused: busy at once, the response deadline runs from now
  EXPECT_EQ(r.x.state(), UpstreamState::busy);
  EXPECT_EQ(r.node, Reactor::Node::response);
  EXPECT_EQ(r.deadline_ms, 6000);
  r.check();
}

TEST(UpstreamExchange, PoolReturnNeedsEveryCleanFact) {
  auto ends_in = [](const EndedExchange& e, bool room = true) {
    Reactor r = connected();
    r.head();
    r.done(e, room);
    return r.last();
  };
  EXPECT_EQ(ends_in(clean_end()), "pool");
  EXPECT_EQ(ends_in(clean_end(), false), "close");  // the target's pool is full, or it left
  EndedExchange e = clean_end();
  e.backend_keep_alive = false;
  EXPECT_EQ(ends_in(e), "close");
  e = clean_end();
  e.request_complete = false;  // answered before the upload ended
  EXPECT_EQ(ends_in(e), "close");
  e = clean_end();
  e.request_bytes_left = true;
  EXPECT_EQ(ends_in(e), "close");
  e = clean_end();
  e.response_bytes_left = true;  // bytes past the response: framing disagreement
  EXPECT_EQ(ends_in(e), "close");
  e = clean_end();
  e.draining = true;
  EXPECT_EQ(ends_in(e), "close");
  e = clean_end();
  e.idle_cap = 0;
  EXPECT_EQ(ends_in(e), "close");
}

TEST(UpstreamExchange, PoolRoomIsAskedOnlyForAReusableConnection) {
  Reactor r = connected();
  r.head();
  EndedExchange e = clean_end();
  e.backend_keep_alive = false;
  r.done(e);
  EXPECT_EQ(r.room_asked, 0);
}

TEST(UpstreamExchange, IdleConnectionClosesAtItsIdleDeadlineBlamingNobody) {
  Reactor r = pooled_connection();
  expect_fires(r, 5000, "close");
}

TEST(UpstreamExchange, IdleConnectionTheBackendClosesOrWritesToIsClosed) {
  Reactor r = pooled_connection();
  r.peer_ends(true);
  EXPECT_EQ(r.last(), "close");
  r.check();
}

// ---- Random walks ----

TEST(UpstreamExchange, RandomWalksKeepTheInvariantsAndEndEveryConnection) {
  std::mt19937 rng(4321);
  std::set<std::string> seen;
  for (int walk = 0; walk < 500; ++walk) {
    Reactor r;
    r.connect_ms = 50 + rng() % 2000;
    r.upstream_ms = 50 + rng() % 3000;
    r.idle_ms = 50 + rng() % 5000;
    r.ask.request = RequestFacts{rng() % 2 == 0, rng() % 4 == 0, rng() % 8 != 0};
    r.ask.close_delimited = rng() % 3 == 0;
    r.open();
    for (int step = 0; step < 200 && !r.closed; ++step) {
      UpstreamState s = r.x.state();
      bool busy = s == UpstreamState::busy && r.x.attached();
      switch (rng() % 9) {
        case 0:
          if (s == UpstreamState::connecting) r.connect(rng() % 4 != 0);
          break;
        case 1:
          if (busy && !r.x.got_bytes()) r.sent();
          break;
        case 2:
          if (busy && !r.x.peer_ended()) {
            if (!r.x.response_started() && rng() % 2 == 0) {
              r.head();
            } else {
              r.bytes();
            }
          }
          break;
        case 3:
          if (busy && r.x.response_started()) {
            EndedExchange e = clean_end();
            e.backend_keep_alive = rng() % 4 != 0;
            e.response_bytes_left = rng() % 8 == 0;
            r.done(e, rng() % 4 != 0);
          }
          break;
        case 4:
          r.advance(static_cast<int64_t>(rng() % 2500));
          break;
        case 5:
          if (s == UpstreamState::idle && rng() % 2 == 0) r.attach();
          break;
        case 6:
          if (rng() % 4 == 0 && (busy || s == UpstreamState::idle)) {
            r.peer_ends(rng() % 2 == 0, rng() % 2 == 0);
          }
          break;
        case 7:
          if (busy && r.x.peer_ended() && rng() % 2 == 0) r.held_parsed();
          break;
        case 8:
          if (busy && r.x.got_bytes() && rng() % 8 == 0) r.bad_response();
          break;
      }
      r.check();
      if (::testing::Test::HasFatalFailure()) return;
    }
    // A held end is carried out once the client took the bytes; then time alone ends every
    // connection: nothing waits forever.
    if (!r.closed && r.x.peer_ended()) r.held_parsed();
    r.advance(1000000);
    r.advance(1000000);
    EXPECT_TRUE(r.closed) << "walk " << walk << " state " << static_cast<int>(r.x.state());
    seen.insert(r.events.begin(), r.events.end());
  }
  // The walks reached every outcome.
  EXPECT_EQ(seen, (std::set<std::string>{"failover", "502", "504", "cut 502", "cut 504", "resend same", "resend next",
                                         "complete", "pool", "close"}));
}

}  // namespace
}  // namespace ringmaster::proxy
