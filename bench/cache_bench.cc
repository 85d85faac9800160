// cache micro-benchmarks: what a reactor pays per request on the cache path — a hit, a miss,
// storing into a full cache (which evicts) — and the hit ratio SIEVE keeps under a Zipf(0.99)
// popularity over 100k objects with room for 10% of them, next to LRU and FIFO of the same
// capacity (tiny reference implementations in this file, counted in entries, not bytes; the
// Cache's own figures include its sharding, each shard evicting on its own).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <list>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "ringmaster/cache/cache.h"

namespace {

using namespace ringmaster::cache;

constexpr int64_t kNowMs = 1'000'000;
constexpr size_t kBodyBytes = 1024;

// A browser-like request: the fields a lookup walks for Vary.
const Fields& request_fields() {
  static const Fields fields{{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
                             {"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
                             {"Accept-Language", "en-US,en;q=0.5"},
                             {"Accept-Encoding", "gzip, deflate, br, zstd"},
                             {"Cookie", "session=6f1c2a9e4b7d4e2f9a1b3c5d7e9f0a1b; theme=dark"}};
  return fields;
}

const Fields& response_fields() {
  static const Fields fields{{"Date", "Tue, 15 Oct 2024 08:12:31 GMT"},
                             {"Content-Type", "text/html; charset=utf-8"},
                             {"Cache-Control", "public, max-age=3600"},
                             {"ETag", "\"5f3a-1a2b3c4d\""},
                             {"Vary", "Accept-Encoding"},
                             {"Server", "backend/1.4"}};
  return fields;
}

struct Key {
  std::string target;
  std::string key;
  uint64_t hash = 0;
};

Key make_key(size_t i) {
  char target[32];
  std::snprintf(target, sizeof target, "/item/%07zu", i);
  Key k;
  k.target = target;
  RequestInfo info;
  info.is_get = true;
  info.host = "shop.example.com";
  info.target = k.target;
  primary_key(info, k.key);
  k.hash = hash_key(k.key);
  return k;
}

RequestInfo request_for(const Key& k) {
  RequestInfo info;
  info.is_get = true;
  info.host = "shop.example.com";
  info.target = k.target;
  info.fields = &request_fields();
  return info;
}

EntryRef build_entry(const Key& k, const std::string& body) {
  StoreDecision d;
  d.store = true;
  d.freshness_ms = 3'600'000;
  EntryBuilder b(k.key, k.hash, request_for(k), 200, response_fields(), d, 1 << 20);
  b.append_body(body.data(), body.size());
  return b.finish(kNowMs);
}

size_t entry_charge() {
  std::string body(kBodyBytes, 'x');
  return build_entry(make_key(0), body)->charge();
}

// ---- Hit, miss, insert ----

constexpr size_t kResidentKeys = 10'000;

struct Filled {
  Cache cache{64ull << 20, 16};
  std::vector<Key> keys;
  Filled() {
    std::string body(kBodyBytes, 'x');
    for (size_t i = 0; i < kResidentKeys; ++i) {
      keys.push_back(make_key(i));
      cache.insert(build_entry(keys.back(), body), cache.epoch());
    }
  }
};

Filled& filled() {
  static Filled f;
  return f;
}

void BM_LookupHit(benchmark::State& state) {
  Filled& f = filled();
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    const Key& k = f.keys[i++ % kResidentKeys];
    EntryRef hit = f.cache.lookup(k.key, k.hash, request_for(k), kNowMs);
    benchmark::DoNotOptimize(hit.get());
    if (!hit) state.SkipWithError("unexpected miss");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LookupHit)->Threads(1)->Threads(2);

// The same key every time: the entry stays in L1, so this is the floor (lock, probe, compare).
void BM_LookupHitOneKey(benchmark::State& state) {
  Filled& f = filled();
  const Key& k = f.keys[42];
  RequestInfo info = request_for(k);
  for (auto _ : state) {
    EntryRef hit = f.cache.lookup(k.key, k.hash, info, kNowMs);
    benchmark::DoNotOptimize(hit.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LookupHitOneKey);

// The whole per-request cache work of a hit before sending: policy, key, hash, lookup,
// conditional check, Age.
void BM_HitPath(benchmark::State& state) {
  Filled& f = filled();
  std::string key;
  size_t i = 0;
  for (auto _ : state) {
    const Key& k = f.keys[i++ % kResidentKeys];
    RequestInfo info = request_for(k);
    RequestPolicy policy = classify_request(info);
    primary_key(info, key);
    EntryRef hit = f.cache.lookup(key, hash_key(key), info, kNowMs);
    bool not_mod = policy.lookup && hit && not_modified(*hit, request_fields());
    benchmark::DoNotOptimize(not_mod);
    benchmark::DoNotOptimize(age_seconds(*hit, kNowMs));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HitPath);

void BM_LookupMiss(benchmark::State& state) {
  Filled& f = filled();
  std::vector<Key> absent;
  for (size_t i = 0; i < 4096; ++i) absent.push_back(make_key(kResidentKeys + 1 + i));
  size_t i = 0;
  for (auto _ : state) {
    const Key& k = absent[i++ % absent.size()];
    EntryRef hit = f.cache.lookup(k.key, k.hash, request_for(k), kNowMs);
    benchmark::DoNotOptimize(hit.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LookupMiss);

// Storing into a full cache: every insert evicts one entry (equal charges) and frees it.
// Entries are built outside the timed region, a batch at a time.
void BM_InsertEvict(benchmark::State& state) {
  const size_t charge = entry_charge();
  Cache cache(1000 * charge, 1);
  std::string body(kBodyBytes, 'x');
  size_t next = 0;
  for (; next < 1000; ++next) cache.insert(build_entry(make_key(next), body), cache.epoch());
  constexpr size_t kBatch = 4096;
  std::vector<EntryRef> batch;
  size_t used = kBatch;
  for (auto _ : state) {
    if (used == kBatch) {
      state.PauseTiming();
      batch.clear();
      for (size_t b = 0; b < kBatch; ++b) batch.push_back(build_entry(make_key(next++), body));
      used = 0;
      state.ResumeTiming();
    }
    cache.insert(std::move(batch[used++]), cache.epoch());
  }
  state.counters["evictions_per_insert"] =
      static_cast<double>(cache.stats().evictions.load()) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_InsertEvict);

// What a store costs the reactor beyond insert: building the entry (head, Vary, body copy).
void BM_BuildEntry(benchmark::State& state) {
  Key k = make_key(1);
  std::string body(kBodyBytes, 'x');
  for (auto _ : state) {
    EntryRef e = build_entry(k, body);
    benchmark::DoNotOptimize(e.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildEntry);

// ---- Zipf(0.99): hit ratio ----

constexpr size_t kZipfKeys = 100'000;
constexpr size_t kZipfCapacityEntries = kZipfKeys / 10;
constexpr size_t kTraceLength = 1 << 22;
constexpr size_t kWarmupRequests = 1'000'000;
// A fixed number of measured requests (not min_time-driven), so the hit ratio is the same
// figure on every run and machine.
constexpr int64_t kMeasuredRequests = 2'000'000;

// A fixed trace of key indexes drawn from Zipf(0.99) (rank r with probability ~ 1/r^0.99),
// ranks shuffled onto keys so that popularity has nothing to do with key order.
const std::vector<uint32_t>& zipf_trace() {
  static const std::vector<uint32_t> trace = [] {
    std::vector<double> cdf(kZipfKeys);
    double sum = 0;
    for (size_t r = 0; r < kZipfKeys; ++r) {
      sum += 1.0 / std::pow(static_cast<double>(r + 1), 0.99);
      cdf[r] = sum;
    }
    std::mt19937_64 rng(42);
    std::vector<uint32_t> key_of_rank(kZipfKeys);
    for (size_t r = 0; r < kZipfKeys; ++r) key_of_rank[r] = static_cast<uint32_t>(r);
    std::shuffle(key_of_rank.begin(), key_of_rank.end(), rng);
    std::uniform_real_distribution<double> u(0.0, sum);
    std::vector<uint32_t> t(kTraceLength);
    for (uint32_t& x : t) {
      size_t r = static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
      x = key_of_rank[std::min(r, kZipfKeys - 1)];
    }
    return t;
  }();
  return trace;
}

const std::vector<Key>& zipf_keys() {
  static const std::vector<Key> keys = [] {
    std::vector<Key> k;
    k.reserve(kZipfKeys);
    for (size_t i = 0; i < kZipfKeys; ++i) k.push_back(make_key(i));
    return k;
  }();
  return keys;
}

// One request against the Cache: a hit, or a miss that stores the response.
bool serve(Cache& cache, const Key& k, const std::string& body) {
  if (cache.lookup(k.key, k.hash, request_for(k), kNowMs)) return true;
  cache.insert(build_entry(k, body), cache.epoch());
  return false;
}

void BM_ZipfSieve(benchmark::State& state) {
  const unsigned shards = static_cast<unsigned>(state.range(0));
  const std::vector<uint32_t>& trace = zipf_trace();
  const std::vector<Key>& keys = zipf_keys();
  std::string body(kBodyBytes, 'x');
  Cache cache(kZipfCapacityEntries * entry_charge(), shards);
  size_t t = 0;
  for (; t < kWarmupRequests; ++t) serve(cache, keys[trace[t]], body);
  uint64_t hits = 0;
  for (auto _ : state) {
    hits += serve(cache, keys[trace[t]], body);
    if (++t == trace.size()) t = 0;
  }
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
  state.counters["resident"] = static_cast<double>(cache.stats().entries.load());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ZipfSieve)->Arg(1)->Arg(16)->Iterations(kMeasuredRequests);

// The reference policies: a key-only simulation (no entries), same capacity in entries.
class Lru {
 public:
  explicit Lru(size_t capacity) : capacity_(capacity) { map_.reserve(capacity * 2); }
  bool access(uint32_t key) {
    auto it = map_.find(key);
    if (it != map_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    if (map_.size() == capacity_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(key);
    map_[key] = order_.begin();
    return false;
  }

 private:
  size_t capacity_;
  std::list<uint32_t> order_;
  std::unordered_map<uint32_t, std::list<uint32_t>::iterator> map_;
};

class Fifo {
 public:
  explicit Fifo(size_t capacity) : capacity_(capacity) { map_.reserve(capacity * 2); }
  bool access(uint32_t key) {
    if (map_.count(key) != 0) return true;
    if (map_.size() == capacity_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(key);
    map_.emplace(key, 0);
    return false;
  }

 private:
  size_t capacity_;
  std::list<uint32_t> order_;
  std::unordered_map<uint32_t, int> map_;
};

template <class Policy>
void zipf_reference(benchmark::State& state) {
  const std::vector<uint32_t>& trace = zipf_trace();
  Policy policy(kZipfCapacityEntries);
  size_t t = 0;
  for (; t < kWarmupRequests; ++t) policy.access(trace[t]);
  uint64_t hits = 0;
  for (auto _ : state) {
    hits += policy.access(trace[t]);
    if (++t == trace.size()) t = 0;
  }
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
}

void BM_ZipfLru(benchmark::State& state) { zipf_reference<Lru>(state); }
BENCHMARK(BM_ZipfLru)->Iterations(kMeasuredRequests);

void BM_ZipfFifo(benchmark::State& state) { zipf_reference<Fifo>(state); }
BENCHMARK(BM_ZipfFifo)->Iterations(kMeasuredRequests);

}  // namespace

BENCHMARK_MAIN();
