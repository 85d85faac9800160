// cache: the shared response cache. One Cache per proxy, used by every reactor: it is split
// into shards (each a hash table + SIEVE eviction queue under its own small mutex), so two
// reactors only meet on a lock when they touch keys of the same shard, and the critical
// sections are a hash lookup and a reference-count bump. A stored response is immutable and
// reference-counted: a hit hands the reactor an EntryRef and the reactor sends the stored
// head and body bytes straight from the entry (no copy per request; a small answer is
// copied instead, see kHitCopyBytesMax in the proxy); eviction or invalidation only drops
// the cache's own reference.
//
// HTTP semantics (RFC 9111, shared cache) live here as pure functions over header fields,
// so the proxy only glues them to its parser: whether a request may be served from / stored
// into the cache, whether and for how long a response may be stored, Vary matching, Age,
// and conditional requests (304). This module depends on base only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster::cache {

struct HeaderField {
  std::string_view name;   // as received (compare case-insensitively)
  std::string_view value;  // trimmed
};
using Fields = std::vector<HeaderField>;

// ---- Request side ----

struct RequestInfo {
  bool is_get = false;
  bool is_head = false;
  std::string_view host;
  std::string_view target;  // origin-form path + query
  const Fields* fields = nullptr;  // end-to-end request fields (Host etc. already removed)
};

struct RequestPolicy {
  bool lookup = false;        // may be answered from the cache (GET/HEAD, no Authorization,
                              // no "Cache-Control: no-cache"/"Pragma: no-cache")
  bool store = false;         // its response may be stored (GET only, no Range; with
                              // Authorization only when the response says public / s-maxage
                              // — checked later)
  bool has_authorization = false;
  bool has_range = false;     // a GET with Range: a fresh hit answers the range (select_range)
};
RequestPolicy classify_request(const RequestInfo& request);

// The primary key: "<host>\n<target>" (GET and HEAD share entries: a HEAD is answered from
// a stored GET response). Written into `out` (reused by the caller, no allocation once warm).
void primary_key(const RequestInfo& request, std::string& out);
uint64_t hash_key(std::string_view key);

// Invalidation (RFC 9111 4.4): after a successful (2xx/3xx) response to an unsafe request,
// the target URI and the same-origin URIs in Location / Content-Location are invalidated.
// Whether the method is one after which that happens (anything but GET HEAD OPTIONS TRACE).
bool invalidates_on_success(std::string_view method);
// The primary key of `reference` (a Location / Content-Location value) resolved against the
// request's target (RFC 3986 5.2, without dot-segment removal: a reference with one is left
// alone); false when it names another origin (scheme other than http, another authority)
// or is not a usable reference. Written into `out`.
bool reference_key(std::string_view host, std::string_view request_target, std::string_view reference,
                   std::string& out);

// ---- Response side ----

// The device token ringmaster answers to in Surrogate-Control ("max-age=60;ringmaster") and
// advertises in Surrogate-Capability.
inline constexpr std::string_view kSurrogateToken = "ringmaster";

struct StoreDecision {
  bool store = false;
  const char* reason = "";        // why not (metrics/logs): "no-store", "private", "set-cookie", ...
  int64_t freshness_ms = 0;       // lifetime: s-maxage > max-age > Expires - Date > default TTL
  int64_t initial_age_ms = 0;     // from the response's Age header
};
// status + end-to-end response fields. default_ttl_ms applies when the response has no
// explicit freshness. Never stores: statuses outside the heuristically cacheable set
// (200 203 204 300 301 308 404 405 410 414 501), no-store, private, no-cache, Set-Cookie,
// "Vary: *", requests with Authorization unless public / s-maxage / must-revalidate.
StoreDecision classify_response(uint16_t status, const Fields& response_fields, bool request_has_authorization,
                                int64_t default_ttl_ms, int64_t now_unix_ms);

// ---- Entries ----

// An immutable stored response.
struct Entry {
  std::atomic<uint32_t> refs{1};
  std::string key;            // primary key
  uint64_t key_hash = 0;
  // Vary: the lowercase request header names the response varies on, and the request's
  // values for them when it was stored (absent header = empty value).
  std::vector<std::string> vary_names;
  std::vector<std::string> vary_values;
  uint16_t status = 0;
  std::string head;           // "HTTP/1.1 200 OK\r\n" + stored fields, each "Name: value\r\n";
                              // without framing, Connection, Age and the final blank line
  std::string body;
  std::string etag;           // for If-None-Match
  std::string last_modified;  // for If-Modified-Since
  int64_t stored_at_ms = 0;   // monotonic
  int64_t freshness_ms = 0;
  int64_t initial_age_ms = 0;
  uint64_t epoch = 0;         // the cache epoch when stored (stamped by Cache::insert)
  // Serving stale (RFC 9111 4.2.4): never when the response forbids it (must-revalidate,
  // proxy-revalidate, s-maxage, no-cache); else up to stale_if_error_ms past its freshness
  // after a 5xx or no answer (the response's stale-if-error, -1 without), and up to
  // stale_window_ms when no target answered at all (the operator's setting; 0: never).
  bool stale_forbidden = false;
  int64_t stale_if_error_ms = -1;
  int64_t stale_while_revalidate_ms = -1;  // the response's stale-while-revalidate, -1 without
  int64_t stale_window_ms = 0;
  // Bytes counted against the cache size: key + head + body + Vary strings + overhead_bytes
  // (the Entry itself, its vectors, the allocator's headers, the shard's table slot).
  static constexpr size_t overhead_bytes = 256;
  size_t charge() const;
  // Shard bookkeeping (under the shard's mutex).
  bool visited = false;        // SIEVE: hit since the hand last passed
  Entry* queue_prev = nullptr;  // SIEVE queue, toward the head (newer)
  Entry* queue_next = nullptr;  // toward the tail (older)
  Entry* bucket_next = nullptr;  // the shard's hash chain (variants of a key share a chain)
};

// A counted reference to an entry; empty when default-constructed. Move-only.
class EntryRef {
 public:
  EntryRef() = default;
  explicit EntryRef(Entry* e) : entry_(e) {}  // adopts one reference
  EntryRef(const EntryRef&) = delete;
  EntryRef& operator=(const EntryRef&) = delete;
  EntryRef(EntryRef&& o) noexcept : entry_(o.entry_) { o.entry_ = nullptr; }
  EntryRef& operator=(EntryRef&& o) noexcept;
  ~EntryRef() { reset(); }
  void reset();
  EntryRef share() const;  // another reference to the same entry
  Entry* release();        // gives up holding the reference without dropping it (now the caller's)
  Entry* get() const { return entry_; }
  Entry* operator->() const { return entry_; }
  Entry& operator*() const { return *entry_; }
  explicit operator bool() const { return entry_ != nullptr; }

 private:
  Entry* entry_ = nullptr;
};

// Age in seconds as sent in the Age header of a hit.
int64_t age_seconds(const Entry& e, int64_t now_ms);
bool is_fresh(const Entry& e, int64_t now_ms);

// Conditional request against a fresh entry: true when the client's validators match
// (If-None-Match with weak comparison against the ETag; else If-Modified-Since not before
// Last-Modified) — the answer is then 304.
bool not_modified(const Entry& e, const Fields& request_fields);
// Whether a request carries a precondition of its own (If-None-Match, If-Modified-Since,
// If-Match, If-Unmodified-Since, If-Range).
bool is_conditional(const Fields& request_fields);
// Whether a background refresh's request carries this field of the client's request that
// started it: everything but the client's own preconditions and Range (the validators that
// go upstream are the entry's).
bool carried_by_refresh(std::string_view field_name);
// Range requests against a complete stored response (RFC 9110 14), as nginx answers them
// from its cache: of a stored 200, one satisfiable byte range gets a 206 with that slice,
// several get a 206 multipart/byteranges (in the order asked; ranges that start past the
// end are left out), none satisfiable a 416. The whole response (a server may always
// ignore Range, 14.2) for another unit, bad syntax, an If-Range that does not match
// strongly, more than kByteRangesMax ranges, or ranges adding up to more than the body
// (overlaps: a classic way to make a server send a body many times over).
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};
inline constexpr size_t kByteRangesMax = 32;
struct ByteRanges {
  ByteRange range[kByteRangesMax];
  size_t count = 0;
};
enum class RangeAnswer { whole, partial, multipart, unsatisfiable };
RangeAnswer select_range(const Entry& e, const Fields& request_fields, ByteRanges& ranges);

// The framing of a multipart/byteranges answer (RFC 9110 14.6), laid out as nginx does:
// before each part "\r\n--B\r\nContent-Type: T\r\nContent-Range: bytes a-b/len\r\n\r\n" (no
// Content-Type line when the stored response has none), after the last "\r\n--B--\r\n".
// The parts' bytes are the stored body's, sent from the entry without a copy.
class MultipartRanges {
 public:
  // boundary: 1-70 characters that RFC 2046 allows (letters and digits do).
  MultipartRanges(const Entry& e, const ByteRanges& ranges, std::string_view boundary);
  // The stored fields for the 206's head ("Name: value\r\n" each) with the stored
  // Content-Type replaced by "multipart/byteranges; boundary=B".
  const std::string& fields() const { return fields_; }
  std::string_view part_head(size_t i) const { return std::string_view(text_).substr(starts_[i], starts_[i + 1] - starts_[i]); }
  std::string_view tail() const { return std::string_view(text_).substr(starts_[count_]); }
  // The whole body: part heads, parts and tail (the 206's Content-Length).
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  std::string fields_;
  std::string text_;                       // every part head, then the tail
  size_t starts_[kByteRangesMax + 1] = {};  // where part head i starts in text_ (count_: the tail)
  size_t count_ = 0;
  uint64_t body_bytes_ = 0;
};

// The head fields a 304 carries from the stored response (ETag, Cache-Control, Expires,
// Vary, Content-Location, Date, Last-Modified): "Name: value\r\n" lines, appended to out.
void append_304_fields(const Entry& e, std::string& out);

// Whether a stale entry can be revalidated (it has an ETag or a Last-Modified).
inline bool revalidatable(const Entry& e) { return !e.etag.empty() || !e.last_modified.empty(); }
// How long past its freshness lifetime the entry is (negative while fresh).
int64_t staleness_ms(const Entry& e, int64_t now_ms);
// Whether a stale entry may answer a request the origin did not: `disconnected` when no
// target gave any answer (or the operator treats a 5xx as none), else the origin answered
// 5xx and only the response's stale-if-error counts.
bool may_serve_stale(const Entry& e, int64_t now_ms, bool disconnected);
// Whether a stale entry may answer while another request revalidates it (the response's
// stale-while-revalidate window).
bool may_serve_while_revalidating(const Entry& e, int64_t now_ms);
// Whether a stale entry is worth keeping: it can be revalidated or may still be served stale.
bool worth_keeping_stale(const Entry& e, int64_t now_ms);

// Freshening with a 304 (RFC 9111 4.3.4): the stored response with its header fields
// updated from the 304's — all but those that describe the stored body (Content-Length,
// Content-Encoding, Content-Range, Content-MD5, ETag) and those never stored — and its
// lifetime computed again from the result, as of now. `storable` says whether the result
// may be stored (a 304 can add no-store, say); it may be served to this request either way.
struct Freshened {
  EntryRef entry;
  bool storable = false;
};
Freshened freshen(const Entry& stored, const RequestInfo& request, const Fields& not_modified_fields,
                  bool request_has_authorization, int64_t default_ttl_ms, int64_t now_unix_ms, int64_t now_ms);

// Builds an entry while the response streams to the client. The stored head's status line
// carries `reason` when given (the upstream's own reason phrase, as the miss sent it),
// otherwise the standard phrase for the status (RFC 9110 section 15; empty if unknown).
// An abandoned builder (decision.store false, "Vary: *", or the body outgrew
// object_bytes_max) frees what it held and finishes empty.
class EntryBuilder {
 public:
  EntryBuilder(std::string key, uint64_t key_hash, const RequestInfo& request, uint16_t status,
               const Fields& response_fields, const StoreDecision& decision, size_t object_bytes_max,
               std::string_view reason = {});
  // False once the body outgrew object_bytes_max (the builder is then abandoned).
  bool append_body(const char* data, size_t len);
  bool abandoned() const { return abandoned_; }
  // The finished entry (one reference), or empty if abandoned.
  EntryRef finish(int64_t now_ms);
  Entry& entry() { return *entry_; }

 private:
  std::unique_ptr<Entry> entry_;
  size_t object_bytes_max_;
  bool abandoned_ = false;
};

// ---- The cache ----

// The reactors that have clients waiting on a collapsed miss. Reactors 0..63 are bits of one
// inline word, so with up to 64 reactors a wait never allocates (the common case); higher
// reactors get words allocated on demand, so any --threads works. Only the miss path
// touches it (claim/release); lookups never do.
class ReactorSet {
 public:
  void add(unsigned reactor) {
    if (reactor < 64) {
      low_ |= uint64_t{1} << reactor;
      return;
    }
    size_t word = reactor / 64 - 1;
    if (high_.size() <= word) high_.resize(word + 1, 0);
    high_[word] |= uint64_t{1} << (reactor % 64);
  }
  bool contains(unsigned reactor) const {
    if (reactor < 64) return (low_ >> reactor) & 1;
    size_t word = reactor / 64 - 1;
    return word < high_.size() && ((high_[word] >> (reactor % 64)) & 1);
  }
  bool empty() const { return low_ == 0 && high_.empty(); }  // high_ only grows with a bit set
  // f(reactor) for each member, in increasing order.
  template <typename F>
  void for_each(F&& f) const {
    for_each_bit(low_, 0, f);
    for (size_t w = 0; w < high_.size(); ++w) for_each_bit(high_[w], static_cast<unsigned>((w + 1) * 64), f);
  }

 private:
  template <typename F>
  static void for_each_bit(uint64_t bits, unsigned base, F& f) {
    while (bits != 0) {
      f(base + static_cast<unsigned>(__builtin_ctzll(bits)));
      bits &= bits - 1;
    }
  }
  uint64_t low_ = 0;
  std::vector<uint64_t> high_;  // high_[w] bit b: reactor (w + 1) * 64 + b
};

// Updated under shard locks or on rare admin paths; the per-request counters (hits, misses,
// collapsed waits) are the reactors' own, in their WorkerStats.
struct CacheStats {
  std::atomic<uint64_t> stores{0}, evictions{0}, invalidations{0}, purged{0};
  std::atomic<int64_t> bytes{0}, entries{0};
};

class Cache {
 public:
  // capacity_bytes > 0; shards a power of two.
  Cache(uint64_t capacity_bytes, unsigned shards);
  // The shards for `reactors` reactors: 8 per reactor (a power of two, at least 16) so that
  // reactors rarely meet on one lock, but halved while a shard's share of capacity_bytes
  // would be under object_bytes_max: an entry larger than its shard's share is never
  // stored, so many reactors over a small cache would otherwise store nothing large.
  static unsigned shard_count(uint64_t capacity_bytes, unsigned reactors, uint64_t object_bytes_max);
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // A fresh entry for the key whose Vary-ed request headers match `request`, stored in the
  // current epoch; empty on miss (stale and old-epoch entries are misses, and are dropped).
  // A stale entry with a validator (ETag / Last-Modified) is kept: when `stale` is given,
  // a matching one is handed out there for revalidation.
  EntryRef lookup(std::string_view key, uint64_t key_hash, const RequestInfo& request, int64_t now_ms,
                  EntryRef* stale = nullptr);
  // Stores (replacing an entry of the same key and Vary values); evicts with SIEVE until
  // the total charge fits capacity. Entries larger than a shard's share are not stored.
  // epoch_at_request_start is epoch() read when the request that fetched this response
  // arrived: if the cache was invalidated since, the response may predate the new content
  // and is dropped (it would otherwise look fresh in the new epoch). Returns whether it was
  // stored; the entry is stamped with that epoch.
  bool insert(EntryRef entry, uint64_t epoch_at_request_start);

  // Miss collapsing. The first reactor to miss a key claims it and goes upstream; later
  // misses for the same key (any reactor) are told to wait, and their reactor is recorded so
  // that release() can return the set of reactors to wake. A claim older than
  // claim_timeout_ms is void (its owner is presumed stuck): the next miss takes it over,
  // keeping the waiters. Any reactor index (see ReactorSet). Bounded: a shard tracks at most 4096 claimed keys;
  // when full (and none has lapsed) a miss is told pass, i.e. to go upstream uncollapsed.
  enum class Claim { owner, wait, pass };
  Claim claim(std::string_view key, uint64_t key_hash, unsigned reactor, int64_t now_ms, int64_t claim_timeout_ms);
  // Ends the owner's claim. stored=false marks the key "pass" for pass_ms: misses for it then
  // go upstream at once (the response was not cacheable; don't serialise clients on it).
  // Returns the reactors that have waiters to wake. The pass set forgets expired
  // keys lazily and keeps at most 4096 per shard (the oldest go first). A release for a key
  // nobody claims (e.g. by an owner that was taken over) just ends whatever claim is there.
  ReactorSet release(std::string_view key, uint64_t key_hash, bool stored, int64_t now_ms, int64_t pass_ms);

  // Removes every variant stored under `key`. Returns how many were removed.
  size_t invalidate(std::string_view key, uint64_t key_hash);
  // After a successful response to an unsafe request: invalidates the request's target and
  // the same-origin URIs in the response's Location / Content-Location. Returns how many
  // entries were removed.
  size_t invalidate_after_unsafe(const RequestInfo& request, const Fields& response_fields);
  // Every entry stored before now becomes invalid at once (an epoch bump, no walk).
  void invalidate_all();
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Removes every entry whose target's path (before '?') equals `path`, any host. Walks the
  // shards (admin only). Returns how many were removed.
  size_t purge_path(std::string_view path);

  uint64_t capacity_bytes() const { return capacity_bytes_; }
  const CacheStats& stats() const { return stats_; }
  CacheStats& stats() { return stats_; }

 private:
  struct Shard;
  Shard& shard_for(uint64_t hash) const;

  uint64_t capacity_bytes_;
  unsigned shard_mask_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<uint64_t> epoch_{1};
  CacheStats stats_;
};

}  // namespace ringmaster::cache
