#include "discovery/target_book.h"

#include <gtest/gtest.h>

namespace ringmaster::discovery {
namespace {

std::optional<base::SocketAddress> fake_resolve(const base::HostPort& hp) {
  return base::resolve(base::HostPort{"127.0.0.1", hp.port});
}

upstream::TargetState* state_of(const upstream::TargetSnapshot& s, const std::string& name) {
  for (const auto& t : s.targets) {
    if (t.state->name == name) return t.state.get();
  }
  return nullptr;
}

uint64_t base_of(const upstream::TargetSnapshot& s, const std::string& name) {
  for (const auto& t : s.targets) {
    if (t.state->name == name) return t.balance_base;
  }
  return UINT64_MAX;
}

// a:1 and b:2 join at count 0 (levelled together), then both grow to `count`.
void two_members_grown_to(TargetBook& book, const char* count, int32_t version) {
  book.set_members({"a:1", "b:2"}, 0);
  book.on_read("a:1", "0", 0);
  book.on_read("b:2", "0", 0);
  book.on_read("a:1", count, version);
  book.on_read("b:2", count, version);
}

TEST(ParseCount, AcceptsDecimalDigitsOnly) {
  EXPECT_EQ(parse_count("0"), 0u);
  EXPECT_EQ(parse_count("1234"), 1234u);
  EXPECT_EQ(parse_count("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(parse_count(""));
  EXPECT_FALSE(parse_count("18446744073709551616"));
  EXPECT_FALSE(parse_count("-1"));
  EXPECT_FALSE(parse_count("12 "));
  EXPECT_FALSE(parse_count("0x10"));
}

TEST(ChildrenChurn, ReadsEveryMemberAgainWhenTheListHidesAReCreation) {
  using Names = std::vector<std::string>;
  struct Row {
    const char* what;
    Names before;
    int64_t before_cversion;
    Names now;
    int64_t now_cversion;
    bool hidden;
  };
  const Row rows[] = {
      {"first list", {}, -1, {"a:1", "b:2"}, 7, false},
      {"unchanged", {"a:1", "b:2"}, 7, {"a:1", "b:2"}, 7, false},
      {"one joined", {"a:1"}, 7, {"a:1", "b:2"}, 8, false},
      {"one left, one joined", {"a:1", "b:2"}, 7, {"a:1", "c:3"}, 9, false},
      {"one re-created (deleted and created)", {"a:1", "b:2"}, 7, {"a:1", "b:2"}, 9, true},
      {"one joined, another re-created", {"a:1"}, 7, {"a:1", "b:2"}, 10, true},
      {"the parent re-created (cversion back)", {"a:1"}, 7, {"a:1"}, 1, true},
      {"all left", {"a:1", "b:2"}, 7, {}, 9, false},
  };
  for (const Row& r : rows) {
    ChildrenChurn churn = children_churn(r.before, r.before_cversion, r.now, r.now_cversion);
    EXPECT_EQ(churn.hidden, r.hidden) << r.what;
  }
}

TEST(TargetBook, SkipsAndCountsChildrenWhoseNameDoesNotParse) {
  TargetBook book(1, fake_resolve);
  auto to_read = book.set_members({"a:1", "garbage", "b:0", "c:2"}, 0);
  EXPECT_EQ(to_read, (std::vector<std::string>{"a:1", "c:2"}));
  EXPECT_EQ(book.skipped_names(), 2u);
}

TEST(TargetBook, SkipsATargetWhoseDataDoesNotParseUntilItDoes) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "not a number", 3);
  EXPECT_EQ(book.build_snapshot(1)->targets.size(), 0u);
  EXPECT_EQ(book.skipped_data(), 1u);
  book.on_read("a:1", "7", 4);
  EXPECT_EQ(book.build_snapshot(2)->targets.size(), 1u);
}

TEST(TargetBook, PlansOneVersionedWriteWithTheDeltaOnTopOfTheKnownCount) {
  TargetBook book(2, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "100", 5);
  auto snap = book.build_snapshot(1);
  upstream::TargetState* s = state_of(*snap, "a:1");
  s->slots[0].count_request();
  s->slots[1].count_request();
  s->slots[1].count_request();
  auto writes = book.plan_flush();
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].count, 103u);
  EXPECT_EQ(writes[0].expected_version, 5);
  book.on_written(writes[0], 6);
  EXPECT_TRUE(book.plan_flush().empty());
  s->slots[0].count_request();
  writes = book.plan_flush();
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].count, 104u);
  EXPECT_EQ(writes[0].expected_version, 6);
}

TEST(TargetBook, AfterAFreshReadTheDeltaGoesOnTopOfTheOtherProxysCount) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "100", 1);
  auto snap = book.build_snapshot(1);
  state_of(*snap, "a:1")->slots[0].count_request();
  book.on_read("a:1", "150", 2);  // another proxy wrote 50 (BADVERSION, re-read)
  auto w = book.plan_one("a:1");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->count, 151u);
  EXPECT_EQ(w->expected_version, 2);
}

TEST(TargetBook, AMissingNodeKeepsItsUnwrittenRequestsUntilItReturns) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "10", 1);
  auto snap = book.build_snapshot(1);
  state_of(*snap, "a:1")->slots[0].count_request();
  book.on_missing("a:1");
  EXPECT_TRUE(book.plan_flush().empty());
  EXPECT_EQ(book.unflushed_total(), 1u);
  // A missing node does not change routing: only the children list does.
  EXPECT_EQ(book.build_snapshot(2)->targets.size(), 1u);
  // The agent re-creates the node (session expiry) with the last count it saw.
  book.set_members({"a:1"}, 10);
  book.on_read("a:1", "10", 0);
  auto w = book.plan_flush();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].count, 11u);
  EXPECT_EQ(w[0].expected_version, 0);
}

TEST(TargetBook, ANewTargetJoinsLevelWithTheLeastLoadedInsteadOfAtItsLowCount) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1", "b:2"}, 0);
  book.on_read("a:1", "100000", 1);
  book.on_read("b:2", "100400", 1);
  auto snap = book.build_snapshot(1);
  // Targets first seen together start level too: history before this proxy saw them says
  // nothing about the load they can take now.
  EXPECT_EQ(base_of(*snap, "a:1"), 0u);
  EXPECT_EQ(base_of(*snap, "b:2"), 0u);
  book.on_read("b:2", "100400", 1);
  book.on_read("a:1", "100300", 2);  // a took 300 requests since
  snap = book.build_snapshot(2);
  EXPECT_EQ(base_of(*snap, "a:1"), 300u);
  book.set_members({"a:1", "b:2", "c:3"}, 0);
  // A re-read of members that stayed (the periodic refresh) keeps their place: only
  // newcomers are levelled.
  book.on_read("a:1", "100300", 2);
  book.on_read("b:2", "100400", 1);
  book.on_read("c:3", "0", 0);
  snap = book.build_snapshot(3);
  EXPECT_EQ(base_of(*snap, "a:1"), 300u);
  EXPECT_EQ(base_of(*snap, "c:3"), 0u);  // level with the least loaded (b:2), not 100000 below
  // Later growth of the counts moves the bases one for one.
  book.on_read("c:3", "50", 1);
  snap = book.build_snapshot(4);
  EXPECT_EQ(base_of(*snap, "c:3"), 50u);
}

TEST(TargetBook, WeightsReachTheSnapshotAndANewcomerJoinsLevelPerUnitOfWeight) {
  TargetBook book(1, fake_resolve);
  two_members_grown_to(book, "100", 1);
  book.set_members({"a:1", "b:2", "c:3"}, 0);
  book.set_weight("c:3", 3);
  book.on_read("c:3", "7", 0);
  auto snap = book.build_snapshot(1);
  // a and b carry 100 per unit of weight; c joins at 300 = 100 per unit of its weight 3.
  EXPECT_EQ(base_of(*snap, "a:1"), 100u);
  EXPECT_EQ(base_of(*snap, "c:3"), 300u);
  for (const auto& t : snap->targets) EXPECT_EQ(t.weight, t.state->name == "c:3" ? 3u : 1u) << t.state->name;
  // A weight change re-levels in the new units; weight 0 (not routed) never reaches here.
  book.set_weight("c:3", 2);
  book.set_weight("c:3", 0);
  snap = book.build_snapshot(2);
  EXPECT_EQ(base_of(*snap, "c:3"), 200u);
}

TEST(TargetBook, ANodeReCreatedAtALowerCountIsLevelledAgainNotFlooded) {
  TargetBook book(1, fake_resolve);
  two_members_grown_to(book, "5000", 50);
  // b's agent restarts: its node comes back at count 0, version 0.
  book.set_members({"a:1"}, 10);
  auto again = book.set_members({"a:1", "b:2"}, 20);
  EXPECT_EQ(again, (std::vector<std::string>{"b:2"}));  // the returning member is read again
  book.on_read("a:1", "5000", 50);
  book.on_read("b:2", "0", 0);
  auto snap = book.build_snapshot(1);
  EXPECT_EQ(base_of(*snap, "b:2"), base_of(*snap, "a:1"));
  // And the next write to b goes on the new node's version, from the count b had reached:
  // a cumulative count never goes backwards (see the expiry test below).
  state_of(*snap, "b:2")->slots[0].count_request();
  auto w = book.plan_one("b:2");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->count, 5001u);
  EXPECT_EQ(w->expected_version, 0);
}

TEST(TargetBook, ANodeReCreatedBehindWhatWasWrittenIsRestoredToTheWrittenTotal) {
  // The agent's session expires just after this proxy wrote 140; the agent had last read 100
  // and re-creates its node with that. The node is written back to 140 plus what is pending,
  // version-checked against the new node, and once more only if nothing is pending.
  for (bool pending : {true, false}) {
    SCOPED_TRACE(pending);
    TargetBook book(1, fake_resolve);
    book.set_members({"a:1"}, 0);
    book.on_read("a:1", "100", 3, 100);
    auto snap = book.build_snapshot(1);
    for (int i = 0; i < 40; ++i) state_of(*snap, "a:1")->slots[0].count_request();
    auto w = book.plan_one("a:1");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->count, 140u);
    EXPECT_TRUE(book.on_written(*w, 4, 100));
    if (pending) state_of(*snap, "a:1")->slots[0].count_request();
    book.on_missing("a:1");
    book.on_read("a:1", "100", 0, 200);  // the agent's new node
    w = book.plan_one("a:1");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->count, pending ? 141u : 140u);
    EXPECT_EQ(w->expected_version, 0);
    EXPECT_EQ(w->czxid, 200);
    EXPECT_TRUE(book.on_written(*w, 1, 200));
    EXPECT_TRUE(book.plan_flush().empty());
    EXPECT_EQ(book.unflushed_total(), 0u);
    // A node that came back higher (the agent saw a later count) is simply added to.
    book.on_read("a:1", "150", 0, 300);
    EXPECT_TRUE(book.plan_flush().empty());
  }
}

TEST(TargetBook, AFleetLeaderRestoresARecreatedNodeInItsLedgerWrite) {
  TargetBook book(1, fake_resolve);
  book.set_balance_on_own_requests(true);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "0", 0, 100);
  fleet::Deltas unwritable;
  auto writes = book.plan_fleet({{"a:1", 30}}, &unwritable);  // a follower's batch
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].count, 30u);
  EXPECT_TRUE(book.on_fleet_written(writes[0], 1, 100));
  book.on_read("a:1", "0", 0, 200);  // re-created by an agent that never saw a write
  writes = book.plan_fleet({}, &unwritable);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].count, 30u);
  EXPECT_EQ(writes[0].expected_version, 0);
  EXPECT_EQ(writes[0].czxid, 200);
  EXPECT_TRUE(book.on_fleet_written(writes[0], 1, 200));
  EXPECT_TRUE(book.plan_fleet({}, &unwritable).empty());
  EXPECT_TRUE(unwritable.empty());
}

TEST(TargetBook, ATargetForgottenWhileAwayIsStillRestoredWhenItReturns) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "77", 9, 100);
  book.set_members({}, 1000);
  book.prune(10000, 1000);
  EXPECT_EQ(book.rows().size(), 0u);
  book.set_members({"a:1"}, 20000);
  book.on_read("a:1", "0", 0, 200);
  auto w = book.plan_one("a:1");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->count, 77u);
}

// The departed floors are bounded: one more departure than the bound drops the first name in
// sort order (that target restarts from its node's count); the others are still restored.
TEST(TargetBook, DepartedFloorsStopAtTheirBoundDroppingTheFirstName) {
  TargetBook book(1, fake_resolve);
  std::vector<std::string> names;
  for (size_t i = 0; i <= TargetBook::kDepartedFloorsMax; ++i) names.push_back("h" + std::to_string(10000 + i) + ":1");
  book.set_members(names, 0);
  for (const std::string& n : names) book.on_read(n, "77", 9, 100);
  book.set_members({}, 1000);
  book.prune(10000, 1000);
  EXPECT_EQ(book.rows().size(), 0u);
  const std::string& first = names.front();
  const std::string& last = names.back();
  book.set_members({first, last}, 20000);
  book.on_read(first, "5", 0, 200);
  book.on_read(last, "5", 0, 201);
  auto dropped = book.plan_one(first);
  auto kept = book.plan_one(last);
  EXPECT_FALSE(dropped && dropped->count != 5u);  // nothing to restore: its floor was dropped
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->count, 77u);
}

TEST(TargetBook, ReadAllReturnsEveryMemberForAListThatHidesARecreatedNode) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1", "b:2"}, 0);
  book.on_read("a:1", "10", 0, 100);
  book.on_read("b:2", "10", 0, 101);
  EXPECT_TRUE(book.set_members({"a:1", "b:2"}, 10).empty());
  EXPECT_EQ(book.set_members({"a:1", "b:2"}, 20, true), (std::vector<std::string>{"a:1", "b:2"}));
}

TEST(TargetBook, ANewIncarnationAtTheSameVersionIsAdoptedAndLevelledAgain) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1", "b:2"}, 0);
  book.on_read("a:1", "100", 0, 100);
  book.on_read("b:2", "100", 0, 101);
  auto snap = book.build_snapshot(1);
  for (int i = 0; i < 7; ++i) state_of(*snap, "b:2")->slots[0].count_request();
  // b's node is deleted and created again (same name, version 0 again, a new creation zxid)
  // with the count its agent carried; the re-read shows the new incarnation.
  book.on_read("b:2", "5000", 0, 205);
  auto w = book.plan_one("b:2");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->count, 5007u);  // on top of the new node's count, not the old node's 100
  EXPECT_EQ(w->expected_version, 0);
  EXPECT_TRUE(book.on_written(*w, 1, 205));
  snap = book.build_snapshot(2);
  // Levelled with a (plus the 7 requests it has taken since), not starved behind 5000.
  EXPECT_EQ(base_of(*snap, "b:2"), base_of(*snap, "a:1") + 7);
}

TEST(TargetBook, WritesCarryTheIncarnationTheyWerePlannedAgainst) {
  // The coordinator settles a write lost to CONNECTIONLOSS by reading the node back; only a
  // read of the same incarnation can say "not landed" from an unchanged version.
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "10", 0, 100);
  auto snap = book.build_snapshot(1);
  state_of(*snap, "a:1")->slots[0].count_request();
  auto writes = book.plan_flush();
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].czxid, 100);
  book.on_read("a:1", "10", 0, 200);  // re-created at the same version
  auto w = book.plan_one("a:1");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->czxid, 200);
}

TEST(TargetBook, AWriteThatLandsOnAnotherIncarnationIsReported) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "100", 0, 100);
  auto snap = book.build_snapshot(1);
  state_of(*snap, "a:1")->slots[0].count_request();
  auto w = book.plan_one("a:1");
  ASSERT_TRUE(w);
  EXPECT_FALSE(book.on_written(*w, 1, 300));  // the stat names a node created after our read
  state_of(*snap, "a:1")->slots[0].count_request();
  w = book.plan_one("a:1");
  ASSERT_TRUE(w);
  EXPECT_TRUE(book.on_written(*w, 2, 300));  // from then on that incarnation is the known one
  EXPECT_TRUE(book.on_written(*w, 3, 0));    // no stat: nothing to compare
}

TEST(TargetBook, AssumedWriteMovesRequestsWithoutTouchingTheCount) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "5", 1);
  auto snap = book.build_snapshot(1);
  state_of(*snap, "a:1")->slots[0].count_request();
  auto w = book.plan_flush();
  ASSERT_EQ(w.size(), 1u);
  book.on_assumed_written(w[0]);
  book.on_read("a:1", "9", 3);
  EXPECT_TRUE(book.plan_flush().empty());  // never written twice
  auto rows = book.rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].count, 9u);
  EXPECT_EQ(rows[0].version, 3);
}

TEST(TargetBook, ForgetsALeftTargetOnlyAfterItsRequestsAreWrittenAndTheLingerPassed) {
  TargetBook book(1, fake_resolve);
  book.set_members({"a:1"}, 0);
  book.on_read("a:1", "5", 1);
  book.set_members({}, 1000);
  book.prune(1500, 1000);
  EXPECT_EQ(book.rows().size(), 1u);
  book.prune(2000, 1000);
  EXPECT_EQ(book.rows().size(), 0u);
}

TEST(TargetBook, CountNodesThatOutliveMembershipGetALeftTargetsLastRequestsWritten) {
  for (bool write_left : {false, true}) {
    SCOPED_TRACE(write_left);
    TargetBook book(1, fake_resolve);
    book.set_write_left_members("", write_left);
    book.set_members({"a:1"}, 0);
    book.on_read("a:1", "5", 1);
    auto snap = book.build_snapshot(1);
    state_of(*snap, "a:1")->slots[0].count_request();
    state_of(*snap, "a:1")->slots[0].count_request();
    book.set_members({}, 1000);  // left with two requests not yet written
    auto writes = book.plan_flush();
    EXPECT_EQ(book.pending_members().size(), write_left ? 1u : 0u);
    if (!write_left) {
      EXPECT_TRUE(writes.empty());
      continue;
    }
    ASSERT_EQ(writes.size(), 1u);
    EXPECT_EQ(writes[0].count, 7u);
    book.prune(5000, 1000);
    EXPECT_EQ(book.rows().size(), 1u);  // kept until written
    book.on_written(writes[0], 2);
    book.prune(5000, 1000);
    EXPECT_EQ(book.rows().size(), 0u);
  }
}

// Services: one book, one group per source; a children list touches only its group, each
// group's snapshot holds only its own targets, keys beyond the default group are full paths
// (what the writes and the fleet's batches use), and all groups' counts are planned together.
TEST(TargetBook, GroupsKeepEachSourcesTargetsApartAndFlushTogether) {
  TargetBook book(1, fake_resolve);
  const std::string api = "/services/api/targets/";
  EXPECT_EQ(book.set_members({"a:1", "b:2"}, 0), (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(book.set_members({"a:1", "c:3"}, 0, false, api),
            (std::vector<std::string>{api + "a:1", api + "c:3"}));
  EXPECT_EQ(TargetBook::group_of(api + "a:1"), api);
  EXPECT_EQ(TargetBook::group_of("a:1"), "");
  for (const char* key : {"a:1", "b:2"}) book.on_read(key, "10", 1);
  for (const std::string& key : {api + "a:1", api + "c:3"}) book.on_read(key, "500", 1);
  auto flags = book.build_snapshot(1);
  auto apis = book.build_snapshot(1, api);
  ASSERT_EQ(flags->targets.size(), 2u);
  ASSERT_EQ(apis->targets.size(), 2u);
  // The same host:port in two sources: two states, each named host:port.
  EXPECT_NE(state_of(*flags, "a:1"), state_of(*apis, "a:1"));
  EXPECT_NE(state_of(*apis, "c:3"), nullptr);
  // Levelled within its group: the api group's counts (500) do not lift the default's.
  EXPECT_EQ(base_of(*flags, "a:1"), 0u);
  EXPECT_EQ(base_of(*apis, "c:3"), 0u);
  state_of(*flags, "b:2")->slots[0].count_request();
  state_of(*apis, "c:3")->slots[0].count_request();
  auto writes = book.plan_flush();
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].name, api + "c:3");
  EXPECT_EQ(writes[0].count, 501u);
  EXPECT_EQ(writes[1].name, "b:2");
  EXPECT_EQ(book.unflushed_members(api), 1u);
  // A new list for one group leaves the other alone.
  book.set_members({}, 10, false, api);
  EXPECT_EQ(book.build_snapshot(2, api)->targets.size(), 0u);
  EXPECT_EQ(book.build_snapshot(2)->targets.size(), 2u);
  // A name with a slash is never a target.
  EXPECT_TRUE(book.set_members({"x/y:1"}, 20, false, api).empty());
}

}  // namespace
}  // namespace ringmaster::discovery
