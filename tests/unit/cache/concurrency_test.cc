// Several reactors on one cache at once: lookups, inserts, claims, invalidations and purges
// on overlapping keys. Asserts the byte bound and reference counts; TSan checks the locking.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "ringmaster/cache/cache.h"
#include "test_support.h"

namespace ringmaster::cache {
namespace {

TEST(CacheConcurrency, FourReactorsOnOverlappingKeysKeepTheBound) {
  constexpr uint64_t kCapacity = 64 * 1024;
  constexpr int kThreads = 4;
  constexpr int kIterations = 4'000;
  constexpr int kKeys = 97;
  Cache cache(kCapacity, 4);
  std::atomic<bool> over_capacity{false};
  std::atomic<uint64_t> hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t seed = 0x9e3779b97f4a7c15ull * (t + 1);
      std::vector<EntryRef> held;  // references kept across evictions, dropped later
      for (int i = 0; i < kIterations; ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int k = static_cast<int>((seed >> 33) % kKeys);
        std::string target = "/k" + std::to_string(k);
        std::string key = test_support::key_of(target);
        uint64_t hash = hash_key(key);
        Fields fields{{"Accept-Encoding", (seed & 1) ? "gzip" : "identity"}};
        int64_t now = 1'000 + i;
        RequestInfo info = test_support::get_request(fields, target);
        if (EntryRef hit = cache.lookup(key, hash, info, now)) {
          hits.fetch_add(1, std::memory_order_relaxed);
          EXPECT_EQ(hit->key, key);
          EXPECT_FALSE(hit->body.empty());
          if (held.size() < 16) held.push_back(std::move(hit));
          continue;
        }
        Cache::Claim c = cache.claim(key, hash, static_cast<unsigned>(t), now, 50);
        if (c == Cache::Claim::wait) continue;
        test_support::EntrySpec spec;
        spec.target = target;
        spec.body = std::string(100 + (seed >> 40) % 3000, static_cast<char>('a' + t));
        spec.request_fields = fields;
        spec.response_fields = {{"Vary", "Accept-Encoding"}};
        spec.freshness_ms = 500;
        spec.now_ms = now;
        bool stored = cache.insert(test_support::make_entry(spec), cache.epoch());
        if (c == Cache::Claim::owner) cache.release(key, hash, stored || (seed & 8), now, 20);
        if (cache.stats().bytes.load() > static_cast<int64_t>(kCapacity)) over_capacity = true;
        if (i % 997 == 0) cache.invalidate_all();
        if (i % 1499 == 0) cache.purge_path(target);
        if (i % 64 == 0) held.clear();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_FALSE(over_capacity.load());
  EXPECT_GT(hits.load(), 0u);
  EXPECT_LE(cache.stats().bytes.load(), static_cast<int64_t>(kCapacity));
  EXPECT_GE(cache.stats().entries.load(), 0);
  EXPECT_GT(cache.stats().evictions.load(), 0u);
}

}  // namespace
}  // namespace ringmaster::cache
