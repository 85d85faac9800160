// Miss collapsing: one owner per key goes upstream, the rest wait (and are woken by reactor),
// a stuck owner is taken over, and an uncacheable key is passed straight through for a while.
#include <gtest/gtest.h>

#include <string>

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
  uint64_t woken = cache.release(k.key, k.hash, true, 200, kPassMs);
  EXPECT_EQ(woken, (uint64_t{1} << 3) | (uint64_t{1} << 5) | (uint64_t{1} << 63));
}

TEST(CacheClaim, ReleaseWithoutWaitersWakesNobody) {
  Cache cache(1 << 20, 4);
  Key k("/a");
  ASSERT_EQ(cache.claim(k.key, k.hash, 0, 100, kTimeoutMs), Cache::Claim::owner);
  EXPECT_EQ(cache.release(k.key, k.hash, true, 200, kPassMs), 0u);
  EXPECT_EQ(cache.release(k.key, k.hash, true, 200, kPassMs), 0u);  // unknown now: harmless
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
  EXPECT_EQ(cache.release(k.key, k.hash, false, 200, kPassMs), uint64_t{1} << 1);
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
  EXPECT_EQ(cache.release(k.key, k.hash, true, 7'000, kPassMs), (uint64_t{1} << 4) | (uint64_t{1} << 9));
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
