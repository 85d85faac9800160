// The shared cache: hits, Vary variants, freshness, epochs, SIEVE eviction, the byte bound,
// entry lifetime across eviction, and purge.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "ringmaster/cache/cache.h"
#include "test_support.h"

// Counts allocations made by this thread while `counting` is set: the hit path must make none.
namespace {
thread_local bool counting = false;
thread_local size_t allocations = 0;
}  // namespace

// Replacing the global allocation functions is the standard's own hook; GCC's
// mismatched-new-delete check mistakes the free() inside them for a user's mismatch.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  if (counting) ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { ::operator delete(p); }
void operator delete[](void* p, size_t) noexcept { ::operator delete(p); }
#pragma GCC diagnostic pop

namespace ringmaster::cache {
namespace {

using test_support::lookup;
using test_support::make_entry;

constexpr int64_t kNow = 1'000;

TEST(Cache, HitAfterInsertServesTheStoredBytes) {
  Cache cache(1 << 20, 4);
  EXPECT_FALSE(lookup(cache, "/a", kNow));
  ASSERT_TRUE(cache.insert(make_entry("/a", "body-a"), cache.epoch()));
  EntryRef hit = lookup(cache, "/a", kNow + 10);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->body, "body-a");
  EXPECT_EQ(hit->head, "HTTP/1.1 200 OK\r\n");
  EXPECT_FALSE(lookup(cache, "/b", kNow));
  EXPECT_FALSE(lookup(cache, "/a", kNow, {}, "other.example"));
  EXPECT_EQ(cache.stats().stores.load(), 1u);
  EXPECT_EQ(cache.stats().entries.load(), 1);
  EXPECT_EQ(cache.stats().bytes.load(), static_cast<int64_t>(hit->charge()));
}

TEST(Cache, HeadRequestIsAnsweredFromTheStoredGet) {
  Cache cache(1 << 20, 1);
  cache.insert(make_entry("/a"), cache.epoch());
  Fields none;
  RequestInfo head = test_support::get_request(none, "/a");
  head.is_get = false;
  head.is_head = true;
  std::string key;
  primary_key(head, key);
  EXPECT_TRUE(cache.lookup(key, hash_key(key), head, kNow));
}

TEST(Cache, HitMakesNoAllocation) {
  Cache cache(1 << 20, 4);
  test_support::EntrySpec spec;
  spec.request_fields = {{"Accept-Encoding", "gzip"}};
  spec.response_fields = {{"Vary", "Accept-Encoding"}, {"ETag", "\"x\""}};
  cache.insert(make_entry(spec), cache.epoch());
  Fields fields{{"Accept-Encoding", "gzip"}, {"If-None-Match", "\"x\""}};
  RequestInfo info = test_support::get_request(fields);
  std::string key;
  primary_key(info, key);
  uint64_t hash = hash_key(key);
  counting = true;
  allocations = 0;
  EntryRef hit = cache.lookup(key, hash, info, kNow);
  bool is_304 = hit && not_modified(*hit, fields);
  int64_t age = hit ? age_seconds(*hit, kNow) : -1;
  hit.reset();
  counting = false;
  EXPECT_TRUE(is_304);
  EXPECT_EQ(age, 0);
  EXPECT_EQ(allocations, 0u);
}

TEST(CacheVary, DifferentVaryValueIsAMiss) {
  Cache cache(1 << 20, 1);
  test_support::EntrySpec spec;
  spec.request_fields = {{"Accept-Encoding", "gzip"}};
  spec.response_fields = {{"Vary", "Accept-Encoding"}};
  cache.insert(make_entry(spec), cache.epoch());
  EXPECT_TRUE(lookup(cache, "/index.html", kNow, {{"accept-encoding", " gzip "}}));
  EXPECT_FALSE(lookup(cache, "/index.html", kNow, {{"Accept-Encoding", "identity"}}));
  EXPECT_FALSE(lookup(cache, "/index.html", kNow, {}));
  EXPECT_FALSE(lookup(cache, "/index.html", kNow, {{"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br"}}));
}

TEST(CacheVary, AbsentFieldIsItsOwnVariant) {
  Cache cache(1 << 20, 1);
  test_support::EntrySpec spec;
  spec.response_fields = {{"Vary", "Accept-Encoding"}};
  cache.insert(make_entry(spec), cache.epoch());
  EXPECT_TRUE(lookup(cache, "/index.html", kNow, {}));
  EXPECT_FALSE(lookup(cache, "/index.html", kNow, {{"Accept-Encoding", "gzip"}}));
}

TEST(CacheVary, GzipAndIdentityVariantsAreStoredSideBySide) {
  Cache cache(1 << 20, 1);
  test_support::EntrySpec gzip;
  gzip.body = "gzipped";
  gzip.request_fields = {{"Accept-Encoding", "gzip"}};
  gzip.response_fields = {{"Vary", "Accept-Encoding"}, {"Content-Encoding", "gzip"}};
  test_support::EntrySpec identity;
  identity.body = "plain";
  identity.request_fields = {{"Accept-Encoding", "identity"}};
  identity.response_fields = {{"Vary", "Accept-Encoding"}};
  ASSERT_TRUE(cache.insert(make_entry(gzip), cache.epoch()));
  ASSERT_TRUE(cache.insert(make_entry(identity), cache.epoch()));
  EXPECT_EQ(cache.stats().entries.load(), 2);
  EntryRef a = lookup(cache, "/index.html", kNow, {{"Accept-Encoding", "gzip"}});
  EntryRef b = lookup(cache, "/index.html", kNow, {{"Accept-Encoding", "identity"}});
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->body, "gzipped");
  EXPECT_EQ(b->body, "plain");
}

TEST(CacheVary, ResponseWithNewVaryRuleReplacesOldVariants) {
  Cache cache(1 << 20, 1);
  test_support::EntrySpec old_rule;
  old_rule.body = "any-language";
  cache.insert(make_entry(old_rule), cache.epoch());  // no Vary: would match every request
  test_support::EntrySpec new_rule;
  new_rule.body = "english";
  new_rule.request_fields = {{"Accept-Language", "en"}};
  new_rule.response_fields = {{"Vary", "Accept-Language"}};
  cache.insert(make_entry(new_rule), cache.epoch());
  EXPECT_EQ(cache.stats().entries.load(), 1);
  EXPECT_FALSE(lookup(cache, "/index.html", kNow, {{"Accept-Language", "fr"}}));
  EXPECT_EQ(lookup(cache, "/index.html", kNow, {{"Accept-Language", "en"}})->body, "english");
}

TEST(Cache, SameKeyAndVariantIsReplaced) {
  Cache cache(1 << 20, 1);
  cache.insert(make_entry("/a", "first"), cache.epoch());
  EntryRef held = lookup(cache, "/a", kNow);
  EntryRef second = make_entry("/a", "second, longer");
  int64_t second_charge = static_cast<int64_t>(second->charge());
  ASSERT_TRUE(cache.insert(std::move(second), cache.epoch()));
  EXPECT_EQ(lookup(cache, "/a", kNow)->body, "second, longer");
  EXPECT_EQ(held->body, "first");  // a reader of the old one is unaffected
  EXPECT_EQ(cache.stats().entries.load(), 1);
  EXPECT_EQ(cache.stats().bytes.load(), second_charge);
  EXPECT_EQ(cache.stats().evictions.load(), 0u);
}

TEST(Cache, StaleEntryIsAMissAndIsDropped) {
  Cache cache(1 << 20, 1);
  test_support::EntrySpec spec;
  spec.freshness_ms = 1'000;
  spec.initial_age_ms = 200;
  spec.now_ms = kNow;
  cache.insert(make_entry(spec), cache.epoch());
  EXPECT_TRUE(lookup(cache, "/index.html", kNow + 799));
  EXPECT_FALSE(lookup(cache, "/index.html", kNow + 800));
  EXPECT_EQ(cache.stats().entries.load(), 0);
  EXPECT_EQ(cache.stats().bytes.load(), 0);
}

TEST(Cache, StaleEntryWithAValidatorIsKeptAndHandedOutForRevalidation) {
  Cache cache(1 << 20, 1);
  test_support::EntrySpec spec;
  spec.freshness_ms = 1'000;
  spec.response_fields = {{"ETag", "\"v\""}};
  cache.insert(make_entry(spec), cache.epoch());
  Fields none;
  RequestInfo info = test_support::get_request(none);
  std::string key = test_support::key_of("/index.html");
  EntryRef stale;
  EXPECT_FALSE(cache.lookup(key, hash_key(key), info, kNow + 5'000, &stale));
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->etag, "\"v\"");
  EXPECT_EQ(cache.stats().entries.load(), 1);
  EXPECT_FALSE(lookup(cache, "/index.html", kNow + 5'000));  // no stale asked for: a plain miss
  EXPECT_EQ(cache.stats().entries.load(), 1);
}

TEST(Cache, StaleEntryIsKeptWhileItMayStillBeServedStale) {
  Cache cache(1 << 20, 1);
  for (const char* target : {"/window", "/forbidden"}) {
    test_support::EntrySpec spec;
    spec.target = target;
    spec.freshness_ms = 1'000;
    if (std::string_view(target) == "/forbidden") spec.response_fields = {{"Cache-Control", "max-age=1, must-revalidate"}};
    EntryRef e = make_entry(spec);
    e->stale_window_ms = 10'000;
    cache.insert(std::move(e), cache.epoch());
  }
  Fields none;
  EntryRef stale;
  std::string key = test_support::key_of("/window");
  EXPECT_FALSE(cache.lookup(key, hash_key(key), test_support::get_request(none, "/window"), kNow + 5'000, &stale));
  EXPECT_TRUE(stale);
  stale.reset();
  key = test_support::key_of("/forbidden");
  EXPECT_FALSE(cache.lookup(key, hash_key(key), test_support::get_request(none, "/forbidden"), kNow + 5'000, &stale));
  EXPECT_FALSE(stale);  // must-revalidate, no validator: dropped
  EXPECT_EQ(cache.stats().entries.load(), 1);
  key = test_support::key_of("/window");
  EXPECT_FALSE(cache.lookup(key, hash_key(key), test_support::get_request(none, "/window"), kNow + 11'001, &stale));
  EXPECT_FALSE(stale);  // past the window: dropped
  EXPECT_EQ(cache.stats().entries.load(), 0);
}

TEST(Cache, LookupDropsAtMostEightStaleVariantsAtOnce) {
  Cache cache(1 << 20, 1);
  const std::string encodings[10] = {"enc0", "enc1", "enc2", "enc3", "enc4", "enc5", "enc6", "enc7", "enc8", "enc9"};
  for (const std::string& encoding : encodings) {
    test_support::EntrySpec spec;
    spec.request_fields = {{"Accept-Encoding", encoding}};
    spec.response_fields = {{"Vary", "Accept-Encoding"}};
    spec.freshness_ms = 1'000;
    ASSERT_TRUE(cache.insert(make_entry(spec), cache.epoch()));
  }
  ASSERT_EQ(cache.stats().entries.load(), 10);
  EXPECT_FALSE(lookup(cache, "/index.html", kNow + 5'000, {{"Accept-Encoding", "enc0"}}));
  EXPECT_EQ(cache.stats().entries.load(), 2);  // a lookup never allocates to remember more
  EXPECT_FALSE(lookup(cache, "/index.html", kNow + 5'000, {{"Accept-Encoding", "enc0"}}));
  EXPECT_EQ(cache.stats().entries.load(), 0);
  EXPECT_EQ(cache.stats().bytes.load(), 0);
}

TEST(Cache, InvalidateAllMakesEveryEntryAMiss) {
  Cache cache(1 << 20, 4);
  for (int i = 0; i < 50; ++i) cache.insert(make_entry("/k" + std::to_string(i)), cache.epoch());
  uint64_t before = cache.epoch();
  cache.invalidate_all();
  EXPECT_EQ(cache.epoch(), before + 1);
  EXPECT_EQ(cache.stats().invalidations.load(), 1u);
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(lookup(cache, "/k" + std::to_string(i), kNow)) << i;
  EXPECT_EQ(cache.stats().entries.load(), 0);  // each miss dropped what it found
  EXPECT_EQ(cache.stats().bytes.load(), 0);
  ASSERT_TRUE(cache.insert(make_entry("/k1"), cache.epoch()));
  EXPECT_TRUE(lookup(cache, "/k1", kNow));
}

TEST(Cache, ResponseFetchedBeforeAnInvalidationIsNotStored) {
  Cache cache(1 << 20, 1);
  uint64_t epoch_at_request_start = cache.epoch();
  cache.invalidate_all();  // the content changed while the response was on its way
  EXPECT_FALSE(cache.insert(make_entry("/a"), epoch_at_request_start));
  EXPECT_FALSE(lookup(cache, "/a", kNow));
  EXPECT_EQ(cache.stats().entries.load(), 0);
  EXPECT_EQ(cache.stats().stores.load(), 0u);
}

TEST(Cache, ObjectLargerThanAShardIsNotStored) {
  Cache cache(64 * 1024, 4);  // 16 KiB per shard
  EXPECT_FALSE(cache.insert(make_entry("/big", std::string(16 * 1024, 'x')), cache.epoch()));
  EXPECT_FALSE(lookup(cache, "/big", kNow));
  EXPECT_TRUE(cache.insert(make_entry("/small", std::string(15 * 1024, 'x')), cache.epoch()));
  EXPECT_EQ(cache.stats().entries.load(), 1);
}

TEST(Cache, BytesNeverExceedCapacityWhileInsertingMany) {
  constexpr uint64_t kCapacity = 256 * 1024;
  Cache cache(kCapacity, 4);
  uint64_t seed = 12345;
  for (int i = 0; i < 5000; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t body_bytes = (seed >> 33) % 20'000;
    cache.insert(make_entry("/obj/" + std::to_string(i % 700), std::string(body_bytes, 'z')), cache.epoch());
    int64_t bytes = cache.stats().bytes.load();
    ASSERT_LE(bytes, static_cast<int64_t>(kCapacity)) << "after insert " << i;
    ASSERT_GE(bytes, 0);
    if (i % 1000 == 999) cache.invalidate_all();  // dead entries are counted until they go
  }
  EXPECT_GT(cache.stats().evictions.load(), 0u);
  EXPECT_GT(cache.stats().entries.load(), 0);
}

TEST(CacheSieve, FrequentlyHitKeySurvivesOneHitWonders) {
  // One shard holding exactly four entries of equal charge.
  size_t charge = make_entry("/k00")->charge();  // every key here has four characters
  Cache cache(4 * charge, 1);
  for (const char* k : {"/hot", "/k01", "/k02", "/k03"}) ASSERT_TRUE(cache.insert(make_entry(k), cache.epoch()));
  ASSERT_EQ(lookup(cache, "/hot", kNow)->body, "hello");  // sets its visited bit
  // FIFO would evict /hot (the oldest) now; SIEVE gives it a second chance.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(cache.insert(make_entry("/w" + std::to_string(10 + i)), cache.epoch()));
    ASSERT_TRUE(lookup(cache, "/hot", kNow)) << "evicted after wonder " << i;
    EXPECT_EQ(cache.stats().entries.load(), 4);
  }
  EXPECT_FALSE(lookup(cache, "/k01", kNow));
  EXPECT_FALSE(lookup(cache, "/w10", kNow));
  EXPECT_TRUE(lookup(cache, "/w29", kNow));
  EXPECT_EQ(cache.stats().evictions.load(), 20u);
}

TEST(CacheSieve, HandEvictsTheFirstUnvisitedFromTheTail) {
  size_t charge = make_entry("/z")->charge();
  Cache cache(3 * charge, 1);
  for (const char* k : {"/a", "/b", "/c"}) cache.insert(make_entry(k), cache.epoch());
  lookup(cache, "/a", kNow);
  lookup(cache, "/b", kNow);
  // Queue, head to tail: c b a. The hand clears /a and /b and evicts /c, the head.
  cache.insert(make_entry("/d"), cache.epoch());
  EXPECT_FALSE(lookup(cache, "/c", kNow));
  EXPECT_TRUE(lookup(cache, "/a", kNow));  // visited again
  // Queue: d b a. The hand went past the head, so it wraps to the tail: /a is visited (cleared),
  // /b is not (its bit was cleared by the last sweep) and goes; /d, newer, is not reached.
  cache.insert(make_entry("/e"), cache.epoch());
  EXPECT_FALSE(lookup(cache, "/b", kNow));
  EXPECT_TRUE(lookup(cache, "/a", kNow));
  EXPECT_TRUE(lookup(cache, "/d", kNow));
  EXPECT_TRUE(lookup(cache, "/e", kNow));
}

TEST(CacheSieve, HandPersistsBetweenEvictions) {
  size_t charge = make_entry("/z")->charge();
  Cache cache(4 * charge, 1);
  for (const char* k : {"/a", "/b", "/c", "/d"}) cache.insert(make_entry(k), cache.epoch());
  lookup(cache, "/a", kNow);
  cache.insert(make_entry("/e"), cache.epoch());  // clears /a, evicts /b; the hand rests on /c
  EXPECT_FALSE(lookup(cache, "/b", kNow));
  cache.insert(make_entry("/f"), cache.epoch());  // from /c, not from the tail (/a, unvisited now)
  EXPECT_FALSE(lookup(cache, "/c", kNow));
  EXPECT_TRUE(lookup(cache, "/a", kNow));
}

TEST(CacheSieve, EntriesOfAnOldEpochAreEvictedFirst) {
  size_t charge = make_entry("/k0")->charge();
  Cache cache(2 * charge, 1);
  cache.insert(make_entry("/o1"), cache.epoch());
  lookup(cache, "/o1", kNow);
  cache.invalidate_all();
  cache.insert(make_entry("/n1"), cache.epoch());
  lookup(cache, "/n1", kNow);
  EXPECT_EQ(cache.stats().entries.load(), 2);
  cache.insert(make_entry("/n2"), cache.epoch());  // evicts /o1 despite its visited bit
  EXPECT_TRUE(lookup(cache, "/n1", kNow));
  EXPECT_TRUE(lookup(cache, "/n2", kNow));
  EXPECT_EQ(cache.stats().entries.load(), 2);
}

TEST(Cache, EvictedEntryStaysReadableWhileReferenced) {
  size_t charge = make_entry("/k0", std::string(1000, 'a'))->charge();
  Cache cache(charge, 1);
  cache.insert(make_entry("/k0", std::string(1000, 'a')), cache.epoch());
  EntryRef held = lookup(cache, "/k0", kNow);
  ASSERT_TRUE(held);
  cache.insert(make_entry("/k1", std::string(1000, 'b')), cache.epoch());  // evicts /k0
  EXPECT_FALSE(lookup(cache, "/k0", kNow));
  EXPECT_EQ(cache.stats().evictions.load(), 1u);
  EXPECT_EQ(held->refs.load(), 1u);  // only ours is left
  EXPECT_EQ(held->body, std::string(1000, 'a'));  // ASan reports it if the memory were freed
  held.reset();
}

TEST(Cache, PurgePathRemovesEveryHostAndQueryOfThatPath) {
  Cache cache(1 << 20, 8);
  cache.insert(make_entry("/p"), cache.epoch());
  cache.insert(make_entry("/p?x=1"), cache.epoch());
  test_support::EntrySpec other_host;
  other_host.target = "/p";
  other_host.host = "b.example";
  cache.insert(make_entry(other_host), cache.epoch());
  cache.insert(make_entry("/p/child"), cache.epoch());
  cache.insert(make_entry("/q?p"), cache.epoch());
  EXPECT_EQ(cache.purge_path("/p"), 3u);
  EXPECT_EQ(cache.stats().purged.load(), 3u);
  EXPECT_FALSE(lookup(cache, "/p", kNow));
  EXPECT_FALSE(lookup(cache, "/p?x=1", kNow));
  EXPECT_FALSE(lookup(cache, "/p", kNow, {}, "b.example"));
  EXPECT_TRUE(lookup(cache, "/p/child", kNow));
  EXPECT_TRUE(lookup(cache, "/q?p", kNow));
  EXPECT_EQ(cache.stats().entries.load(), 2);
  EXPECT_EQ(cache.purge_path("/nothing"), 0u);
}

TEST(Cache, InvalidateAfterUnsafeRemovesTheTargetAndSameOriginLocations) {
  Cache cache(1 << 20, 8);
  for (const char* t : {"/created/1", "/dir/rel", "/other", "/a?q"}) cache.insert(make_entry(t), cache.epoch());
  for (const char* coding : {"gzip", "br"}) {  // two variants of /a: both go
    test_support::EntrySpec variant;
    variant.target = "/a";
    variant.request_fields = {{"Accept-Encoding", coding}};
    variant.response_fields = {{"Vary", "Accept-Encoding"}};
    cache.insert(make_entry(variant), cache.epoch());
  }
  Fields none;
  RequestInfo post = test_support::get_request(none, "/a");
  Fields response = {{"Location", "http://EXAMPLE.com/created/1"}, {"Content-Location", "http://evil.example/other"}};
  EXPECT_EQ(cache.invalidate_after_unsafe(post, response), 3u);
  EXPECT_FALSE(lookup(cache, "/a", kNow));
  EXPECT_FALSE(lookup(cache, "/created/1", kNow));
  EXPECT_TRUE(lookup(cache, "/other", kNow));  // another origin's URI: untouched
  EXPECT_TRUE(lookup(cache, "/a?q", kNow));    // another target
  RequestInfo put = test_support::get_request(none, "/dir/x");
  EXPECT_EQ(cache.invalidate_after_unsafe(put, {{"Content-Location", "rel"}}), 1u);
  EXPECT_FALSE(lookup(cache, "/dir/rel", kNow));
  EXPECT_EQ(cache.stats().entries.load(), 2);
}

TEST(Cache, DestructionFreesEveryEntryButNotHeldOnes) {
  EntryRef held;
  {
    Cache cache(1 << 20, 2);
    for (int i = 0; i < 100; ++i) cache.insert(make_entry("/d" + std::to_string(i)), cache.epoch());
    held = lookup(cache, "/d7", kNow);
  }
  ASSERT_TRUE(held);
  EXPECT_EQ(held->body, "hello");
}

}  // namespace
}  // namespace ringmaster::cache

namespace ringmaster::cache {
namespace {

// Shards follow the reactors (8 each, at least 16), but never so many that a shard's share is
// smaller than the largest object stored: with 80 reactors a 256 MiB cache would otherwise get
// 1024 shards of 256 KiB and never store an 8 MiB response it was told to.
TEST(CacheShards, EightPerReactorUnlessTheShareGetsSmallerThanTheLargestObject) {
  constexpr uint64_t kMiB = 1 << 20;
  EXPECT_EQ(Cache::shard_count(1024 * kMiB, 1, 1 * kMiB), 16u);
  EXPECT_EQ(Cache::shard_count(1024 * kMiB, 2, 1 * kMiB), 16u);
  EXPECT_EQ(Cache::shard_count(1024 * kMiB, 80, 1 * kMiB), 1024u);
  EXPECT_EQ(Cache::shard_count(64 * kMiB, 80, 1 * kMiB), 64u);
  EXPECT_EQ(Cache::shard_count(256 * kMiB, 80, 8 * kMiB), 32u);  // the defaults
  EXPECT_EQ(Cache::shard_count(256 * kMiB, 2, 8 * kMiB), 16u);   // unchanged on small machines
  EXPECT_EQ(Cache::shard_count(1 * kMiB, 80, 8 * kMiB), 1u);     // smaller than one object
  for (unsigned reactors : {1u, 3u, 64u, 65u, 1024u}) {
    unsigned shards = Cache::shard_count(512 * kMiB, reactors, 4 * kMiB);
    EXPECT_EQ(shards & (shards - 1), 0u) << reactors;  // a power of two, as Cache requires
    EXPECT_GE(512 * kMiB / shards, 4 * kMiB) << reactors;
  }
}

}  // namespace
}  // namespace ringmaster::cache
