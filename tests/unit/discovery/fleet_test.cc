#include "discovery/fleet.h"

#include <gtest/gtest.h>

#include "discovery/target_book.h"

namespace ringmaster::discovery::fleet {
namespace {

TEST(FleetLedger, RoundTripsSortedLines) {
  Ledger l;
  l.set("bbb", 7, 1000);
  l.set("aaa", 3, 2000);
  EXPECT_EQ(l.serialize(), "aaa 3 2000\nbbb 7 1000\n");
  auto back = Ledger::parse(l.serialize());
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, l);
  EXPECT_EQ(back->seq("aaa"), 3u);
  EXPECT_EQ(back->seq("nobody"), 0u);
  EXPECT_TRUE(Ledger::parse(""));  // a new ledger node is empty
}

TEST(FleetLedger, RefusesAnythingItCannotReadExactly) {
  for (const char* bad : {"aaa 3 2000", "aaa 3\n", "aaa x 1\n", "aaa 3 1 extra\n", " 3 1\n", "aaa -3 1\n",
                          "aaa 3 1\nbbb\n"}) {
    EXPECT_FALSE(Ledger::parse(bad)) << bad;
  }
}

TEST(FleetLedger, SequencesOnlyMoveForward) {
  Ledger l;
  l.set("a", 5, 10);
  l.set("a", 4, 20);
  EXPECT_EQ(l.seq("a"), 5u);
  EXPECT_EQ(l.entries().at("a").updated_ms, 10);
}

TEST(FleetLedger, PrunesOnlyDepartedInstancesPastTheirKeep) {
  Ledger l;
  l.set("old-gone", 1, 0);
  l.set("old-live", 1, 0);
  l.set("recent", 1, 900);
  l.prune(1000, 500, {"old-live"});
  EXPECT_EQ(l.seq("old-gone"), 0u);
  EXPECT_EQ(l.seq("old-live"), 1u);
  EXPECT_EQ(l.seq("recent"), 1u);
}

TEST(FleetOutbox, AckSumsTheDeltasOfCoveredBatches) {
  Outbox o;
  o.push({1, {{"a:1", 2}}});
  o.push({2, {{"a:1", 3}, {"b:2", 1}}});
  o.push({4, {{"b:2", 5}}});
  o.push({3, {{"b:2", 99}}});  // sequences only grow: ignored
  EXPECT_EQ(o.size(), 3u);
  EXPECT_EQ(o.after(1).size(), 2u);
  Deltas acked = o.ack_through(2);
  EXPECT_EQ(acked, (Deltas{{"a:1", 5}, {"b:2", 1}}));
  EXPECT_EQ(o.size(), 1u);
  EXPECT_TRUE(o.ack_through(2).empty());  // acknowledging twice adds nothing
  EXPECT_EQ(o.last_seq(), 4u);
}

TEST(FleetInbox, ResendsAndAppliedBatchesAreTakenOnce) {
  Inbox in;
  ASSERT_TRUE(in.accept("p", {{1, {{"a:1", 1}}}, {2, {{"a:1", 2}}}}, 0));
  ASSERT_TRUE(in.accept("p", {{2, {{"a:1", 2}}}, {3, {{"a:1", 4}}}}, 0));  // 2 again
  EXPECT_EQ(in.received("p", 0), 3u);
  ASSERT_TRUE(in.accept("q", {{5, {{"b:2", 10}}}, {6, {{"b:2", 20}}}}, 5));  // 5 already applied
  Inbox::Plan plan = in.plan();
  EXPECT_EQ(plan.through, (std::map<std::string, uint64_t>{{"p", 3}, {"q", 6}}));
  EXPECT_EQ(plan.deltas, (Deltas{{"a:1", 7}, {"b:2", 20}}));
  Ledger l;
  l.set("p", 2, 0);
  in.drop_covered(l);
  EXPECT_EQ(in.plan().deltas, (Deltas{{"a:1", 4}, {"b:2", 20}}));
  EXPECT_EQ(in.batches(), 2u);
}

TEST(FleetInbox, BoundsBatchesPerFollower) {
  Inbox in;
  std::vector<Batch> many;
  for (uint64_t s = 1; s <= Inbox::kBatchesPerInstanceMax + 1; ++s) many.push_back({s, {{"a:1", 1}}});
  EXPECT_FALSE(in.accept("p", many, 0));
  EXPECT_EQ(in.batches(), 0u);
  many.pop_back();
  EXPECT_TRUE(in.accept("p", many, 0));
}

TEST(FleetElection, LowestCounterThatMayLeadWins) {
  std::vector<std::string> children = {"l-bbb-0000000007", "f-aaa-0000000001", "l-ccc-0000000003", "junk",
                                       "l--0000000000", "l-ddd-000000001x"};
  Election e = elect(children, "bbb");
  ASSERT_TRUE(e.leader);
  EXPECT_EQ(e.leader->instance, "ccc");
  ASSERT_TRUE(e.self);
  EXPECT_EQ(e.self->name, "l-bbb-0000000007");
  EXPECT_EQ(e.members, 3u);
  EXPECT_FALSE(elect({"f-aaa-0000000001"}, "aaa").leader);  // followers only: nobody leads
  EXPECT_EQ(member_prefix(true, "x"), "l-x-");
}

TEST(FleetWire, ReportAndAnswerRoundTrip) {
  Report r{"inst", "tok", {{3, {{"127.0.0.1:9001", 12}}}, {4, {}}}, true};
  auto back = decode_report(encode_report(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->instance, "inst");
  EXPECT_EQ(back->token, "tok");
  EXPECT_EQ(back->batches, r.batches);
  EXPECT_TRUE(back->want_counts);
  Answer a{"leader", 3, 4, std::map<std::string, uint64_t>{{"127.0.0.1:9001", 99}}};
  auto ab = decode_answer(encode_answer(a));
  ASSERT_TRUE(ab);
  EXPECT_EQ(ab->applied, 3u);
  EXPECT_EQ(ab->received, 4u);
  EXPECT_EQ(ab->counts, a.counts);
  Announcement n{"inst", "127.0.0.1:7000", "tok"};
  auto nb = decode_announcement(encode_announcement(n));
  ASSERT_TRUE(nb);
  EXPECT_EQ(nb->address, "127.0.0.1:7000");
}

TEST(FleetWire, RejectsMalformedReports) {
  for (const char* bad : {
           "", "[]", "{", R"({"token":"t","batches":[]})", R"({"instance":"i","batches":[]})",
           R"({"instance":"i","token":"t","batches":[{"seq":0,"deltas":{}}]})",
           R"({"instance":"i","token":"t","batches":[{"seq":1,"deltas":{"a:1":-1}}]})",
           R"({"instance":"i","token":"t","batches":[{"seq":1,"deltas":{"a:1":1.5}}]})",
           R"({"instance":"i","token":"t","batches":[{"seq":1,"deltas":{"a b":1}}]})",
           R"({"instance":"i j","token":"t","batches":[]})", R"({"instance":"i","token":"t","batches":{}})"}) {
    EXPECT_FALSE(decode_report(bad)) << bad;
  }
}

// The protocol's core promise, played out with an in-memory stand-in for the ledger node and
// one target node: a follower's batches reach the count exactly once, whoever applies them
// (a leader, an old leader, the follower itself) and however often they are resent.
struct FakeNodes {
  Ledger ledger;
  int32_t ledger_version = 0;
  uint64_t count = 0;
  // A versioned "multi": lands only if the ledger is still at `expected`.
  bool apply(const Ledger& next, int32_t expected, uint64_t add) {
    if (expected != ledger_version) return false;
    ledger = next;
    ++ledger_version;
    count += add;
    return true;
  }
};

struct Applier {  // a leader's view: the ledger it read and the batches it holds
  Ledger ledger;
  int32_t version = 0;
  Inbox inbox;
  void read(const FakeNodes& z) {
    ledger = z.ledger;
    version = z.ledger_version;
    inbox.drop_covered(ledger);
  }
  bool flush(FakeNodes& z) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      Inbox::Plan plan = inbox.plan();
      if (plan.through.empty()) return true;
      Ledger next = ledger;
      for (const auto& [inst, seq] : plan.through) next.set(inst, seq, 0);
      uint64_t add = 0;
      for (const auto& [name, n] : plan.deltas) add += n;
      if (z.apply(next, version, add)) {
        read(z);
        return true;
      }
      read(z);  // BADVERSION: read the ledger again, drop what it covers, plan again
    }
    return false;
  }
};

TEST(FleetProtocol, TwoLeadersHoldingTheSameBatchesCountThemOnce) {
  FakeNodes z;
  Applier old_leader, new_leader;
  old_leader.read(z);
  new_leader.read(z);
  std::vector<Batch> batches = {{1, {{"t", 10}}}, {2, {{"t", 5}}}};
  // The follower sent both to the old leader, then (no answer) everything again to the new one.
  ASSERT_TRUE(old_leader.inbox.accept("f", batches, 0));
  ASSERT_TRUE(new_leader.inbox.accept("f", batches, 0));
  ASSERT_TRUE(new_leader.flush(z));
  ASSERT_TRUE(old_leader.flush(z));  // its multi meets BADVERSION, re-reads, has nothing left
  EXPECT_EQ(z.count, 15u);
  // A resend after the answer was lost: still nothing twice.
  ASSERT_TRUE(new_leader.inbox.accept("f", batches, z.ledger.seq("f")));
  ASSERT_TRUE(new_leader.flush(z));
  EXPECT_EQ(z.count, 15u);
  // A later batch goes in once.
  ASSERT_TRUE(old_leader.inbox.accept("f", {{3, {{"t", 1}}}}, old_leader.ledger.seq("f")));
  ASSERT_TRUE(new_leader.inbox.accept("f", {{3, {{"t", 1}}}}, new_leader.ledger.seq("f")));
  ASSERT_TRUE(old_leader.flush(z));
  ASSERT_TRUE(new_leader.flush(z));
  EXPECT_EQ(z.count, 16u);
  EXPECT_EQ(z.ledger.seq("f"), 3u);
}

TEST(FleetProtocol, AFollowerWritingDirectlyCoversWhatALeaderHolds) {
  FakeNodes z;
  Applier leader;
  leader.read(z);
  ASSERT_TRUE(leader.inbox.accept("f", {{1, {{"t", 4}}}}, 0));
  // The follower heard nothing back and wrote its own requests (batch 1 and 2 more) under a
  // newer sequence that covers every batch before it.
  Ledger mine = z.ledger;
  mine.set("f", 2, 0);
  ASSERT_TRUE(z.apply(mine, z.ledger_version, 4 + 2));
  ASSERT_TRUE(leader.flush(z));
  EXPECT_EQ(z.count, 6u);
  EXPECT_EQ(leader.inbox.batches(), 0u);
}

}  // namespace
}  // namespace ringmaster::discovery::fleet

namespace ringmaster::discovery {
namespace {

std::optional<base::SocketAddress> local_resolve(const base::HostPort& hp) {
  return base::resolve(base::HostPort{"127.0.0.1", hp.port});
}

upstream::TargetState* find_state(const TargetBook& book, const std::string& name) {
  auto snap = book.build_snapshot(1);
  for (const auto& t : snap->targets) {
    if (t.state->name == name) return t.state.get();
  }
  return nullptr;
}

TEST(TargetBookFleet, BatchesAckAndLeaderWritesCoverOwnAndRelayedRequests) {
  TargetBook book(1, local_resolve);
  book.set_members({"a:1", "b:2"}, 0);
  book.on_read("a:1", "100", 3, 11);
  book.on_read("b:2", "50", 1, 22);
  upstream::TargetState* a = find_state(book, "a:1");
  ASSERT_NE(a, nullptr);
  for (int i = 0; i < 5; ++i) a->slots[0].count_request();
  // Follower: a batch of what was counted, once.
  EXPECT_EQ(book.take_batch(), (fleet::Deltas{{"a:1", 5}}));
  EXPECT_TRUE(book.take_batch().empty());
  EXPECT_EQ(book.unflushed_total(), 5u);
  book.on_acked({{"a:1", 5}});
  EXPECT_EQ(book.unflushed_total(), 0u);

  // Leader: own requests plus followers' for a writable target and one it cannot write.
  a->slots[0].count_request();
  fleet::Deltas unwritable;
  auto writes = book.plan_fleet({{"b:2", 7}, {"c:3", 2}}, &unwritable);
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].name, "a:1");
  EXPECT_EQ(writes[0].count, 101u);
  EXPECT_EQ(writes[0].expected_version, 3);
  EXPECT_EQ(writes[1].name, "b:2");
  EXPECT_EQ(writes[1].count, 57u);
  EXPECT_EQ(unwritable, (fleet::Deltas{{"c:3", 2}}));
  EXPECT_TRUE(book.on_fleet_written(writes[0], 4, 11));
  EXPECT_FALSE(book.on_fleet_written(writes[1], 2, 99));  // landed on another incarnation
  EXPECT_EQ(book.unflushed_total(), 0u);
  // The unwritable requests become this proxy's to write (carried) once their node exists.
  ASSERT_TRUE(book.add_carried("c:3", 2));
  EXPECT_EQ(book.unflushed_total(), 2u);
  EXPECT_FALSE(book.add_carried("not a name", 1));
  book.set_members({"a:1", "b:2", "c:3"}, 10);
  book.on_read("c:3", "0", 0, 33);
  auto later = book.plan_fleet({}, &unwritable);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].name, "c:3");
  EXPECT_EQ(later[0].count, 2u);
}

TEST(TargetBookFleet, UnwrittenBatchedRequestsAreBatchedAgainAfterOwnWrite) {
  TargetBook book(1, local_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "0", 0, 1);
  upstream::TargetState* a = find_state(book, "a:1");
  for (int i = 0; i < 3; ++i) a->slots[0].count_request();
  EXPECT_EQ(book.take_batch(), (fleet::Deltas{{"a:1", 3}}));
  // Its own later write could not include the target (node missing); the batch was dropped
  // as covered by the write's sequence, so the requests must go out again.
  book.on_missing("a:1");
  fleet::Deltas unwritable;
  EXPECT_TRUE(book.plan_fleet({}, &unwritable).empty());
  book.rebatch_unwritten();
  EXPECT_EQ(book.take_batch(), (fleet::Deltas{{"a:1", 3}}));
}

}  // namespace
}  // namespace ringmaster::discovery

namespace ringmaster::discovery {
namespace {

uint64_t base_in(const TargetBook& book, const std::string& name) {
  auto snap = book.build_snapshot(1);
  for (const auto& t : snap->targets) {
    if (t.state->name == name) return t.balance_base;
  }
  return UINT64_MAX;
}

TEST(TargetBookFleet, BalancesOnOwnRequestsNotOnFleetWideCounts) {
  TargetBook book(1, local_resolve);
  book.set_balance_on_own_requests(true);
  book.set_members({"a:1", "b:2"}, 0);
  book.on_read("a:1", "100", 0, 1);
  book.on_read("b:2", "100", 0, 2);
  upstream::TargetState* a = find_state(book, "a:1");
  for (int i = 0; i < 10; ++i) a->slots[0].count_request();
  EXPECT_EQ(base_in(book, "a:1"), 10u);
  EXPECT_EQ(base_in(book, "b:2"), 0u);
  // Other proxies sent a lot to b: the fleet-wide count moves, this proxy's bases do not
  // (each proxy evens out its own share; the sum is even).
  book.on_count("b:2", 5000);
  EXPECT_EQ(base_in(book, "b:2"), 0u);
  // A target that joins is levelled with this proxy's least-used one, not with its count.
  book.set_members({"a:1", "b:2", "c:3"}, 10);
  book.on_read("c:3", "0", 0, 3);
  EXPECT_EQ(base_in(book, "c:3"), 0u);
  upstream::TargetState* b = find_state(book, "b:2");
  for (int i = 0; i < 4; ++i) b->slots[0].count_request();
  book.set_members({"a:1", "b:2", "c:3", "d:4"}, 20);
  book.on_read("d:4", "999999", 0, 4);
  EXPECT_EQ(base_in(book, "d:4"), 0u);  // level with c (0), not a flood, not starved
}

}  // namespace
}  // namespace ringmaster::discovery
