#include "ringmaster/upstream/targets.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

namespace ringmaster::upstream {
namespace {

base::SocketAddress loopback(uint16_t port) {
  return *base::resolve(base::HostPort{"127.0.0.1", port});
}

std::unique_ptr<TargetSnapshot> snapshot_of(const std::vector<std::shared_ptr<TargetState>>& states,
                                            std::vector<uint64_t> bases = {}) {
  auto s = std::make_unique<TargetSnapshot>();
  for (size_t i = 0; i < states.size(); ++i) {
    Target t;
    t.state = states[i];
    t.balance_base = i < bases.size() ? bases[i] : 0;
    s->targets.push_back(t);
  }
  return s;
}

std::vector<std::shared_ptr<TargetState>> make_states(int n, unsigned reactors = 1) {
  std::vector<std::shared_ptr<TargetState>> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(std::make_shared<TargetState>("127.0.0.1:" + std::to_string(9000 + i),
                                                loopback(static_cast<uint16_t>(9000 + i)), reactors));
  }
  return out;
}

// `n` picks by one balancer from `snap`, each counted as sent: picks per target name.
std::map<std::string, int> picks_by_name(const TargetSnapshot* snap, int n) {
  Balancer b(0);
  b.adopt(snap);
  std::map<std::string, int> hits;
  for (int i = 0; i < n; ++i) {
    int idx = b.pick(TriedSet{}, 0);
    EXPECT_GE(idx, 0);
    if (idx < 0) break;
    b.on_pick(b.state(idx));
    ++hits[b.state(idx)->name];
  }
  return hits;
}

TEST(Balancer, SplitsRequestsEvenlyAcrossEqualTargets) {
  auto states = make_states(3);
  auto snap = snapshot_of(states);
  auto hits = picks_by_name(snap.get(), 3000);
  for (auto& [name, n] : hits) EXPECT_EQ(n, 1000) << name;
}

TEST(Balancer, PrefersTheTargetWithTheLowestBalanceBase) {
  auto states = make_states(2);
  auto snap = snapshot_of(states, {100, 0});
  Balancer b(0);
  b.adopt(snap.get());
  // The second target gets every request until it catches up with the first.
  for (int i = 0; i < 100; ++i) {
    int idx = b.pick(TriedSet{}, 0);
    EXPECT_EQ(b.state(idx), states[1].get());
    b.on_pick(b.state(idx));
  }
}

TEST(Balancer, PrefersATargetWithAFreeConnectionOverALowerScore) {
  auto states = make_states(2);
  auto snap = snapshot_of(states, {0, 100});
  Balancer b(0);
  b.set_conns_max(2);
  b.adopt(snap.get());
  // The first target has the lower score but both its connections are busy.
  states[0]->slots[0].conns_open = 2;
  EXPECT_TRUE(b.full(states[0].get()));
  EXPECT_FALSE(b.can_open(states[0].get()));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.state(b.pick(TriedSet{}, 0)), states[1].get());
  // An idle pooled connection is a free one.
  states[0]->slots[0].conns_idle = 1;
  EXPECT_FALSE(b.full(states[0].get()));
  EXPECT_EQ(b.state(b.pick(TriedSet{}, 0)), states[0].get());
}

TEST(Balancer, AmongFullTargetsPicksTheShortestQueue) {
  auto states = make_states(3);
  auto snap = snapshot_of(states);
  Balancer b(0);
  b.set_conns_max(1);
  b.adopt(snap.get());
  uint32_t queued[] = {5, 2, 7};
  for (int i = 0; i < 3; ++i) {
    states[i]->slots[0].conns_open = 1;
    states[i]->slots[0].queued = queued[i];
  }
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.state(b.pick(TriedSet{}, 0)), states[1].get());
}

TEST(Balancer, NoConnectionLimitByDefault) {
  auto states = make_states(1);
  auto snap = snapshot_of(states);
  Balancer b(0);
  b.adopt(snap.get());
  states[0]->slots[0].conns_open = 100000;
  EXPECT_FALSE(b.full(states[0].get()));
  EXPECT_TRUE(b.can_open(states[0].get()));
}

TEST(Balancer, SkipsTriedTargetsAndReturnsMinusOneWhenAllTried) {
  auto states = make_states(2);
  auto snap = snapshot_of(states);
  Balancer b(0);
  b.adopt(snap.get());
  TriedSet tried;
  int first = b.pick(tried, 0);
  tried.add(b.state(first));
  int second = b.pick(tried, 0);
  EXPECT_NE(first, second);
  tried.add(b.state(second));
  EXPECT_EQ(b.pick(tried, 0), -1);
}

TEST(Balancer, EjectsAFailingTargetWithDoublingBackoff) {
  auto states = make_states(2);
  auto snap = snapshot_of(states);
  Balancer b(0);
  b.adopt(snap.get());
  TargetState* bad = states[0].get();
  b.on_connect_failure(bad, 0);
  EXPECT_TRUE(b.ejected(bad, Balancer::kEjectBaseMs - 1));
  EXPECT_FALSE(b.ejected(bad, Balancer::kEjectBaseMs));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.state(b.pick(TriedSet{}, 10)), states[1].get());
  b.on_connect_failure(bad, 0);
  EXPECT_TRUE(b.ejected(bad, 2 * Balancer::kEjectBaseMs - 1));
  b.on_connect_success(bad);
  b.on_connect_failure(bad, 0);
  EXPECT_FALSE(b.ejected(bad, Balancer::kEjectBaseMs));  // success reset the backoff
}

TEST(Balancer, PicksAnEjectedTargetWhenNothingElseIsLeft) {
  auto states = make_states(1);
  auto snap = snapshot_of(states);
  Balancer b(0);
  b.adopt(snap.get());
  b.on_connect_failure(states[0].get(), 0);
  EXPECT_EQ(b.pick(TriedSet{}, 1), 0);
}

TEST(Balancer, EmptySnapshotPicksNothing) {
  TargetSnapshot empty;
  Balancer b(0);
  b.adopt(&empty);
  EXPECT_EQ(b.pick(TriedSet{}, 0), -1);
  b.adopt(nullptr);
  EXPECT_EQ(b.pick(TriedSet{}, 0), -1);
}

TEST(Balancer, SharesFollowWeights) {
  // nerve's "weight": 1, 2 and 3 take a sixth, a third and a half.
  auto states = make_states(3);
  auto snap = snapshot_of(states);
  snap->targets[0].weight = 1;
  snap->targets[1].weight = 2;
  snap->targets[2].weight = 3;
  auto hits = picks_by_name(snap.get(), 6000);
  EXPECT_EQ(hits["127.0.0.1:9000"], 1000);
  EXPECT_EQ(hits["127.0.0.1:9001"], 2000);
  EXPECT_EQ(hits["127.0.0.1:9002"], 3000);
}

TEST(Balancer, ManyWeightedTargetsStayNearTheirShareWithTwoRandomChoices) {
  auto states = make_states(64);
  auto snap = snapshot_of(states);
  for (size_t i = 0; i < snap->targets.size(); ++i) snap->targets[i].weight = i % 2 == 0 ? 1 : 4;
  constexpr int kPerWeight = 200;
  auto hits = picks_by_name(snap.get(), 32 * 5 * kPerWeight);
  for (size_t i = 0; i < states.size(); ++i) {
    int expected = kPerWeight * (i % 2 == 0 ? 1 : 4);
    EXPECT_GE(hits[states[i]->name], expected * 90 / 100) << states[i]->name;
    EXPECT_LE(hits[states[i]->name], expected * 110 / 100) << states[i]->name;
  }
}

TEST(Balancer, ManyTargetsStayWithinAFewPercentOfEvenWithTwoRandomChoices) {
  auto states = make_states(256);
  auto snap = snapshot_of(states);
  Balancer b(0);
  b.adopt(snap.get());
  std::map<std::string, int> hits;
  constexpr int kPerTarget = 200;
  for (int i = 0; i < 256 * kPerTarget; ++i) {
    int idx = b.pick(TriedSet{}, 0);
    ASSERT_GE(idx, 0);
    b.on_pick(b.state(idx));
    ++hits[b.state(idx)->name];
  }
  ASSERT_EQ(hits.size(), 256u);
  for (auto& [name, n] : hits) {
    EXPECT_GE(n, kPerTarget * 95 / 100) << name;
    EXPECT_LE(n, kPerTarget * 105 / 100) << name;
  }
}

TEST(Balancer, ManyTargetsNeverPickATriedOrEjectedOneWhileOthersRemain) {
  auto states = make_states(64);
  auto snap = snapshot_of(states);
  Balancer b(0);
  b.adopt(snap.get());
  TriedSet tried;
  tried.add(states[0].get());
  for (int i = 1; i < 64; i += 2) b.on_connect_failure(states[i].get(), 0);
  for (int i = 0; i < 5000; ++i) {
    int idx = b.pick(tried, 1);
    ASSERT_GE(idx, 0);
    EXPECT_NE(b.state(idx), states[0].get());
    EXPECT_FALSE(b.ejected(b.state(idx), 1));
  }
}

TEST(TargetState, SumsRequestsOverReactorSlots) {
  TargetState s("a:1", loopback(1), 4);
  for (unsigned r = 0; r < 4; ++r) {
    for (unsigned i = 0; i <= r; ++i) s.slots[r].count_request();
  }
  EXPECT_EQ(s.requests_total(), 1u + 2 + 3 + 4);
}

TEST(SnapshotCell, FreesAnOldSnapshotOnlyAfterEveryReactorPassedTwoQuiescentPoints) {
  SnapshotCell cell(2);
  auto states = make_states(1);
  cell.publish(snapshot_of(states));
  cell.publish(snapshot_of(states));
  EXPECT_EQ(cell.retired(), 1u);
  cell.quiescent(0);
  cell.quiescent(0);
  cell.reclaim();
  EXPECT_EQ(cell.retired(), 1u);  // reactor 1 may still hold it
  cell.quiescent(1);
  cell.reclaim();
  EXPECT_EQ(cell.retired(), 1u);  // one point may belong to a turn that loaded the old pointer
  cell.quiescent(1);
  cell.reclaim();
  EXPECT_EQ(cell.retired(), 0u);
}

TEST(SnapshotCell, AnOfflineReactorNeverHoldsBackReclamation) {
  SnapshotCell cell(2);
  auto states = make_states(1);
  cell.publish(snapshot_of(states));
  cell.publish(snapshot_of(states));
  cell.offline(1);
  cell.quiescent(0);
  cell.quiescent(0);
  cell.reclaim();
  EXPECT_EQ(cell.retired(), 0u);
}

// Reactors reading while a publisher replaces snapshots: run under TSan/ASan, this is the
// coordinator/reactor boundary. Each reader checks that what it loaded is intact.
TEST(SnapshotCell, ReadersSeeIntactSnapshotsWhilePublisherReplacesThem) {
  constexpr unsigned kReaders = 2;
  SnapshotCell cell(kReaders);
  auto states = make_states(3, kReaders);
  cell.publish(snapshot_of(states));
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (unsigned r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      Balancer b(r);
      while (!done.load()) {
        b.adopt(cell.load());
        int idx = b.pick(TriedSet{}, 0);
        ASSERT_GE(idx, 0);
        b.on_pick(b.state(idx));
        b.on_request_sent(b.state(idx));
        ASSERT_EQ(b.snapshot()->targets.size(), 3u);
        reads.fetch_add(1, std::memory_order_relaxed);
        cell.quiescent(r);
      }
      cell.offline(r);
    });
  }
  // At least 2000 publications, and on until the readers have overlapped with them for a
  // while (threads may start late); bounded either way.
  for (int i = 0; i < 2000 || (reads.load() < 10000 && i < 2000000); ++i) {
    cell.publish(snapshot_of(states, {static_cast<uint64_t>(i), 0, 0}));
  }
  done.store(true);
  for (auto& t : readers) t.join();
  cell.reclaim();
  EXPECT_EQ(cell.retired(), 0u);
  uint64_t total = 0;
  for (auto& s : states) total += s->requests_total();
  EXPECT_GT(total, 0u);
}

}  // namespace
}  // namespace ringmaster::upstream
