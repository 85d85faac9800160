// The coordinator's count decisions (CountWriter, FleetWriter) against the scripted FakeZk:
// tables of faults at every step of a flush. Each row ends by checking what ZooKeeper holds:
// every count node equals its start plus every request counted for it (ours and other
// writers'), never more (no double count) and, unless the row says a write was ambiguous,
// never less.
#include "discovery/count_writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "discovery/fleet_writer.h"
#include "fake_zk.h"

namespace ringmaster::discovery {
namespace {

std::optional<base::SocketAddress> fake_resolve(const base::HostPort& hp) {
  return base::resolve(base::HostPort{"127.0.0.1", hp.port});
}

constexpr int64_t kAgentSession = 99;  // the agents' session: owner of the target nodes
// Flushes a row may take to write everything after its fault (each flush that meets a fault
// stops; the next one goes on).
constexpr int kSettleFlushesMax = 8;

std::string target_path(const std::string& name) { return "/targets/" + name; }

struct Counters {
  metrics::Counter reads, writes, multis, other_ops, bad_version, errors, flush_batches, flushed_requests,
      ambiguous_writes;
  ZkOpCounters pointers() {
    return {&reads, &writes, &multis, &other_ops, &bad_version, &errors, &flush_batches, &flushed_requests,
            &ambiguous_writes};
  }
};

// One proxy's count decisions over a shared FakeZk (the coordinator minus its thread).
struct Proxy {
  explicit Proxy(FakeZk& z, bool fleet = false) : zk(z) {
    book.set_balance_on_own_requests(fleet);
  }
  FakeZk& zk;
  TargetBook book{1, fake_resolve};
  Counters counters;
  CountWriter writer{zk, book, target_path, [](const std::string&) { return false; }, counters.pointers()};
  std::map<std::string, upstream::TargetState*> states;

  // A children list with these names (the coordinator reads what set_members asks for).
  void join(const std::vector<std::string>& names) {
    for (const std::string& name : book.set_members(names, 0)) writer.read_target(name);
    auto snapshot = book.build_snapshot(1);
    for (const auto& t : snapshot->targets) states[t.state->name] = t.state.get();
  }
  // The reactors send `n` requests to the target.
  void serve(const std::string& name, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) states.at(name)->slots[0].count_request();
  }
  // Flush intervals until nothing is left to write, as the coordinator's loop does: after a
  // session expiry, a new session and every count read again.
  void settle() {
    for (int i = 0; i < kSettleFlushesMax; ++i) {
      if (zk.state() == SessionState::expired) {
        zk.reopen();
        writer.refresh_counts();
      }
      if (book.plan_flush().empty() && writer.uncertain_writes() == 0) return;
      writer.flush();
    }
  }
};

uint64_t count_of(const FakeZk& zk, const std::string& name) { return std::stoull(zk.data(target_path(name))); }

// ---- settle_uncertain_write: the decision alone ----------------------------------------

TEST(SettleUncertainWrite, DecidesFromTheReadBack) {
  // Planned: 105 at version 3 of incarnation 7.
  const CountWrite w{"a:1", 105, 3, 5, 0, 7};
  struct Row {
    const char* what;
    ZkCode rc;
    std::string data;
    int32_t version;
    int64_t czxid;
    Settlement want;
  };
  const Row rows[] = {
      {"version unchanged: did not land", ZkCode::ok, "100", 3, 7, Settlement::not_applied},
      {"one up with our value: landed", ZkCode::ok, "105", 4, 7, Settlement::applied},
      // Another writer's value one version up: that one step was theirs, so ours did not land.
      {"one up with another value", ZkCode::ok, "110", 4, 7, Settlement::not_applied},
      {"two up", ZkCode::ok, "115", 5, 7, Settlement::ambiguous},
      {"re-created, version equal", ZkCode::ok, "100", 3, 8, Settlement::ambiguous},
      {"re-created, version 0", ZkCode::ok, "0", 0, 8, Settlement::ambiguous},
      {"node gone", ZkCode::no_node, "", 0, 0, Settlement::gone},
      {"read cut off too", ZkCode::connection_loss, "", 0, 0, Settlement::unknown},
      {"session expired", ZkCode::session_expired, "", 0, 0, Settlement::unknown},
  };
  for (const Row& r : rows) {
    ZkStat stat;
    stat.version = r.version;
    stat.czxid = r.czxid;
    EXPECT_STREQ(settlement_name(settle_uncertain_write(w, r.rc, r.data, stat)), settlement_name(r.want)) << r.what;
  }
  // Planned against an unknown incarnation (czxid 0): any node is "the same".
  ZkStat stat;
  stat.version = 4;
  stat.czxid = 9;
  EXPECT_EQ(settle_uncertain_write(CountWrite{"a:1", 105, 3, 5, 0, 0}, ZkCode::ok, "105", stat), Settlement::applied);
}

// ---- The fake itself -------------------------------------------------------------------

TEST(FakeZk, KeepsZooKeeperVersionsAndAnswers) {
  FakeZk zk;
  EXPECT_EQ(zk.create("/a/b", "x", CreateMode::persistent, nullptr), ZkCode::no_node);
  EXPECT_EQ(zk.ensure_path("/a/b"), ZkCode::ok);
  EXPECT_EQ(zk.create("/a/b", "x", CreateMode::persistent, nullptr), ZkCode::node_exists);
  ZkStat stat;
  EXPECT_EQ(zk.set("/a/b", "1", 0, &stat), ZkCode::ok);
  EXPECT_EQ(stat.version, 1);
  EXPECT_EQ(zk.set("/a/b", "2", 0, &stat), ZkCode::bad_version);
  // A multi is all or nothing; the failing index is reported.
  zk.put("/a/c", "0");
  size_t failed = 0;
  EXPECT_EQ(zk.multi_set({{"/a/c", "5", 0}, {"/a/b", "5", 0}}, nullptr, &failed), ZkCode::bad_version);
  EXPECT_EQ(failed, 1u);
  EXPECT_EQ(zk.data("/a/c"), "0");
  // Sequential names, children, cversion.
  std::string created;
  EXPECT_EQ(zk.create("/a/m-", "", CreateMode::ephemeral_sequential, &created), ZkCode::ok);
  EXPECT_EQ(created, "/a/m-0000000002");
  std::vector<std::string> children;
  EXPECT_EQ(zk.get_children("/a", &children, true, &stat), ZkCode::ok);
  EXPECT_EQ(children, (std::vector<std::string>{"b", "c", "m-0000000002"}));
  EXPECT_EQ(stat.cversion, 3);
  // Expiry takes our ephemeral node; the dead session hears of it only that it expired
  // (its watches fire for no one).
  zk.expire_session();
  EXPECT_FALSE(zk.has(created));
  EXPECT_EQ(zk.get("/a/b", nullptr, nullptr, false), ZkCode::session_expired);
  auto e = zk.wait_event(0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, ZkEvent::Type::session);
  EXPECT_EQ(e->state, SessionState::expired);
  EXPECT_FALSE(zk.wait_event(0));
  zk.reopen();
  EXPECT_TRUE(zk.connected());
  // A scripted CONNECTIONLOSS after the write applied.
  zk.fail_at(zk.steps(), {ZkCode::connection_loss, true});
  EXPECT_EQ(zk.set("/a/b", "9", 1, nullptr), ZkCode::connection_loss);
  EXPECT_EQ(zk.data("/a/b"), "9");
}

// ---- CONNECTIONLOSS and session expiry at each step of a flush -------------------------

struct Scenario {
  const char* name;
  std::map<std::string, uint64_t> start;     // count nodes before
  std::map<std::string, uint64_t> requests;  // what our reactors send
  // Another proxy adds this to the target just before our first multi (its write wins).
  std::string raced_target;
  uint64_t raced_by = 0;
  // A write of ours cut off and read back after the other proxy's may be counted as
  // applied (Settlement::ambiguous): the row then checks "never more", not "exactly".
  bool may_be_ambiguous = false;
};

const Scenario kScenarios[] = {
    {"one target: a versioned set", {{"a:1", 100}}, {{"a:1", 5}}, "", 0, false},
    {"three targets: one multi", {{"a:1", 100}, {"b:2", 0}, {"c:3", 7}}, {{"a:1", 5}, {"b:2", 7}, {"c:3", 1}}, "", 0,
     false},
    {"multi loses a race: per-target sets", {{"a:1", 100}, {"b:2", 0}, {"c:3", 7}},
     {{"a:1", 5}, {"b:2", 7}, {"c:3", 1}}, "b:2", 10, false},
};

struct Rig {
  std::unique_ptr<FakeZk> zk = std::make_unique<FakeZk>();
  std::unique_ptr<Proxy> proxy = std::make_unique<Proxy>(*zk);
  size_t first_step = 0;  // the first step of the flush (after the set-up reads)
};

Rig start(const Scenario& s) {
  Rig run;
  std::vector<std::string> names;
  for (const auto& [name, count] : s.start) {
    run.zk->put(target_path(name), std::to_string(count), kAgentSession);
    names.push_back(name);
  }
  run.proxy->join(names);
  for (const auto& [name, n] : s.requests) run.proxy->serve(name, n);
  if (!s.raced_target.empty()) {
    auto raced = std::make_shared<bool>(false);
    std::string path = target_path(s.raced_target);
    uint64_t by = s.raced_by;
    run.zk->before_each([raced, path, by](FakeZk& zk, size_t, FakeZk::Op op, const std::string&) {
      if (op != FakeZk::Op::multi || *raced) return;
      *raced = true;
      zk.put(path, std::to_string(std::stoull(zk.data(path)) + by));
    });
  }
  run.first_step = run.zk->steps();
  return run;
}

// Checks the row's counts: exact, or (ambiguous writes) never more and short by no more than
// the requests of the writes reported ambiguous.
void expect_counts(const Scenario& s, const Rig& run, const std::string& row) {
  uint64_t short_total = 0;
  for (const auto& [name, start] : s.start) {
    uint64_t want = start + s.requests.at(name) + (name == s.raced_target ? s.raced_by : 0);
    uint64_t got = count_of(*run.zk, name);
    EXPECT_LE(got, want) << row << " " << name << " counted twice\n" << run.zk->log_text();
    if (got < want) short_total += want - got;
  }
  const Counters& c = run.proxy->counters;
  if (!s.may_be_ambiguous || c.ambiguous_writes.get() == 0) {
    EXPECT_EQ(short_total, 0u) << row << " lost requests\n" << run.zk->log_text();
  }
  EXPECT_EQ(c.ambiguous_writes.get() == 0, short_total == 0) << row << "\n" << run.zk->log_text();
  EXPECT_EQ(run.proxy->book.unflushed_total(), 0u) << row;
  EXPECT_EQ(run.proxy->writer.uncertain_writes(), 0u) << row;
}

TEST(CountWriter, ConnectionLossAtEachStepNeverLosesOrDoubleCounts) {
  for (const Scenario& s : kScenarios) {
    Rig clean = start(s);
    clean.proxy->settle();
    expect_counts(s, clean, std::string(s.name) + ", no fault");
    size_t steps = clean.zk->steps() - clean.first_step;
    ASSERT_GT(steps, 0u);
    for (size_t k = 0; k <= steps; ++k) {
      for (bool applied : {false, true}) {
        Rig run = start(s);
        run.zk->fail_at(run.first_step + k, {ZkCode::connection_loss, applied});
        run.proxy->settle();
        std::string row = std::string(s.name) + ", CONNECTIONLOSS at step " + std::to_string(k) +
                          (applied ? " (applied)" : " (not applied)");
        expect_counts(s, run, row);
      }
    }
  }
}

TEST(CountWriter, SessionExpiryAtEachStepNeverLosesOrDoubleCounts) {
  for (const Scenario& s : kScenarios) {
    Rig clean = start(s);
    clean.proxy->settle();
    size_t steps = clean.zk->steps() - clean.first_step;
    for (size_t k = 0; k <= steps; ++k) {
      Rig run = start(s);
      run.zk->fail_at(run.first_step + k, {ZkCode::session_expired, false});
      run.proxy->settle();
      expect_counts(s, run, std::string(s.name) + ", session expired at step " + std::to_string(k));
      if (k < steps) {
        EXPECT_EQ(run.zk->session_id(), 2) << s.name << " " << k;  // the fault was met
      }
    }
  }
}

TEST(CountWriter, ConnectionLossWhileAnotherProxyWritesIsSettledExactly) {
  // Our multi is cut off after another proxy's write moved b:2 one version up. Ours could
  // not have landed (the version moved once, not by us): the read-back settles it as not
  // applied and b:2's 7 are written again, so nothing is lost and nothing is ambiguous.
  const Scenario& s = kScenarios[2];
  Rig run = start(s);
  run.zk->fail_at(run.first_step, {ZkCode::connection_loss, false});
  run.proxy->settle();
  EXPECT_EQ(count_of(*run.zk, "a:1"), 105u);
  EXPECT_EQ(count_of(*run.zk, "b:2"), 17u) << run.zk->log_text();  // 0 + 10 theirs + our 7
  EXPECT_EQ(count_of(*run.zk, "c:3"), 8u);
  EXPECT_EQ(run.proxy->counters.ambiguous_writes.get(), 0u);
}

// ---- Re-created nodes ------------------------------------------------------------------

TEST(CountWriter, ReCreatedNodesAreWrittenBackUpToTheFloor) {
  // a:1 starts at 100; we write 10 (floor 110). Then its agent's session expires and it
  // re-creates the node with `recreated`; we send `more`.
  struct Row {
    const char* what;
    uint64_t recreated;
    bool seen;   // the coordinator read it (children watch) before the next flush
    bool away;   // a flush ran while the node was gone (NONODE: 2 of `more` wait)
    uint64_t more;
    uint64_t want;
  };
  const Row rows[] = {
      {"lower, read first", 50, true, false, 5, 115},
      {"lower, no new requests: restored all the same", 40, true, false, 0, 110},
      {"lower, unseen: BADVERSION shows it", 50, false, false, 5, 115},
      {"zero, unseen", 0, false, false, 5, 115},
      {"at the floor", 110, true, false, 5, 115},
      {"higher (another proxy's), read first", 200, true, false, 5, 205},
      {"higher, unseen", 200, false, false, 5, 205},
      {"lower, after a flush met NONODE", 50, true, true, 5, 115},
  };
  for (const Row& r : rows) {
    FakeZk zk;
    zk.put(target_path("a:1"), "100", kAgentSession);
    Proxy p(zk);
    p.join({"a:1"});
    p.serve("a:1", 10);
    p.settle();
    ASSERT_EQ(count_of(zk, "a:1"), 110u);
    if (r.away) {
      zk.erase(target_path("a:1"));
      p.serve("a:1", 2);
      p.writer.flush();
      EXPECT_EQ(p.book.unflushed_total(), 2u) << r.what;
      p.serve("a:1", r.more - 2);
    } else {
      p.serve("a:1", r.more);
    }
    zk.recreate(target_path("a:1"), std::to_string(r.recreated), kAgentSession + 1);
    if (r.seen) p.writer.read_target("a:1");
    p.settle();
    EXPECT_EQ(count_of(zk, "a:1"), r.want) << r.what << "\n" << zk.log_text();
    EXPECT_EQ(p.book.unflushed_total(), 0u) << r.what;
    EXPECT_EQ(p.counters.ambiguous_writes.get(), 0u) << r.what;
  }
}

TEST(CountWriter, AnAgentsReCreationBetweenTwoListsIsSeenAndReadAgain) {
  // The children lists alone look the same; the parent's cversion (kept by the fake as by
  // ZooKeeper) tells, and the re-read finds the new incarnation below the floor.
  FakeZk zk;
  zk.put(target_path("a:1"), "100", kAgentSession);
  zk.put(target_path("b:2"), "100", kAgentSession);
  Proxy p(zk);
  std::vector<std::string> before;
  ZkStat parent;
  ASSERT_EQ(zk.get_children("/targets", &before, true, &parent), ZkCode::ok);
  int64_t before_cversion = parent.cversion;
  p.join(before);
  p.serve("a:1", 5);
  p.settle();
  zk.recreate(target_path("a:1"), "90", kAgentSession + 1);
  std::vector<std::string> now;
  ASSERT_EQ(zk.get_children("/targets", &now, true, &parent), ZkCode::ok);
  EXPECT_EQ(now, before);
  ChildrenChurn churn = children_churn(before, before_cversion, now, parent.cversion);
  ASSERT_TRUE(churn.hidden);
  for (const std::string& name : p.book.set_members(now, 0, churn.hidden)) p.writer.read_target(name);
  p.settle();
  EXPECT_EQ(count_of(zk, "a:1"), 105u);
  EXPECT_EQ(count_of(zk, "b:2"), 100u);
}

TEST(CountWriter, AWriteLandingOnAReCreatedNodeAtTheSameVersionIsReported) {
  // The node is re-created between our read and our write with the version we expect (0):
  // ZooKeeper cannot condition on the incarnation, so the write lands and is reported.
  FakeZk zk;
  zk.put(target_path("a:1"), "100", kAgentSession);
  Proxy p(zk);
  p.join({"a:1"});
  p.serve("a:1", 5);
  zk.recreate(target_path("a:1"), "50", kAgentSession + 1);
  p.settle();
  EXPECT_EQ(count_of(zk, "a:1"), 105u);  // from the floor: nothing lost here
  EXPECT_EQ(p.counters.ambiguous_writes.get(), 1u);
}

// ---- BADVERSION storms -----------------------------------------------------------------

TEST(CountWriter, BadVersionStormConverges) {
  // Another proxy wins the version race before each of our next `storm` writes, adding 2.
  struct Row {
    std::vector<std::string> targets;
    int storm;
  };
  const Row rows[] = {
      {{"a:1"}, 1}, {{"a:1"}, 4}, {{"a:1"}, 5}, {{"a:1"}, 6}, {{"a:1"}, 12},
      {{"a:1", "b:2", "c:3"}, 1}, {{"a:1", "b:2", "c:3"}, 5}, {{"a:1", "b:2", "c:3"}, 12},
  };
  for (const Row& r : rows) {
    FakeZk zk;
    for (const std::string& t : r.targets) zk.put(target_path(t), "10", kAgentSession);
    Proxy p(zk);
    p.join(r.targets);
    for (const std::string& t : r.targets) p.serve(t, 3);
    auto left = std::make_shared<int>(r.storm);
    auto theirs = std::make_shared<std::map<std::string, uint64_t>>();
    zk.before_each([left, theirs](FakeZk& z, size_t, FakeZk::Op op, const std::string& path) {
      if ((op != FakeZk::Op::set && op != FakeZk::Op::multi) || *left == 0) return;
      --*left;
      z.put(path, std::to_string(std::stoull(z.data(path)) + 2));
      (*theirs)[path] += 2;
    });
    p.settle();
    std::string row = std::to_string(r.targets.size()) + " targets, storm of " + std::to_string(r.storm);
    EXPECT_EQ(*left, 0) << row;
    for (const std::string& t : r.targets) {
      EXPECT_EQ(count_of(zk, t), 10 + 3 + (*theirs)[target_path(t)]) << row << " " << t << "\n" << zk.log_text();
    }
    EXPECT_EQ(p.book.unflushed_total(), 0u) << row;
    EXPECT_GE(p.counters.bad_version.get(), 1u) << row;
    EXPECT_EQ(p.counters.ambiguous_writes.get(), 0u) << row;
  }
}

TEST(CountWriter, TwoProxiesRacingEveryFlushBothCountExactly) {
  FakeZk zk;
  zk.put(target_path("a:1"), "0", kAgentSession);
  zk.put(target_path("b:2"), "0", kAgentSession);
  Proxy p1(zk), p2(zk);
  p1.join({"a:1", "b:2"});
  p2.join({"a:1", "b:2"});
  uint64_t sent = 0;
  for (int round = 0; round < 20; ++round) {
    p1.serve("a:1", 3);
    p1.serve("b:2", 1);
    p2.serve("a:1", 2);
    p2.serve("b:2", 4);
    sent += 5;
    // Each writes from the versions it last saw; the other's write since makes it meet
    // BADVERSION, read, and add its own on top. The order alternates.
    if (round % 2 == 0) {
      p1.writer.flush();
      p2.writer.flush();
    } else {
      p2.writer.flush();
      p1.writer.flush();
    }
  }
  p1.settle();
  p2.settle();
  EXPECT_EQ(count_of(zk, "a:1") + count_of(zk, "b:2"), sent * 2);
  EXPECT_EQ(count_of(zk, "a:1"), 100u);
  EXPECT_EQ(count_of(zk, "b:2"), 100u);
}

// ---- Fleet: the leader's multi with the ledger -----------------------------------------

constexpr char kLedger[] = "/ringmaster/ledger";

struct Leader {
  explicit Leader(FakeZk& z) : proxy(z, true) {
    fleet.instance = "L";
    fleet.ledger_path = kLedger;
    fleet.proxies_path = "/ringmaster/proxies";
    fleet.is_leader = true;
    fleet.live_instances = {"L", "F"};
  }
  Proxy proxy;
  FleetState fleet;
  int64_t wall_ms = 1'700'000'000'000;
  FleetWriter writer{proxy.zk, proxy.book, fleet, proxy.writer, target_path, proxy.counters.pointers(),
                     [this] { return wall_ms; }};

  bool done() {
    std::lock_guard lock(fleet.mutex);
    return !fleet.uncertain && fleet.shared.inbox.batches() == 0 && proxy.book.unflushed_total() == 0;
  }
  // Leader ticks until everything is written (as fleet_tick: the ledger and counts once).
  void settle() {
    for (int i = 0; i < kSettleFlushesMax && !done(); ++i) {
      if (proxy.zk.state() == SessionState::expired) {
        proxy.zk.reopen();
        fleet.ledger_version = -1;  // read again (a new leader term starts from ZooKeeper)
      }
      writer.write(true);
    }
  }
};

TEST(FleetWriter, LeaderMultiWithLedgerSurvivesConnectionLossAtEachStep) {
  // The leader sends 4 to a:1 and 1 to b:2; follower F's batches 1 and 2 (a:1 +3, b:2 +6)
  // are in its inbox. One multi writes both counts and the ledger (F through 2).
  auto start_leader = [](FakeZk& zk, Leader& l) {
    zk.put(kLedger, "");
    zk.put(target_path("a:1"), "100", kAgentSession);
    zk.put(target_path("b:2"), "20", kAgentSession);
    l.proxy.join({"a:1", "b:2"});
    ASSERT_TRUE(l.writer.load_ledger());
    l.proxy.serve("a:1", 4);
    l.proxy.serve("b:2", 1);
    std::lock_guard lock(l.fleet.mutex);
    ASSERT_TRUE(l.fleet.shared.inbox.accept(
        "F", {fleet::Batch{1, {{"a:1", 3}}}, fleet::Batch{2, {{"b:2", 6}}}}, 0));
  };
  auto check = [](const FakeZk& zk, Leader& l, const std::string& row) {
    EXPECT_EQ(count_of(zk, "a:1"), 107u) << row << "\n" << zk.log_text();
    EXPECT_EQ(count_of(zk, "b:2"), 27u) << row << "\n" << zk.log_text();
    auto ledger = fleet::Ledger::parse(zk.data(kLedger));
    ASSERT_TRUE(ledger) << row;
    EXPECT_EQ(ledger->seq("F"), 2u) << row;
    EXPECT_GE(ledger->seq("L"), 1u) << row;
    EXPECT_TRUE(l.done()) << row;
    EXPECT_EQ(l.proxy.counters.ambiguous_writes.get(), 0u) << row;
  };
  size_t steps = 0;
  {
    FakeZk zk;
    Leader l(zk);
    start_leader(zk, l);
    size_t first = zk.steps();
    l.settle();
    check(zk, l, "no fault");
    steps = zk.steps() - first;
    ASSERT_EQ(steps, 1u);  // one multi, no reads
  }
  // Each fault at the multi, then at each step of the retries that follow one.
  for (size_t k = 0; k < steps + 4; ++k) {
    for (ZkCode code : {ZkCode::connection_loss, ZkCode::session_expired}) {
      for (bool applied : {false, true}) {
        if (code == ZkCode::session_expired && applied) continue;
        FakeZk zk;
        Leader l(zk);
        start_leader(zk, l);
        size_t first = zk.steps();
        // The first multi is cut off (applied or not); then the fault under test.
        zk.fail_at(first, {ZkCode::connection_loss, applied});
        if (k > 0) zk.fail_at(first + k, {code, applied});
        l.settle();
        check(zk, l, std::string(zk_code_name(code)) + " at step " + std::to_string(k) +
                         (applied ? " (applied)" : " (not applied)"));
      }
    }
  }
}

TEST(FleetWriter, LedgerRaceAndRecreatedTargetConverge) {
  // Someone else moves the ledger (a follower writing directly) and a:1's agent re-creates
  // its node lower, both just before the leader's multi: BADVERSION on the ledger, then on
  // a:1; the leader reads each again and writes everything, the node back up from its floor.
  FakeZk zk;
  Leader l(zk);
  zk.put(kLedger, "");
  zk.put(target_path("a:1"), "99", kAgentSession);
  zk.put(target_path("a:1"), "100");  // version 1: the re-created node's 0 differs
  l.proxy.join({"a:1"});
  ASSERT_TRUE(l.writer.load_ledger());
  l.proxy.serve("a:1", 4);
  auto once = std::make_shared<bool>(false);
  zk.before_each([once](FakeZk& z, size_t, FakeZk::Op op, const std::string&) {
    if (op != FakeZk::Op::multi || *once) return;
    *once = true;
    fleet::Ledger other;
    int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    other.set("G", 9, now_ms);  // (recent: the leader's multi prunes entries an hour old)
    z.put(kLedger, other.serialize());
    z.recreate(target_path("a:1"), "60", kAgentSession + 1);
  });
  l.settle();
  EXPECT_EQ(count_of(zk, "a:1"), 104u) << zk.log_text();
  auto ledger = fleet::Ledger::parse(zk.data(kLedger));
  ASSERT_TRUE(ledger);
  EXPECT_EQ(ledger->seq("G"), 9u);  // another writer's entry kept
  EXPECT_GE(ledger->seq("L"), 1u);
  EXPECT_GE(l.proxy.counters.bad_version.get(), 2u);
}

// The leader's ledger forgets an instance that has not moved for kLedgerKeepMs by the clock
// it is given (a proxy gone for good), keeps one a millisecond younger and every live one
// however old, and stamps what it writes with that clock.
TEST(FleetWriter, TheLedgerPrunesByTheGivenWallClock) {
  FakeZk zk;
  Leader l(zk);
  const int64_t keep = FleetWriter::kLedgerKeepMs;
  const int64_t now = l.wall_ms;
  zk.put(kLedger, "F 3 " + std::to_string(now - 5 * keep) + "\nGone 7 " + std::to_string(now - keep - 1) +
                      "\nRecent 9 " + std::to_string(now - keep) + "\n");
  zk.put(target_path("a:1"), "0", kAgentSession);
  l.proxy.join({"a:1"});
  ASSERT_TRUE(l.writer.load_ledger());
  l.proxy.serve("a:1", 2);
  ASSERT_TRUE(l.writer.write(true)) << zk.log_text();
  auto ledger = fleet::Ledger::parse(zk.data(kLedger));
  ASSERT_TRUE(ledger) << zk.data(kLedger);
  EXPECT_EQ(ledger->seq("Gone"), 0u) << zk.data(kLedger);
  EXPECT_EQ(ledger->seq("Recent"), 9u) << zk.data(kLedger);
  EXPECT_EQ(ledger->seq("F"), 3u) << "live: kept however old";
  EXPECT_NE(zk.data(kLedger).find("L 1 " + std::to_string(now) + "\n"), std::string::npos) << zk.data(kLedger);
  EXPECT_EQ(count_of(zk, "a:1"), 2u);
}

}  // namespace
}  // namespace ringmaster::discovery
