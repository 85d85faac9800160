// The Coordinator's event loop against the scripted FakeZk, with a clock the test moves
// (ARCHITECTURE.md §3, "The coordinator's seam"): each test turns the loop with run_once()
// and checks what a user of the proxy would see: the targets published to the reactors
// (the RouteBoard), the counts ZooKeeper ends with against the requests the "reactors" sent,
// how many ZooKeeper writes that took, and the cache-clear callback. Nothing sleeps.
#include "ringmaster/discovery/coordinator.h"
#include "ringmaster/metrics/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fake_zk.h"

namespace ringmaster::discovery {
namespace {

constexpr int64_t kAgentSession = 99;  // the agents' session: owner of the target nodes
constexpr uint32_t kFlushMs = 100;
constexpr uint32_t kSessionTimeoutMs = 4000;
const std::string kA = "127.0.0.1:9001";
const std::string kB = "127.0.0.1:9002";
const std::string kC = "127.0.0.1:9003";

std::string node(const std::string& name) { return "/targets/" + name; }

// One proxy's coordinator over a FakeZk, its reactors reduced to request counters.
struct Rig {
  // `tree`: another rig's (tree()), for a second proxy on the same ZooKeeper.
  explicit Rig(bool fleet = false, std::shared_ptr<FakeZkTree> tree = nullptr)
      : zk(tree ? std::move(tree) : std::make_shared<FakeZkTree>(), /*open=*/false) {
    options.zk = "fake:2181";
    options.flush_interval_ms = kFlushMs;
    options.session_timeout_ms = kSessionTimeoutMs;
    options.fleet = fleet;
    if (fleet) options.fleet_listen = base::HostPort{"127.0.0.1", 0};  // may lead
    options.on_content_version_change = [this](const std::string& path) { cleared.push_back(path); };
  }
  // Agents' nodes present before the proxy starts.
  void agents(const std::vector<std::string>& names, const std::string& count = "0") {
    for (const std::string& n : names) zk.put(node(n), count, kAgentSession);
  }
  // Agents' nodes, then the first turn of the loop: the session opens, everything is read.
  void start(const std::vector<std::string>& names, const std::string& count = "0") {
    agents(names, count);
    turn();
  }
  Coordinator& c() {
    if (!coordinator) {
      coordinator = std::make_unique<Coordinator>(options, &board, zk, [this] { return now; },
                                                  [this](int64_t ms) { now += ms; });
    }
    return *coordinator;
  }
  // One turn of the loop after `advance_ms` passed.
  void turn(int64_t advance_ms = 0) {
    now += advance_ms;
    c().run_once();
  }
  // The next flush interval, due and taken. A connection lost meanwhile is back first (the
  // real client reconnects within the session on its own).
  void flush() {
    if (zk.state() == SessionState::connecting && reconnects) zk.reconnect();
    turn(kFlushMs);
  }
  // The targets the reactors route to now, by name.
  std::vector<std::string> routed() {
    std::vector<std::string> out;
    auto snapshot = board.targets(source_key(options.targets_path));
    if (!snapshot) return out;
    for (const upstream::Target& t : snapshot->targets) out.push_back(t.state->name);
    return out;
  }
  uint64_t published_version() {
    auto snapshot = board.targets(source_key(options.targets_path));
    return snapshot ? snapshot->version : 0;
  }
  // The reactors send n requests to a routed target.
  void serve(const std::string& name, uint64_t n) {
    auto snapshot = board.targets(source_key(options.targets_path));
    ASSERT_TRUE(snapshot) << "nothing published";
    for (const upstream::Target& t : snapshot->targets) {
      if (t.state->name != name) continue;
      for (uint64_t i = 0; i < n; ++i) t.state->slots[0].count_request();
      served[name] += n;
      return;
    }
    FAIL() << name << " is not routed";
  }
  uint64_t count(const std::string& name) { return std::stoull(zk.data(node(name))); }
  // ZooKeeper writes (set, multi) in the log since step `from`.
  size_t writes_since(size_t from) {
    size_t n = 0;
    for (const std::string& line : zk.log()) {
      size_t step = std::stoul(line);
      if (step >= from && (line.find(" set ") != std::string::npos || line.find(" multi ") != std::string::npos)) ++n;
    }
    return n;
  }

  int64_t now = 1'000'000;
  FakeZk zk;
  upstream::RouteBoard board{1};
  CoordinatorOptions options;
  std::vector<std::string> cleared;
  std::map<std::string, uint64_t> served;
  std::unique_ptr<Coordinator> coordinator;
  bool reconnects = true;  // flush() reconnects a lost connection
};

using Names = std::vector<std::string>;

// ---- Session open, targets appearing and leaving ---------------------------------------

TEST(CoordinatorLoop, OpensTheSessionReadsTheTargetsAndPublishesThem) {
  Rig rig;
  rig.agents({kA, kB}, "5");
  EXPECT_FALSE(rig.c().wait_ready(0));
  rig.turn();
  EXPECT_EQ(rig.zk.sessions_opened(), 1);
  EXPECT_EQ(rig.routed(), (Names{kA, kB})) << rig.zk.log_text();
  EXPECT_TRUE(rig.c().wait_ready(0));
  // The loop waits for events only until the next flush is due.
  EXPECT_LE(rig.zk.waits().front(), static_cast<int64_t>(kFlushMs));
}

TEST(CoordinatorLoop, TargetsAppearingAndLeavingChangeThePublishedSnapshot) {
  Rig rig;
  rig.start({kA});
  ASSERT_EQ(rig.routed(), (Names{kA}));
  uint64_t v1 = rig.published_version();

  rig.zk.put(node(kB), "0", kAgentSession);  // the child watch fires
  rig.turn();
  EXPECT_EQ(rig.routed(), (Names{kA, kB})) << rig.zk.log_text();
  uint64_t v2 = rig.published_version();
  EXPECT_GT(v2, v1);

  rig.zk.erase(node(kA));  // the watch was re-armed by the last read
  rig.turn();
  EXPECT_EQ(rig.routed(), (Names{kB})) << rig.zk.log_text();
  EXPECT_GT(rig.published_version(), v2);

  // Nothing changed: flush intervals publish nothing new (no snapshot churn when idle).
  uint64_t v3 = rig.published_version();
  for (int i = 0; i < 5; ++i) rig.flush();
  EXPECT_EQ(rig.published_version(), v3);
}

TEST(CoordinatorLoop, EveryTargetVanishingIsBelievedOnlyAfterOneSessionTimeout) {
  Rig rig;
  rig.start({kA, kB});
  ASSERT_EQ(rig.routed(), (Names{kA, kB}));
  rig.zk.erase(node(kA));
  rig.zk.erase(node(kB));
  rig.turn();
  EXPECT_EQ(rig.routed(), (Names{kA, kB})) << "an empty list is not believed at once";
  rig.turn(kSessionTimeoutMs - 1);
  EXPECT_EQ(rig.routed(), (Names{kA, kB}));
  rig.turn(1);
  EXPECT_EQ(rig.routed(), Names{});
}

// A new target whose first count read fails without the connection dropping (an operation
// timeout: no reconnect, so no full read follows) is read again on the next turn of the
// loop and routed then, not a refresh interval (fleet off) or a children list (fleet) later.
TEST(CoordinatorLoop, ANewTargetWhoseFirstReadFailsIsReadAgainOnTheNextTurn) {
  for (bool fleet : {false, true}) {
    SCOPED_TRACE(fleet ? "fleet" : "fleet off");
    Rig rig(fleet);
    rig.start({kA});
    for (int i = 0; i < 3; ++i) rig.flush();
    ASSERT_EQ(rig.routed(), (Names{kA}));
    rig.zk.fail_next(FakeZk::Op::get, node(kB), {ZkCode::operation_timeout});
    rig.zk.put(node(kB), "5", kAgentSession);  // the child watch fires
    rig.turn();
    EXPECT_EQ(rig.routed(), (Names{kA})) << "its count is unknown yet";
    rig.turn(1);  // 1 ms later: no flush, no refresh, no children list due
    EXPECT_EQ(rig.routed(), (Names{kA, kB})) << rig.zk.log_text();
    rig.serve(kB, 3);
    for (int i = 0; i < 3; ++i) rig.flush();
    EXPECT_EQ(rig.count(kB), 8u) << rig.zk.log_text();
  }
}

// ---- Flush cadence: requests never cause ZooKeeper calls, flush intervals do -------------

TEST(CoordinatorLoop, RequestsBetweenFlushesBecomeOneWriteBatch) {
  Rig rig;
  rig.start({kA, kB}, "10");
  ASSERT_EQ(rig.routed(), (Names{kA, kB}));
  rig.flush();  // whatever the first interval does
  size_t before = rig.zk.steps();
  // 1,000 requests over 10 turns of the loop inside one flush interval: no ZooKeeper call.
  for (int i = 0; i < 10; ++i) {
    rig.serve(kA, 60);
    rig.serve(kB, 40);
    rig.turn(kFlushMs / 20);
  }
  EXPECT_EQ(rig.zk.steps(), before) << rig.zk.log_text();
  // The interval ends: one write for both targets (one multi), and the counts are exact.
  rig.turn(kFlushMs);
  EXPECT_EQ(rig.writes_since(before), 1u) << rig.zk.log_text();
  EXPECT_EQ(rig.count(kA), 10u + 600u);
  EXPECT_EQ(rig.count(kB), 10u + 400u);
  // Idle intervals write nothing.
  size_t idle = rig.zk.steps();
  for (int i = 0; i < 5; ++i) rig.flush();
  EXPECT_EQ(rig.writes_since(idle), 0u) << rig.zk.log_text();
}

TEST(CoordinatorLoop, OtherProxiesIncrementsAreLearntEveryRefreshInterval) {
  Rig rig;
  rig.start({kA}, "10");
  rig.zk.put(node(kA), "50");  // another proxy wrote
  rig.turn(rig.options.refresh_interval_ms);
  rig.serve(kA, 3);
  rig.flush();
  EXPECT_EQ(rig.count(kA), 53u) << rig.zk.log_text();
}

// ---- Session loss and expiry ------------------------------------------------------------

TEST(CoordinatorLoop, NothingIsWrittenWhileDisconnectedAndEverythingOnceAfter) {
  Rig rig;
  rig.start({kA}, "0");
  rig.serve(kA, 4);
  rig.flush();
  ASSERT_EQ(rig.count(kA), 4u);
  rig.zk.disconnect();
  rig.reconnects = false;
  size_t before = rig.zk.steps();
  for (int i = 0; i < 10; ++i) {
    rig.serve(kA, 5);
    rig.flush();
  }
  EXPECT_EQ(rig.writes_since(before), 0u) << rig.zk.log_text();
  EXPECT_EQ(rig.routed(), (Names{kA})) << "routing goes on with the last snapshot";
  rig.zk.reconnect();
  rig.flush();
  EXPECT_EQ(rig.count(kA), 54u) << rig.zk.log_text();
  EXPECT_EQ(rig.writes_since(before), 1u);
}

TEST(CoordinatorLoop, AnExpiredSessionIsReopenedAndEverythingReadAgainWithCountsExact) {
  Rig rig;
  rig.start({kA, kB}, "0");
  rig.serve(kA, 10);
  rig.flush();
  ASSERT_EQ(rig.count(kA), 10u);
  // Requests keep coming while the session expires; meanwhile the agents' nodes change
  // (kA re-created lower by its agent, kB gone, kC new): no watch of the old session fires.
  rig.serve(kA, 7);
  rig.serve(kB, 2);
  rig.zk.expire_session();
  rig.zk.recreate(node(kA), "3", kAgentSession);
  rig.zk.erase(node(kB));
  rig.zk.put(node(kC), "0", kAgentSession);
  rig.turn();
  EXPECT_EQ(rig.zk.session_id(), 2);
  EXPECT_EQ(rig.routed(), (Names{kA, kC})) << rig.zk.log_text();
  for (int i = 0; i < 3; ++i) rig.flush();
  // kA: restored to the floor this proxy saw (10), plus the 7 unwritten; never 3 + 17.
  EXPECT_EQ(rig.count(kA), 17u) << rig.zk.log_text();
  // The new session's watches work.
  rig.zk.erase(node(kC));
  rig.turn();
  EXPECT_EQ(rig.routed(), (Names{kA}));
}

// One sample of the proxy's /metrics ("name{labels}"); -1 when absent.
int64_t metric(Rig& rig, const std::string& sample) {
  metrics::Registry registry;
  rig.c().register_metrics(registry);
  const std::string text = registry.render();
  size_t at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + sample.size() + 2));
}

// Requests served over 1.2 s of flush intervals (a target joining, a count refresh among
// them) while one
// operation of the loop meets a session expiry or a connection loss (applied or not): the
// loop reopens or retries, reads again, and ZooKeeper ends with every request once (never
// twice; never fewer unless the proxy reports an ambiguous write).
bool ambiguous_writes(Rig& rig) { return metric(rig, "ringmaster_zk_ambiguous_writes_total") != 0; }

TEST(CoordinatorLoop, AFaultAtEachStepOfTheLoopLosesNoRequestAndCountsNoneTwice) {
  auto scenario = [](Rig& rig) {
    rig.serve(kA, 10);
    rig.serve(kB, 20);
    for (int i = 0; i < 12; ++i) {
      if (i == 4) rig.serve(kA, 5);
      if (i == 6) rig.zk.put(node(kC), "0", kAgentSession);  // a target joins
      if (i == 8) rig.serve(kC, 7);
      rig.flush();
    }
  };
  Rig dry;
  dry.start({kA, kB}, "0");
  size_t start = dry.zk.steps();
  scenario(dry);
  size_t steps = dry.zk.steps() - start;
  ASSERT_GE(steps, 4u) << dry.zk.log_text();
  ASSERT_EQ(dry.count(kA), 15u);
  ASSERT_EQ(dry.count(kC), 7u);
  for (ZkCode code : {ZkCode::session_expired, ZkCode::connection_loss}) {
    for (bool applied : {false, true}) {
      if (code == ZkCode::session_expired && applied) continue;  // in flight: CONNECTIONLOSS
      for (size_t k = 0; k < steps; ++k) {
        Rig rig;
        rig.agents({kA, kB}, "0");
        rig.turn();
        rig.zk.fail_at(rig.zk.steps() + k, {code, applied, /*disconnects=*/code == ZkCode::connection_loss});
        scenario(rig);
        for (int i = 0; i < 3; ++i) rig.flush();
        std::string row = std::string(zk_code_name(code)) + (applied ? " applied" : "") + " at step +" +
                          std::to_string(k) + "\n" + rig.zk.log_text();
        EXPECT_LE(rig.count(kA), 15u) << row;
        EXPECT_LE(rig.count(kB), 20u) << row;
        EXPECT_LE(rig.count(kC), 7u) << row;
        if (!ambiguous_writes(rig)) {
          EXPECT_EQ(rig.count(kA), 15u) << row;
          EXPECT_EQ(rig.count(kB), 20u) << row;
          EXPECT_EQ(rig.count(kC), 7u) << row;
        }
        EXPECT_EQ(rig.routed(), (Names{kA, kB, kC})) << row;
      }
    }
  }
}

// ---- Watches re-armed through faults ----------------------------------------------------

// A children watch fires; the read that re-arms it meets a connection loss (at its first
// or second operation), and then the full read after the reconnect meets another one at
// each of its steps in turn (or none). The client reconnects each time within the session.
// Once connected the loop reads everything, re-arms the watch, and a later change is seen.
TEST(CoordinatorLoop, AConnectionLossWhileReArmingAWatchIsRepairedByAFullRead) {
  for (size_t k = 0; k < 2; ++k) {
    for (int j = -1; j < 6; ++j) {
      Rig rig;
      rig.agents({kA}, "0");
      rig.turn();
      size_t first = rig.zk.steps() + k;
      size_t second = SIZE_MAX;  // set at the first reconnect
      rig.zk.before_each([&](FakeZk& zk, size_t step, FakeZk::Op, const std::string&) {
        if (step == first || step == second) zk.disconnect();
      });
      // Turns of the loop, the client reconnecting whenever it lost the connection.
      auto settle = [&] {
        for (int i = 0; i < 10; ++i) {
          if (rig.zk.state() == SessionState::connecting) {
            rig.zk.reconnect();
            if (second == SIZE_MAX && j >= 0) second = rig.zk.steps() + static_cast<size_t>(j);
          }
          rig.flush();
        }
      };
      rig.zk.put(node(kB), "0", kAgentSession);
      rig.turn();
      settle();
      std::string row = "lost at re-arm step " + std::to_string(k) + ", then at full-read step " +
                        std::to_string(j) + "\n" + rig.zk.log_text();
      EXPECT_EQ(rig.routed(), (Names{kA, kB})) << row;
      rig.zk.put(node(kC), "0", kAgentSession);
      settle();
      EXPECT_EQ(rig.routed(), (Names{kA, kB, kC})) << row;
      EXPECT_EQ(rig.zk.sessions_opened(), 1) << "a connection loss keeps the session";
    }
  }
}

// ---- Reloads --------------------------------------------------------------------------

std::vector<std::string> routed_at(Rig& rig, const std::string& targets_path) {
  std::vector<std::string> out;
  if (auto snapshot = rig.board.targets(source_key(targets_path))) {
    for (const upstream::Target& t : snapshot->targets) out.push_back(t.state->name);
  }
  return out;
}

TEST(CoordinatorLoop, AReloadAddsASourceAtOnceAndARemovedOneStillWritesWhatItCounted) {
  Rig rig;
  rig.agents({kA});
  rig.zk.put("/svc/targets/" + kB, "4", kAgentSession);
  rig.turn();
  ASSERT_EQ(rig.routed(), (Names{kA}));
  SourceOptions flags;
  flags.targets_path = "/targets";
  flags.cache_version_path = "/cacheAge";
  SourceOptions svc;
  svc.targets_path = "/svc/targets";
  rig.c().set_sources({flags, svc});
  rig.turn();
  EXPECT_EQ(routed_at(rig, "/svc/targets"), (Names{kB})) << rig.zk.log_text();
  // Requests to the service's target, then a reload without it: it stops routing at once,
  // and what it counted is still written (its key is the node's full path).
  auto snapshot = rig.board.targets(source_key("/svc/targets"));
  ASSERT_TRUE(snapshot);
  for (int i = 0; i < 6; ++i) snapshot->targets[0].state->slots[0].count_request();
  rig.c().set_sources({flags});
  rig.turn();
  EXPECT_EQ(routed_at(rig, "/svc/targets"), Names{});
  EXPECT_EQ(rig.routed(), (Names{kA}));
  for (int i = 0; i < 3; ++i) rig.flush();
  EXPECT_EQ(rig.zk.data("/svc/targets/" + kB), "10") << rig.zk.log_text();
  // Its watch may still fire; nothing routes there again.
  rig.zk.put("/svc/targets/" + kC, "0", kAgentSession);
  rig.flush();
  EXPECT_EQ(routed_at(rig, "/svc/targets"), Names{});
}

// ---- Readiness -----------------------------------------------------------------------------

// Three sources (the flags' and two services'), /svc/b/targets unreadable (an ACL) while
// `*unreadable` holds.
void three_sources(Rig& rig, const bool* unreadable) {
  SourceOptions flags;
  flags.targets_path = "/targets";
  SourceOptions a;
  a.targets_path = "/svc/a/targets";
  SourceOptions b;
  b.targets_path = "/svc/b/targets";
  rig.options.sources = {flags, a, b};
  rig.agents({kA});
  rig.zk.put("/svc/a/targets/" + kB, "0", kAgentSession);
  rig.zk.put("/svc/b/targets/" + kC, "0", kAgentSession);
  rig.zk.before_each([unreadable](FakeZk& zk, size_t, FakeZk::Op op, const std::string& path) {
    if (*unreadable && op == FakeZk::Op::get_children && path == "/svc/b/targets") {
      zk.fail_next(op, path, {ZkCode::no_auth});
    }
  });
}

TEST(CoordinatorLoop, ReadyOnlyOnceEverySourceWasReadWithItsTargetsCounts) {
  Rig rig;
  bool unreadable = true;
  three_sources(rig, &unreadable);
  // The first count read of /svc/a's target gets no answer.
  rig.zk.fail_next(FakeZk::Op::get, "/svc/a/targets/" + kB, {ZkCode::operation_timeout});
  rig.turn();
  // The flags' source is read and routes; the others are not ready, so neither is the proxy.
  EXPECT_EQ(rig.routed(), (Names{kA})) << rig.zk.log_text();
  EXPECT_EQ(routed_at(rig, "/svc/a/targets"), Names{});
  EXPECT_FALSE(rig.c().wait_ready(0));
  rig.turn(kFlushMs);  // /svc/a's count is read again: it routes; /svc/b still unreadable
  EXPECT_EQ(routed_at(rig, "/svc/a/targets"), (Names{kB}));
  EXPECT_FALSE(rig.c().wait_ready(0));
  unreadable = false;
  rig.turn(kFlushMs);
  EXPECT_EQ(routed_at(rig, "/svc/b/targets"), (Names{kC})) << rig.zk.log_text();
  EXPECT_TRUE(rig.c().wait_ready(0));
}

TEST(CoordinatorLoop, AnEmptyOrMissingTargetsPathIsAnAnswerAndReady) {
  Rig rig;
  SourceOptions flags;
  flags.targets_path = "/targets";
  SourceOptions none;
  none.targets_path = "/svc/none/targets";  // not in ZooKeeper at all
  rig.options.sources = {flags, none};
  rig.start({kA});
  EXPECT_TRUE(rig.c().wait_ready(0)) << rig.zk.log_text();
  EXPECT_EQ(routed_at(rig, "/svc/none/targets"), Names{});
}

TEST(CoordinatorLoop, AnUnreadableSourceHoldsReadinessBackOneSessionTimeoutThenWarns) {
  Rig rig;
  bool unreadable = true;
  three_sources(rig, &unreadable);
  testing::internal::CaptureStderr();
  rig.turn();
  while (rig.now + kFlushMs < 1'000'000 + kSessionTimeoutMs) {
    rig.turn(kFlushMs);
    ASSERT_FALSE(rig.c().wait_ready(0)) << "after " << rig.now - 1'000'000 << " ms";
  }
  rig.turn(kFlushMs);
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(rig.c().wait_ready(0));
  EXPECT_NE(log.find("ready without a first read of /svc/b/targets after 4000 ms"), std::string::npos) << log;
  // The others route; the unreadable one is read as soon as it can be.
  EXPECT_EQ(routed_at(rig, "/svc/a/targets"), (Names{kB}));
  unreadable = false;
  rig.turn(kFlushMs);
  EXPECT_EQ(routed_at(rig, "/svc/b/targets"), (Names{kC})) << rig.zk.log_text();
}

// The names a service's current routing table sends `host` to.
Names service_routes(Rig& rig, const std::string& host) {
  Names out;
  const upstream::RoutingTable* table = rig.board.cell()->load();
  const upstream::RoutedService* service = table == nullptr ? nullptr : table->route(host, "/");
  if (service == nullptr) return out;
  for (const upstream::Target& t : service->targets->targets) out.push_back(t.state->name);
  return out;
}

// A reload moving a service to another targets path: the coordinator learns the sources
// first, main publishes the configuration after. Until the new path is read, the service
// keeps routing to the old path's targets, and what they count is written.
TEST(CoordinatorLoop, AReloadToAnotherTargetsPathRoutesTheOldTargetsUntilTheNewPathWasRead) {
  Rig rig;
  bool unreadable = true;
  three_sources(rig, &unreadable);  // /svc/b/targets unreadable for now
  SourceOptions flags = rig.options.sources[0];
  SourceOptions old_path = rig.options.sources[1];
  SourceOptions new_path = rig.options.sources[2];
  rig.options.sources = {flags, old_path};
  auto api = std::make_shared<upstream::ServiceRuntime>("api", source_key(old_path.targets_path), 1);
  rig.board.set_services({{api, {"api.test"}, "/"}}, -1);
  rig.turn();
  ASSERT_EQ(service_routes(rig, "api.test"), (Names{kB})) << rig.zk.log_text();
  auto serve = [&rig](uint64_t n) {
    const upstream::RoutingTable* table = rig.board.cell()->load();
    for (uint64_t i = 0; i < n; ++i) table->route("api.test", "/")->targets->targets[0].state->slots[0].count_request();
  };
  serve(5);
  rig.c().set_sources({flags, new_path});
  rig.turn();
  // The table in use still reads the old path: its targets stay; the new one publishes nothing.
  EXPECT_EQ(service_routes(rig, "api.test"), (Names{kB}));
  EXPECT_FALSE(rig.board.targets(source_key(new_path.targets_path)));
  serve(2);
  // The configuration reading the new path, not read yet: the old targets go on routing.
  auto moved = std::make_shared<upstream::ServiceRuntime>("api", source_key(new_path.targets_path), 1);
  rig.board.set_services({{moved, {"api.test"}, "/"}}, -1);
  EXPECT_EQ(service_routes(rig, "api.test"), (Names{kB}));
  serve(1);
  for (int i = 0; i < 3; ++i) rig.flush();
  EXPECT_EQ(service_routes(rig, "api.test"), (Names{kB}));
  EXPECT_EQ(rig.zk.data("/svc/a/targets/" + kB), "8") << rig.zk.log_text();
  // Read at last: the new path's targets route, and nothing routes to the old ones.
  unreadable = false;
  rig.flush();
  EXPECT_EQ(service_routes(rig, "api.test"), (Names{kC})) << rig.zk.log_text();
  EXPECT_FALSE(rig.board.targets(source_key(old_path.targets_path)));
}

// ---- A foreign registry ------------------------------------------------------------------

TEST(CoordinatorLoop, AForeignRegistryRoutesWhatItsRegistrationsSayAndCountsInNodesOfOurOwn) {
  Rig rig;
  rig.options.targets_path = "/nerve/web";
  rig.options.targets_format = "nerve";
  rig.options.cache_version_path = "";
  const std::string counts = rig.options.counts_path + "/";
  auto nerve = [](int port, const char* extra) {
    return std::string(R"({"host":"127.0.0.1","port":)") + std::to_string(port) + R"(,"name":"i")" + extra + "}";
  };
  rig.zk.put("/nerve/web/i-1_0000000001", nerve(9001, ""), kAgentSession);
  rig.zk.put("/nerve/web/i-2_0000000002", nerve(9002, ""), kAgentSession);
  rig.turn();
  EXPECT_EQ(rig.routed(), (Names{kA, kB})) << rig.zk.log_text();
  rig.serve(kA, 5);
  rig.flush();
  EXPECT_EQ(rig.zk.data(counts + kA), "5") << rig.zk.log_text();
  EXPECT_EQ(rig.zk.stat(counts + kA).ephemeral_owner, 0) << "the count node is ours, persistent";
  // A registration changed in place (its data watch): weight 0 is "do not route".
  rig.zk.put("/nerve/web/i-2_0000000002", nerve(9002, R"(,"weight":0)"));
  rig.turn();
  EXPECT_EQ(rig.routed(), (Names{kA})) << rig.zk.log_text();
  // One that leaves stops routing; what it counted stays in our node.
  rig.serve(kA, 2);
  rig.zk.erase("/nerve/web/i-1_0000000001");
  rig.turn();
  EXPECT_EQ(rig.routed(), Names{});
  for (int i = 0; i < 3; ++i) rig.flush();
  EXPECT_EQ(rig.zk.data(counts + kA), "7") << rig.zk.log_text();
  // A malformed one is skipped, never fatal; a good one next to it routes.
  rig.zk.put("/nerve/web/bad_0000000003", "{not json", kAgentSession);
  rig.zk.put("/nerve/web/i-3_0000000004", nerve(9003, ""), kAgentSession);
  rig.turn();
  EXPECT_EQ(rig.routed(), (Names{kC})) << rig.zk.log_text();
}

// ---- The content version node -----------------------------------------------------------

TEST(CoordinatorLoop, AContentVersionChangeClearsTheCacheOnce) {
  Rig rig;
  rig.zk.put("/cacheAge", "v1");
  rig.start({kA});
  EXPECT_TRUE(rig.cleared.empty()) << "the first value read is no change";
  rig.zk.put("/cacheAge", "v2");
  rig.turn();
  EXPECT_EQ(rig.cleared, (Names{"/cacheAge"}));
  for (int i = 0; i < 5; ++i) rig.flush();
  EXPECT_EQ(rig.cleared.size(), 1u);
  // The same value written again is no change.
  rig.zk.put("/cacheAge", "v2");
  rig.turn();
  EXPECT_EQ(rig.cleared.size(), 1u);
  // Changed while the session was expired: seen once by the new session's read; unchanged
  // across another expiry: not seen.
  rig.zk.expire_session();
  rig.zk.put("/cacheAge", "v3");
  rig.turn();
  EXPECT_EQ(rig.cleared.size(), 2u) << rig.zk.log_text();
  rig.zk.expire_session();
  rig.turn();
  EXPECT_EQ(rig.cleared.size(), 2u) << rig.zk.log_text();
  // The watch is armed in the third session.
  rig.zk.put("/cacheAge", "v4");
  rig.turn();
  EXPECT_EQ(rig.cleared.size(), 3u);
}

TEST(CoordinatorLoop, AContentVersionNodeCreatedLaterIsAChange) {
  Rig rig;
  rig.start({kA});
  EXPECT_TRUE(rig.cleared.empty());
  rig.zk.put("/cacheAge", "first-deploy");  // the exists() watch fires
  rig.turn();
  EXPECT_EQ(rig.cleared, (Names{"/cacheAge"})) << rig.zk.log_text();
}

// ---- Fleet leadership -------------------------------------------------------------------

std::vector<std::string> members(const FakeZk& zk) { return zk.children("/ringmaster/proxies"); }

TEST(CoordinatorLoop, AFleetOfOneLeadsWritesOneMultiPerIntervalAndLeadsAgainAfterExpiry) {
  Rig rig(/*fleet=*/true);
  rig.start({kA, kB}, "0");
  rig.turn();  // the children watch brings our own member node: we lead
  ASSERT_EQ(members(rig.zk).size(), 1u) << rig.zk.log_text();
  rig.flush();  // /targets shows it from the next publish
  EXPECT_NE(rig.c().targets_json().find("\"role\":\"leader\""), std::string::npos) << rig.c().targets_json();
  size_t before = rig.zk.steps();
  rig.serve(kA, 30);
  rig.serve(kB, 12);
  rig.flush();
  EXPECT_EQ(rig.writes_since(before), 1u) << rig.zk.log_text();
  EXPECT_EQ(rig.count(kA), 30u);
  EXPECT_EQ(rig.count(kB), 12u);
  EXPECT_TRUE(rig.zk.has("/ringmaster/ledger"));

  // Expiry: our member node goes with the session; the loop steps down, reopens, joins
  // again with a node of the new session, leads again, and writes what came meanwhile once.
  rig.serve(kA, 5);
  rig.zk.expire_session();
  for (int i = 0; i < 4; ++i) rig.flush();
  std::vector<std::string> now = members(rig.zk);
  ASSERT_EQ(now.size(), 1u) << rig.zk.log_text();
  EXPECT_EQ(rig.zk.stat("/ringmaster/proxies/" + now[0]).ephemeral_owner, rig.zk.session_id());
  EXPECT_NE(rig.c().targets_json().find("\"role\":\"leader\""), std::string::npos);
  EXPECT_EQ(rig.count(kA), 35u) << rig.zk.log_text();
  EXPECT_EQ(rig.count(kB), 12u);
}

// A leader whose session expires no longer names itself as the leader: until its new member
// node comes back in a children list, it has no leader to report to, so it never POSTs its
// batch to its own listener (which answers 409: not leading) nor logs that its "leader does
// not answer"; the requests counted meanwhile are written once.
TEST(CoordinatorLoop, AFormerLeaderAfterItsExpiryNeverReportsToItself) {
  Rig rig(/*fleet=*/true);
  rig.start({kA}, "0");
  for (int i = 0; i < 3; ++i) rig.flush();
  ASSERT_NE(rig.c().targets_json().find("\"role\":\"leader\""), std::string::npos) << rig.c().targets_json();
  rig.serve(kA, 7);
  rig.flush();
  ASSERT_EQ(rig.count(kA), 7u) << rig.zk.log_text();

  rig.serve(kA, 4);
  rig.zk.expire_session();
  testing::internal::CaptureStderr();
  for (int i = 0; i < 6; ++i) rig.flush();
  std::string logged = testing::internal::GetCapturedStderr();
  EXPECT_EQ(logged.find("does not answer"), std::string::npos) << logged;
  EXPECT_EQ(metric(rig, "ringmaster_fleet_reports_total{result=\"error\"}"), 0) << logged;
  EXPECT_EQ(metric(rig, "ringmaster_fleet_reports_total{result=\"ok\"}"), 0);
  EXPECT_NE(rig.c().targets_json().find("\"role\":\"leader\""), std::string::npos) << rig.c().targets_json();
  EXPECT_EQ(rig.count(kA), 11u) << rig.zk.log_text();
}

bool leads(Rig& rig) { return rig.c().targets_json().find("\"role\":\"leader\"") != std::string::npos; }

// Two proxies of one fleet on one ZooKeeper (two FakeZk sessions of one tree, their fleet
// link real on loopback), with kA and kB registered at 0. settle() starts them and turns
// them until one leads (false if none or both do); leader() and follower() are then known.
struct FleetOfTwo {
  Rig a{/*fleet=*/true};
  Rig b{/*fleet=*/true, a.zk.tree()};
  FleetOfTwo() { a.agents({kA, kB}, "0"); }
  void both(int intervals) {
    for (int i = 0; i < intervals; ++i) {
      a.flush();
      b.flush();
    }
  }
  bool settle() {
    a.turn();
    b.turn();
    both(3);
    return leads(a) != leads(b);
  }
  Rig& leader() { return leads(a) ? a : b; }
  Rig& follower() { return leads(a) ? b : a; }
};

// Two proxies on one ZooKeeper (two FakeZk sessions of one tree), their fleet link real on
// loopback: one leads and writes for both, the follower reports its batches to it and sends
// ZooKeeper no write; the leader's session expires, the follower takes over, and every
// request of both is counted once.
TEST(CoordinatorLoop, AFleetOfTwoWritesThroughItsLeaderAndSurvivesTheLeadersExpiry) {
  FleetOfTwo fleet;
  Rig& a = fleet.a;
  Rig& b = fleet.b;
  auto both = [&](int intervals) { fleet.both(intervals); };
  ASSERT_TRUE(fleet.settle()) << a.c().targets_json() << b.c().targets_json();
  ASSERT_EQ(members(a.zk).size(), 2u) << a.zk.log_text();
  Rig& leader = fleet.leader();
  Rig& follower = fleet.follower();
  size_t follower_from = follower.zk.steps();
  leader.serve(kA, 20);
  follower.serve(kA, 5);
  follower.serve(kB, 9);
  both(10);
  EXPECT_EQ(a.count(kA), 25u) << leader.zk.log_text();
  EXPECT_EQ(a.count(kB), 9u);
  EXPECT_EQ(follower.writes_since(follower_from), 0u) << follower.zk.log_text();

  leader.serve(kB, 4);
  follower.serve(kA, 6);
  leader.zk.expire_session();
  both(30);
  EXPECT_TRUE(leads(follower)) << follower.c().targets_json();
  EXPECT_FALSE(leads(leader)) << leader.c().targets_json();
  EXPECT_EQ(members(a.zk).size(), 2u);
  EXPECT_EQ(a.count(kA), 31u) << follower.zk.log_text() << leader.zk.log_text();
  EXPECT_EQ(a.count(kB), 13u);
}


// The leader dies with a follower's batch received but not yet written (its process gone,
// its session not yet expired, so it still looks like the leader): the follower's reports
// fail, and after kFallbackMs of silence it writes its counts directly, the unacknowledged
// batch included, once.
TEST(CoordinatorLoop, AFollowerWhoseLeaderFellSilentWritesItsOwnCountsDirectly) {
  FleetOfTwo fleet;
  ASSERT_TRUE(fleet.settle());
  Rig& leader = fleet.leader();
  Rig& follower = fleet.follower();
  follower.serve(kA, 8);
  follower.flush();  // reported: the leader holds the batch, unwritten
  leader.coordinator.reset();  // gone without a word (its listener closes)
  size_t from = follower.zk.steps();
  for (int i = 0; i < 30; ++i) follower.flush();  // 3 s of silence
  EXPECT_EQ(follower.count(kA), 8u) << follower.zk.log_text();
  EXPECT_GE(follower.writes_since(from), 1u);
  follower.serve(kB, 3);
  for (int i = 0; i < 30; ++i) follower.flush();
  EXPECT_EQ(follower.count(kA), 8u);
  EXPECT_EQ(follower.count(kB), 3u) << follower.zk.log_text();
}

// ---- The end ------------------------------------------------------------------------------
// A follower stopping while its leader holds its last batch unacknowledged (the leader's
// loop does not turn): the follower waits for the acknowledgement on its loop's clock and
// pause, not the system's, then writes the batch itself; the ledger keeps it counted once.
TEST(CoordinatorLoop, AFollowersLastFlushWaitsOnTheLoopsClockThenWritesItsBatchOnce) {
  FleetOfTwo fleet;
  ASSERT_TRUE(fleet.settle());
  Rig& leader = fleet.leader();
  Rig& follower = fleet.follower();
  follower.serve(kA, 4);
  int64_t before = follower.now;
  follower.c().run_final();
  EXPECT_GE(follower.now - before, 3000) << "waited on the loop's clock";
  EXPECT_LE(follower.now - before, 3000 + kFlushMs);
  EXPECT_EQ(leader.count(kA), 4u) << follower.zk.log_text();
  for (int i = 0; i < 5; ++i) leader.flush();
  EXPECT_EQ(leader.count(kA), 4u) << leader.zk.log_text();
}


TEST(CoordinatorLoop, TheLastFlushWritesWhatIsLeftAndClosesTheSession) {
  Rig rig;
  rig.start({kA}, "0");
  rig.serve(kA, 9);
  rig.turn(kFlushMs / 2);  // not due yet
  EXPECT_EQ(rig.count(kA), 0u);
  rig.c().run_final();
  EXPECT_EQ(rig.count(kA), 9u);
  EXPECT_FALSE(rig.zk.is_open());
}

}  // namespace
}  // namespace ringmaster::discovery
