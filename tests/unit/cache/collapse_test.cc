// Miss collapsing: one owner per key goes upstream, the rest wait (and are woken by reactor),
// a stuck owner is taken over, and an uncacheable key is passed straight through for a while.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ringmaster/cache/cache.h"
#include "test_support.h"

namespace ringmaster::cache {
namespace {

constexpr int64_t kTimeoutMs = 5'000;
constexpr int64_t kPassMs = 10'000;

struct Key {
  std::string key;
  uint64_t hash;
  explicit Key(std::string_view target) : key(test_support::key_of(target)), hash(hash_key(key)) {}
};

std::vector<unsigned> members(const ReactorSet& set) {
  std::vector<unsigned> out;
  set.for_each([&out](unsigned r) { out.push_back(r); });
  return out;
}

using Reactors = std::vector<unsigned>;

TEST(CacheClaim, FirstMissOwnsAndLaterMissesWait) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  EXPECT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner);
  EXPECT_EQ(cache.claim(k.key, k.hash, 1, 101, kTimeoutMs), Cache::Claim::wait);
  EXPECT_EQ(cache.claim(k.key, k.hash, 0, 102, kTimeoutMs), Cache::Claim::wait);  // same reactor, other client
  Key other("/b");
  EXPECT_EQ(cache.claim(other.key, other.hash, 1, 103, kTimeoutMs), Cache::Claim::owner);
}

TEST(CacheClaim, ReleaseReturnsTheReactorsThatWait) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 2, 100, kTimeoutMs), Cache::Claim::owner);
  for (unsigned r : {3u, 5u, 63u, 5u}) EXPECT_EQ(cache.claim(k.key, k.hash, r, 100, kTimeoutMs), Cache::Claim::wait);
  EXPECT_EQ(members(cache.release(k.key, k.hash, true, 200, kPassMs)), (Reactors{3, 5, 63}));
}

// More reactors than one 64-bit word (--threads above 64): every waiting reactor is woken,
// none twice, and the owner's own reactor is included when it also has waiters.
TEST(CacheClaim, ReleaseReturnsWaitingReactorsBeyondSixtyFour) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 70, 100, kTimeoutMs), Cache::Claim::owner);
  for (unsigned r : {79u, 0u, 64u, 70u, 1023u, 127u, 128u, 64u, 63u}) {
    EXPECT_EQ(cache.claim(k.key, k.hash, r, 100, kTimeoutMs), Cache::Claim::wait) << r;
  }
  EXPECT_EQ(members(cache.release(k.key, k.hash, true, 200, kPassMs)),
            (Reactors{0, 63, 64, 70, 79, 127, 128, 1023}));
  EXPECT_TRUE(cache.release(k.key, k.hash, true, 200, kPassMs).empty());
}

TEST(ReactorSet, AddContainsAndOrder) {
  ReactorSet set;
  EXPECT_TRUE(set.empty());
  for (unsigned r : {200u, 1u, 65u, 1u}) set.add(r);
  EXPECT_FALSE(set.empty());
  EXPECT_TRUE(set.contains(1));
  EXPECT_TRUE(set.contains(65));
  EXPECT_TRUE(set.contains(200));
  EXPECT_FALSE(set.contains(64));
  EXPECT_FALSE(set.contains(5000));
  EXPECT_EQ(members(set), (Reactors{1, 65, 200}));
}

TEST(CacheClaim, ReleaseWithoutWaitersWakesNobody) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner);
  EXPECT_TRUE(cache.release(k.key, k.hash, true, 200, kPassMs).empty());
  EXPECT_TRUE(cache.release(k.key, k.hash, true, 200, kPassMs).empty());  // unknown now: harmless
}

TEST(CacheClaim, AfterAStoredReleaseTheNextMissOwnsAgain) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner);
  cache.release(k.key, k.hash, true, 200, kPassMs);
  // (e.g. the entry expired later): a new miss is a new owner, not a pass.
  EXPECT_EQ(cache.claim(k.key, k.hash, 1, 300, kTimeoutMs), Cache::Claim::owner);
}

TEST(CacheClaim, UncacheableResponseMarksTheKeyPassUntilItExpires) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner);
  ASSERT_EQ(cache.claim(k.key, k.hash, 1, 110, kTimeoutMs), Cache::Claim::wait);
  EXPECT_EQ(members(cache.release(k.key, k.hash, false, 200, kPassMs)), Reactors{1});
  EXPECT_EQ(cache.claim(k.key, k.hash, 1, 201, kTimeoutMs), Cache::Claim::pass);
  EXPECT_EQ(cache.claim(k.key, k.hash, 0, 200 + kPassMs - 1, kTimeoutMs), Cache::Claim::pass);
  EXPECT_EQ(cache.claim(k.key, k.hash, 0, 200 + kPassMs, kTimeoutMs), Cache::Claim::owner);
  Key other("/b");
  EXPECT_EQ(cache.claim(other.key, other.hash, 0, 300, kTimeoutMs), Cache::Claim::owner);
}

TEST(CacheClaim, ZeroPassTimeRecordsNoPass) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner);
  cache.release(k.key, k.hash, false, 200, 0);
  EXPECT_EQ(cache.claim(k.key, k.hash, 0, 201, kTimeoutMs), Cache::Claim::owner);
}

TEST(CacheClaim, StuckOwnerIsTakenOverAfterTheTimeoutKeepingWaiters) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 0, 1'000, kTimeoutMs), Cache::Claim::owner);
  ASSERT_EQ(cache.claim(k.key, k.hash, 4, 1'000 + kTimeoutMs - 1, kTimeoutMs), Cache::Claim::wait);
  EXPECT_EQ(cache.claim(k.key, k.hash, 7, 1'000 + kTimeoutMs, kTimeoutMs), Cache::Claim::owner);
  // The new claim is young: later misses wait on the new owner.
  EXPECT_EQ(cache.claim(k.key, k.hash, 9, 1'000 + kTimeoutMs + 1, kTimeoutMs), Cache::Claim::wait);
  EXPECT_EQ(members(cache.release(k.key, k.hash, true, 7'000, kPassMs)), (Reactors{4, 9}));
}

TEST(CacheClaim, PassSetIsCappedDroppingTheOldest) {
  Cache cache(1 << 20, 1);
  constexpr int kKeys = 5'000;  // more than a shard keeps (4096)
  for (int i = 0; i < kKeys; ++i) {
    Key k("/u" + std::to_string(i));
    ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100 + i, kTimeoutMs), Cache::Claim::owner);
    cache.release(k.key, k.hash, false, 100 + i, 1'000'000);
  }
  Key oldest("/u0");
  Key newest("/u" + std::to_string(kKeys - 1));
  EXPECT_EQ(cache.claim(oldest.key, oldest.hash, 0, 10'000, kTimeoutMs), Cache::Claim::owner);
  EXPECT_EQ(cache.claim(newest.key, newest.hash, 0, 10'000, kTimeoutMs), Cache::Claim::pass);
}

TEST(CacheClaim, FullInFlightTableStopsCollapsingUntilOldClaimsLapse) {
  Cache cache(1 << 20, 1);
  constexpr int kKeys = 4'096;  // what a shard tracks at once
  for (int i = 0; i < kKeys; ++i) {
    Key k("/f" + std::to_string(i));
    ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner) << i;
  }
  Key extra("/extra");
  EXPECT_EQ(cache.claim(extra.key, extra.hash, 0, 100, kTimeoutMs), Cache::Claim::pass);
  Key first("/f0");
  EXPECT_EQ(cache.claim(first.key, first.hash, 1, 101, kTimeoutMs), Cache::Claim::wait);  // still tracked
  // Once the claims are past the timeout they are void and make room.
  EXPECT_EQ(cache.claim(extra.key, extra.hash, 0, 100 + kTimeoutMs, kTimeoutMs), Cache::Claim::owner);
}

TEST(CacheClaim, RepassedKeyKeepsItsNewExpiry) {
  Cache cache(1 << 20, 1);
  Key k("/a");
  cache.claim(k.key, k.hash, 0, 0, kTimeoutMs);
  cache.release(k.key, k.hash, false, 0, 100);
  ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner);  // expired
  cache.release(k.key, k.hash, false, 100, 1'000);
  // Expired records of other keys are trimmed; the key's new record keeps it passing.
  Key other("/b");
  cache.claim(other.key, other.hash, 0, 500, kTimeoutMs);
  cache.release(other.key, other.hash, true, 500, 1'000);
  EXPECT_EQ(cache.claim(k.key, k.hash, 0, 1'099, kTimeoutMs), Cache::Claim::pass);
}

}  // namespace
}  // namespace ringmaster::cache
