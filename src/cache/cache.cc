// The cache's storage: shards, each a chained hash table plus a SIEVE queue under one mutex,
// and the shard's miss-collapsing state.
//
// Why SIEVE (Zhang et al., NSDI'24): a hit only sets a bit, so the critical section of a
// hit is a hash probe and a flag store — no list surgery as in LRU — and under the skewed
// (Zipf) popularity of web objects it keeps popular objects at least as well as LRU, while
// one-hit wonders leave quickly. The queue is FIFO by insertion; eviction walks a hand from
// the tail toward the head, clearing visited bits and evicting the first unvisited entry;
// the hand stays where it stopped.
//
// Memory: an entry is charged its key, head, body, Vary strings and a fixed overhead; each
// shard keeps its charge under capacity / shards, subtracting before adding, so the sum of
// shard charges (stats().bytes) never exceeds the capacity. The cache holds one reference
// per stored entry; dropping it (eviction, replacement, invalidation, purge) happens after
// the shard lock is released, so freeing a large body never stalls other reactors.
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/semantics.h"
#include "ringmaster/base/check.h"
#include "ringmaster/cache/cache.h"

namespace ringmaster::cache {

namespace {

// Miss-collapsing bounds, per shard: keys being fetched under a claim, and keys marked pass.
constexpr size_t kInFlightKeysMax = 4096;
constexpr size_t kPassKeysMax = 4096;
// Stale or old-epoch variants a lookup may unlink on its way (it has no room to remember more
// without allocating; the rest go on a later lookup or by eviction).
constexpr size_t kLookupDropsMax = 8;
constexpr size_t kInitialBuckets = 16;

struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view key) const { return hash_key(key); }
};

struct InFlight {
  unsigned owner = 0;
  ReactorSet waiters;  // the reactors with clients waiting on this key
  int64_t started_at_ms = 0;
};

struct Pass {
  int64_t expires_at_ms = 0;
  uint64_t seq = 0;  // matches the newest record of this key in pass_order
};

struct PassRecord {
  std::string key;
  uint64_t seq = 0;
};

// Entries unlinked under the lock and released after it: a singly linked list threaded
// through queue_next (they are out of the queue by then).
struct Victims {
  Entry* first = nullptr;
  void push(Entry* e) {
    e->queue_next = first;
    first = e;
  }
  ~Victims() {
    while (first != nullptr) {
      Entry* e = first;
      first = e->queue_next;
      EntryRef drop(e);  // adopts the cache's reference and drops it
    }
  }
};

}  // namespace

struct alignas(64) Cache::Shard {
  std::mutex mutex;
  uint64_t capacity_bytes = 0;
  uint64_t bytes = 0;
  size_t entries = 0;
  // Hash table: buckets of chains through Entry::bucket_next; variants of a key share a chain.
  std::vector<Entry*> buckets;
  // SIEVE queue: head = newest.
  Entry* head = nullptr;
  Entry* tail = nullptr;
  Entry* hand = nullptr;  // next eviction candidate; null = start from the tail
  // Miss collapsing.
  std::unordered_map<std::string, InFlight, KeyHash, std::equal_to<>> in_flight;
  std::unordered_map<std::string, Pass, KeyHash, std::equal_to<>> pass;
  std::deque<PassRecord> pass_order;  // oldest first; records whose seq is outdated are dead
  uint64_t pass_seq = 0;

  size_t bucket_of(uint64_t hash) const { return hash & (buckets.size() - 1); }

  void link(Entry* e) {
    if (buckets.empty()) buckets.assign(kInitialBuckets, nullptr);
    if (entries + 1 > buckets.size()) grow();
    Entry*& chain = buckets[bucket_of(e->key_hash)];
    e->bucket_next = chain;
    chain = e;
    e->queue_prev = nullptr;
    e->queue_next = head;
    if (head != nullptr) head->queue_prev = e;
    head = e;
    if (tail == nullptr) tail = e;
    ++entries;
  }

  void unlink(Entry* e) {
    Entry** p = &buckets[bucket_of(e->key_hash)];
    while (*p != e) {
      RM_CHECK(*p != nullptr);
      p = &(*p)->bucket_next;
    }
    *p = e->bucket_next;
    e->bucket_next = nullptr;
    if (hand == e) hand = e->queue_prev;
    if (e->queue_prev != nullptr) e->queue_prev->queue_next = e->queue_next;
    else head = e->queue_next;
    if (e->queue_next != nullptr) e->queue_next->queue_prev = e->queue_prev;
    else tail = e->queue_prev;
    e->queue_prev = nullptr;
    e->queue_next = nullptr;
    --entries;
  }

  // Unlinks e and takes its charge off; the caller drops it after the lock (victims).
  // Returns the charge.
  uint64_t take_out(Entry* e, Victims& victims) {
    uint64_t c = e->charge();
    unlink(e);
    bytes -= c;
    victims.push(e);
    return c;
  }

  void grow() {
    std::vector<Entry*> old;
    old.swap(buckets);
    buckets.assign(old.size() * 2, nullptr);
    for (Entry* chain : old) {
      while (chain != nullptr) {
        Entry* next = chain->bucket_next;
        Entry*& slot = buckets[bucket_of(chain->key_hash)];
        chain->bucket_next = slot;
        slot = chain;
        chain = next;
      }
    }
  }

  // SIEVE: the entry to evict. Entries of an old epoch go first whatever their bit says.
  Entry* sieve_victim(uint64_t epoch) {
    Entry* h = hand != nullptr ? hand : tail;
    while (h->visited && h->epoch == epoch) {
      h->visited = false;
      h = h->queue_prev != nullptr ? h->queue_prev : tail;
    }
    hand = h->queue_prev;
    return h;
  }

  // Pass set: drop records from the front that are expired or superseded.
  void trim_pass(int64_t now_ms) {
    while (!pass_order.empty()) {
      PassRecord& r = pass_order.front();
      auto it = pass.find(std::string_view(r.key));
      bool live = it != pass.end() && it->second.seq == r.seq;
      if (live && it->second.expires_at_ms > now_ms && pass.size() <= kPassKeysMax) break;
      if (live) pass.erase(it);
      pass_order.pop_front();
    }
  }
};

Cache::Cache(uint64_t capacity_bytes, unsigned shards)
    : capacity_bytes_(capacity_bytes), shard_mask_(shards - 1), shards_(new Shard[shards]) {
  RM_CHECK(capacity_bytes > 0);
  RM_CHECK(shards > 0 && (shards & (shards - 1)) == 0);
  for (unsigned i = 0; i < shards; ++i) shards_[i].capacity_bytes = capacity_bytes / shards;
}

unsigned Cache::shard_count(uint64_t capacity_bytes, unsigned reactors, uint64_t object_bytes_max) {
  unsigned shards = 16;
  while (shards < 8ull * reactors) shards *= 2;
  while (shards > 1 && capacity_bytes / shards < object_bytes_max) shards /= 2;
  return shards;
}

Cache::~Cache() {
  for (unsigned i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    Victims victims;
    while (s.head != nullptr) {
      Entry* e = s.head;
      s.unlink(e);
      victims.push(e);
    }
  }
}

Cache::Shard& Cache::shard_for(uint64_t hash) const {
  // The high half picks the shard, the low bits the bucket: independent bits of one hash.
  return shards_[(hash >> 32) & shard_mask_];
}

EntryRef Cache::lookup(std::string_view key, uint64_t key_hash, const RequestInfo& request, int64_t now_ms,
                       EntryRef* stale) {
  Shard& s = shard_for(key_hash);
  const uint64_t epoch = epoch_.load(std::memory_order_acquire);
  Entry* drops[kLookupDropsMax];
  size_t drop_count = 0;
  EntryRef hit;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.entries == 0) return hit;
    Entry* e = s.buckets[s.bucket_of(key_hash)];
    while (e != nullptr) {
      Entry* next = e->bucket_next;
      if (e->key_hash == key_hash && e->key == key) {
        if (e->epoch == epoch && is_fresh(*e, now_ms)) {
          // The hit path: as short as it was before stale entries were kept.
          if (detail::vary_matches(*e, request.fields)) {
            e->visited = true;
            e->refs.fetch_add(1, std::memory_order_relaxed);
            hit = EntryRef(e);
            break;
          }
        } else if (e->epoch != epoch || !worth_keeping_stale(*e, now_ms)) {
          if (drop_count < kLookupDropsMax) {
            uint64_t c = e->charge();
            s.unlink(e);
            s.bytes -= c;
            stats_.bytes.fetch_sub(static_cast<int64_t>(c), std::memory_order_relaxed);
            stats_.entries.fetch_sub(1, std::memory_order_relaxed);
            drops[drop_count++] = e;
          }
        } else if (stale != nullptr && !*stale && detail::vary_matches(*e, request.fields)) {
          // Stale but usable for revalidation or as a stale answer; a fresh variant further
          // down the chain still wins.
          e->visited = true;
          e->refs.fetch_add(1, std::memory_order_relaxed);
          *stale = EntryRef(e);
        }
      }
      e = next;
    }
  }
  for (size_t i = 0; i < drop_count; ++i) EntryRef drop(drops[i]);  // outside the lock
  return hit;
}

namespace {

// Whether a stored variant is superseded by a new entry of the same key: it varies on other
// fields (the origin changed its Vary — the newest response's rule wins) or on the same
// fields with the same values (the same variant).
bool superseded_by(const Entry& old_entry, const Entry& fresh) {
  if (old_entry.vary_names != fresh.vary_names) return true;
  return old_entry.vary_values == fresh.vary_values;
}

}  // namespace

bool Cache::insert(EntryRef entry, uint64_t epoch_at_request_start) {
  RM_CHECK(entry);
  Entry* e = entry.get();
  Shard& s = shard_for(e->key_hash);
  const uint64_t charge = e->charge();
  if (charge > s.capacity_bytes) return false;
  Victims victims;  // released after the lock (declared first: destroyed last)
  int64_t freed_bytes = 0;
  int64_t freed_entries = 0;
  uint64_t evicted = 0;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    const uint64_t epoch = epoch_.load(std::memory_order_acquire);
    // Fetched before an invalidation: it may be the old content, and would look current.
    if (epoch_at_request_start != epoch) return false;
    e->epoch = epoch;
    e->visited = false;
    auto drop = [&](Entry* old_entry) {
      freed_bytes += static_cast<int64_t>(s.take_out(old_entry, victims));
      ++freed_entries;
    };
    if (s.entries > 0) {
      Entry* x = s.buckets[s.bucket_of(e->key_hash)];
      while (x != nullptr) {
        Entry* next = x->bucket_next;
        if (x->key_hash == e->key_hash && x->key == e->key && (x->epoch != epoch || superseded_by(*x, *e))) {
          drop(x);
        }
        x = next;
      }
    }
    while (s.bytes + charge > s.capacity_bytes) {
      drop(s.sieve_victim(epoch));
      ++evicted;
    }
    s.link(entry.release());
    s.bytes += charge;
    // Subtract before adding: the shared total never passes the capacity, even in passing.
    stats_.bytes.fetch_sub(freed_bytes, std::memory_order_relaxed);
    stats_.entries.fetch_sub(freed_entries, std::memory_order_relaxed);
    stats_.bytes.fetch_add(static_cast<int64_t>(charge), std::memory_order_relaxed);
    stats_.entries.fetch_add(1, std::memory_order_relaxed);
  }
  stats_.stores.fetch_add(1, std::memory_order_relaxed);
  if (evicted > 0) stats_.evictions.fetch_add(evicted, std::memory_order_relaxed);
  return true;
}

Cache::Claim Cache::claim(std::string_view key, uint64_t key_hash, unsigned reactor, int64_t now_ms,
                          int64_t claim_timeout_ms) {
  Shard& s = shard_for(key_hash);
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.pass.empty()) {
    auto p = s.pass.find(key);
    if (p != s.pass.end()) {
      if (p->second.expires_at_ms > now_ms) return Claim::pass;
      s.pass.erase(p);  // its record in pass_order is now dead and goes with trim_pass
    }
  }
  auto it = s.in_flight.find(key);
  if (it == s.in_flight.end()) {
    if (s.in_flight.size() >= kInFlightKeysMax) {
      // Full: forget claims whose owners are past the timeout, or else don't collapse.
      std::erase_if(s.in_flight,
                    [&](const auto& kv) { return now_ms - kv.second.started_at_ms >= claim_timeout_ms; });
      if (s.in_flight.size() >= kInFlightKeysMax) return Claim::pass;
    }
    s.in_flight.emplace(std::string(key), InFlight{reactor, {}, now_ms});
    return Claim::owner;
  }
  InFlight& f = it->second;
  if (now_ms - f.started_at_ms < claim_timeout_ms) {
    f.waiters.add(reactor);
    return Claim::wait;
  }
  // The owner is presumed stuck: take over, keeping whoever waits on the key.
  f.owner = reactor;
  f.started_at_ms = now_ms;
  return Claim::owner;
}

ReactorSet Cache::release(std::string_view key, uint64_t key_hash, bool stored, int64_t now_ms, int64_t pass_ms) {
  Shard& s = shard_for(key_hash);
  std::lock_guard<std::mutex> lock(s.mutex);
  ReactorSet waiters;
  auto it = s.in_flight.find(key);
  if (it != s.in_flight.end()) {
    waiters = std::move(it->second.waiters);
    s.in_flight.erase(it);
  }
  if (!stored && pass_ms > 0) {
    uint64_t seq = ++s.pass_seq;
    auto p = s.pass.find(key);
    if (p != s.pass.end()) {
      p->second = Pass{now_ms + pass_ms, seq};
      s.pass_order.push_back(PassRecord{p->first, seq});
    } else {
      auto [q, inserted] = s.pass.emplace(std::string(key), Pass{now_ms + pass_ms, seq});
      (void)inserted;
      s.pass_order.push_back(PassRecord{q->first, seq});
    }
  }
  // Lazily: expired keys at the front go, and past the cap the oldest go.
  s.trim_pass(now_ms);
  while (s.pass_order.size() > kPassKeysMax) {
    PassRecord& r = s.pass_order.front();
    auto p = s.pass.find(std::string_view(r.key));
    if (p != s.pass.end() && p->second.seq == r.seq) s.pass.erase(p);
    s.pass_order.pop_front();
  }
  return waiters;
}

size_t Cache::invalidate(std::string_view key, uint64_t key_hash) {
  Shard& s = shard_for(key_hash);
  Victims victims;  // released after the lock
  int64_t freed_bytes = 0;
  int64_t freed_entries = 0;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.entries == 0) return 0;
    Entry* e = s.buckets[s.bucket_of(key_hash)];
    while (e != nullptr) {
      Entry* next = e->bucket_next;
      if (e->key_hash == key_hash && e->key == key) {
        freed_bytes += static_cast<int64_t>(s.take_out(e, victims));
        ++freed_entries;
      }
      e = next;
    }
    stats_.bytes.fetch_sub(freed_bytes, std::memory_order_relaxed);
    stats_.entries.fetch_sub(freed_entries, std::memory_order_relaxed);
  }
  return static_cast<size_t>(freed_entries);
}

size_t Cache::invalidate_after_unsafe(const RequestInfo& request, const Fields& response_fields) {
  std::string key;
  primary_key(request, key);
  size_t removed = invalidate(key, hash_key(key));
  for (const HeaderField& f : response_fields) {
    if (!detail::iequals(f.name, "location") && !detail::iequals(f.name, "content-location")) continue;
    if (reference_key(request.host, request.target, f.value, key)) removed += invalidate(key, hash_key(key));
  }
  return removed;
}

void Cache::invalidate_all() {
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  stats_.invalidations.fetch_add(1, std::memory_order_relaxed);
}

namespace {

// The path of a primary key "<host>\n<target>": the target up to '?'.
std::string_view key_path(std::string_view key) {
  size_t nl = key.find('\n');
  if (nl == std::string_view::npos) return {};
  std::string_view target = key.substr(nl + 1);
  return target.substr(0, target.find('?'));
}

}  // namespace

size_t Cache::purge_path(std::string_view path) {
  size_t removed = 0;
  for (unsigned i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    Victims victims;
    int64_t freed_bytes = 0;
    int64_t freed_entries = 0;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      Entry* e = s.head;
      while (e != nullptr) {
        Entry* next = e->queue_next;
        if (key_path(e->key) == path) {
          freed_bytes += static_cast<int64_t>(s.take_out(e, victims));
          ++freed_entries;
        }
        e = next;
      }
      stats_.bytes.fetch_sub(freed_bytes, std::memory_order_relaxed);
      stats_.entries.fetch_sub(freed_entries, std::memory_order_relaxed);
    }
    removed += static_cast<size_t>(freed_entries);
  }
  stats_.purged.fetch_add(removed, std::memory_order_relaxed);
  return removed;
}

}  // namespace ringmaster::cache
