// Private to the proxy module: one reactor thread's state and its connection state machines.
//
// Ownership: a Worker owns every ClientConn and UpstreamConn it creates; a connection is
// destroyed only after it is closed and its last in-flight io_uring operation has completed
// (in_flight == 0), and only at the end of a loop turn (the graveyard), so no handler ever
// runs on freed memory.
//
// Backpressure: each direction moves through one bounded output queue. A side stops feeding
// its parser when the other side's queue passes kOutSoftLimit and resumes when a send
// completes; a client whose unparsed input piles up gets its multishot receive cancelled
// (the kernel then holds the data and TCP pushes back), an upstream whose read buffer is full
// simply gets no new receive.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/http/message.h"
#include "ringmaster/http/request_id.h"
#include "ringmaster/io/buffer_ring.h"
#include "ringmaster/io/ring.h"
#include "ringmaster/metrics/metrics.h"
#include "ringmaster/proxy/server.h"
#include "ringmaster/upstream/routing.h"
#include "ringmaster/upstream/targets.h"
#include "client_exchange.h"
#include "out_queue.h"
#include "slab.h"
#include "upstream_exchange.h"

namespace ringmaster::proxy {

// Bytes queued toward one socket before the producing side pauses.
inline constexpr size_t kOutSoftLimit = 256 * 1024;
// Upstream read buffer; responses are parsed from it in place. Only a connection with a
// request in flight holds one (from the reactor's pool): a pooled idle connection watches
// its socket with a poll instead of a posted receive.
inline constexpr uint32_t kUpstreamReadBytes = 64 * 1024;
// Free upstream read buffers a reactor keeps resident (BufferSlab::trim); more give their
// pages back at a trim. Buffers are mapped this many at a time at most (fewer when this
// reactor's share of --upstream-max-conns is smaller): one mapping per that many connections
// open at once, never one per connection.
inline constexpr size_t kReadBuffersWarmMax = 64;
inline constexpr size_t kReadBuffersPerRegionMax = 64;
// Idle pooled upstream connections are swept for expiry when the earliest one is due, but
// at most this often (a sweep walks every pool: a reactor holds up to its share of
// upstream-max-conns per target); so a connection closes within this much of its deadline.
inline constexpr int64_t kIdleSweepGapMs = 100;
// Spare request parsers a reactor keeps (a burst's worth would stay allocated otherwise).
inline constexpr size_t kSpareParsersMax = 64;
// Heap memory goes back to the kernel (malloc_trim) once about this much was freed by the
// reactor (connections, read buffers, parsers beyond the spares), at most once per
// kTrimIntervalMs.
inline constexpr uint64_t kTrimFreedBytesMin = 4u << 20;
inline constexpr int64_t kTrimIntervalMs = 1000;
inline constexpr int64_t kTrimLateMs = 5000;
// mimalloc's decommit delay is 25 ms by default: collect again after several of them.
inline constexpr int64_t kRecollectDelayMs = 200;
// Freed between a trim and the collect after it, at most, for the reactor to count as calm
// (the collect then decommits the freed pages: worker.cc collect_heap).
inline constexpr uint64_t kCalmFreedBytesMax = 256 * 1024;
// A reactor without clients this long gives back its receive buffers' pages and its spares.
inline constexpr int64_t kQuietReleaseMs = 1000;
// What a request parser holds, roughly, for that count (its field list is reserved).
inline constexpr uint64_t kParserBytesEstimate = 4096;
// Provided receive buffers per reactor (power of two) and their size.
inline constexpr uint32_t kRecvBufferCount = 1024;
inline constexpr uint32_t kRecvBufferBytes = 16 * 1024;
// Unparsed receive buffers a client may hold before its receive is cancelled.
inline constexpr size_t kClientHeldMax = 4;
// How long a closing client is read from (and discarded) after our last byte, so that the
// kernel does not answer its in-flight bytes with a RST that would destroy our response.
inline constexpr int64_t kLingerMs = 2000;
// Registered descriptor slots per reactor, at most (see io::Ring::register_files).
inline constexpr unsigned kRegisteredFilesMax = 65536;
// The loop wakes at least this often to run timers and notice a stop request.
inline constexpr int kTickMs = 50;
// Background cache refreshes (stale-while-revalidate) a reactor runs at once; a stale entry
// found while this many are in flight is served without starting another (counted as
// refused): the next request for it after one ends starts its refresh.
inline constexpr uint32_t kBackgroundRefreshesMax = 64;

struct TimerNode {
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  int64_t deadline_ms = 0;
  class TimerList* list = nullptr;
};

// All entries of one list share one duration, so appending keeps deadlines sorted: arm,
// re-arm and expiry are O(1) with no heap.
class TimerList {
 public:
  explicit TimerList(int64_t duration_ms);
  void arm(TimerNode* node, int64_t now_ms);
  static void disarm(TimerNode* node);
  // The oldest expired node, unlinked; null when none has expired.
  TimerNode* pop_expired(int64_t now_ms);
  int64_t duration_ms() const { return duration_ms_; }
  bool empty() const { return sentinel_.next == &sentinel_; }
  // Every node, oldest first; `fn` must not arm or disarm any.
  template <typename Fn>
  void for_each(Fn&& fn) {
    for (TimerNode* node = sentinel_.next; node != &sentinel_; node = node->next) fn(node);
  }

 private:
  int64_t duration_ms_;
  TimerNode sentinel_;
};

// Timer lists of one kind whose duration is a service's (upstream-timeout-ms,
// upstream-queue-timeout-ms): one TimerList per distinct duration, shared by the services
// using it, so arming stays O(1) and a loop turn walks as many lists as there are distinct
// durations, not services. A list no service uses any more is freed once empty: requests
// routed before a reload still wait in it with their old deadline.
class TimerListSet {
 public:
  TimerList* acquire(int64_t duration_ms);
  void release(TimerList* list);
  // Every expired node of every list to `fn` (now_ms = INT64_MAX: all of them), then frees
  // the unused lists that emptied.
  template <typename Fn>
  void expire(int64_t now_ms, Fn&& fn) {
    for (size_t i = 0; i < lists_.size(); ++i) {
      while (TimerNode* node = lists_[i].list->pop_expired(now_ms)) fn(node);
    }
    std::erase_if(lists_, [](const Shared& s) { return s.users == 0 && s.list->empty(); });
  }
  template <typename Fn>
  void for_each(Fn&& fn) {
    for (Shared& s : lists_) s.list->for_each(fn);
  }

 private:
  struct Shared {
    std::unique_ptr<TimerList> list;
    uint32_t users = 0;  // ServiceLocals holding it
  };
  std::vector<Shared> lists_;
};


// A receive buffer picked by the kernel and not yet fully parsed.
struct HeldBuffer {
  uint16_t buffer_id;
  uint32_t offset;
  uint32_t length;
};

struct UpstreamConn;

// One service as one reactor sees it (routing_glue.cc): its balancer and the snapshot that
// balancer points into, and its limits with this reactor's share of them, kept while the
// service is in the routing table or a connection's current request still belongs to it (a
// reload removed it, or changed its limits, mid-request: that request keeps these).
struct ServiceLocal {
  ServiceLocal(std::shared_ptr<upstream::ServiceRuntime> runtime_in, const upstream::ServiceLimits& limits_in,
               unsigned reactor, unsigned reactors, uint64_t seed, TimerListSet* upstream_lists,
               TimerListSet* queue_lists);
  ~ServiceLocal();
  ServiceLocal(const ServiceLocal&) = delete;
  ServiceLocal& operator=(const ServiceLocal&) = delete;
  std::shared_ptr<upstream::ServiceRuntime> runtime;
  std::shared_ptr<const upstream::TargetSnapshot> targets;
  upstream::Balancer balancer;
  upstream::ServiceSlot* slot;  // this reactor's counters
  uint32_t clients = 0;         // connections whose current request is routed here
  bool current = false;         // in the routing table this reactor uses now
  upstream::ServiceLimits limits;    // whole proxy, as the routing table gave them
  uint32_t conns_share = 0;          // this reactor's share of limits.upstream_max_conns (0: no limit)
  uint32_t queue_max = 0;            // this reactor's share of limits.upstream_queue_max per target
                                     // (its share of upstream_max_conns is the balancer's)
  __kernel_timespec connect_timeout{};  // limits.connect_timeout_ms, for the linked timeout
  TimerList* upstream_timers;        // limits.upstream_timeout_ms (shared by duration)
  TimerList* queue_timers;           // limits.upstream_queue_timeout_ms
  TimerListSet* upstream_lists;
  TimerListSet* queue_lists;
};

// A whole-proxy count split among `reactors`: reactor `index`'s share, the first reactors one
// more when they do not divide (so that the shares add up to the total).
inline uint32_t reactor_share(uint32_t total, unsigned index, unsigned reactors) {
  return total / reactors + (index < total % reactors ? 1 : 0);
}

// What the cache did for a request (access log "cache" field).
enum class CacheResult : uint8_t { none, hit, miss };

struct ClientConn {
  Worker* worker;
  int fd;
  // A background cache refresh (cache_glue.cc): no socket (fd -1), its own request head,
  // what it would send a client is dropped, and it ends in end_background_refresh.
  bool background = false;
  // Where the exchange stands and which client deadline runs (client_exchange.h): the
  // reactor code feeds it events and carries out its answers.
  ClientExchange ex;
  uint32_t in_flight = 0;  // io_uring operations not yet completed
  // The receive's own bookkeeping (io_uring, not the exchange).
  bool recv_armed = false;
  bool recv_cancel_pending = false;
  bool pumping = false;
  bool starved = false;  // receive stopped for lack of provided buffers

  std::vector<HeldBuffer> held;
  std::unique_ptr<http::RequestParser> parser;
  OutQueue out;
  TimerNode timer;

  // The current exchange.
  ServiceLocal* service = nullptr;  // the service the current (or last) request was routed to
  UpstreamConn* upstream = nullptr;
  upstream::TriedSet tried;
  http::Method method = http::Method::get;
  uint8_t version_minor = 1;
  http::ResponseFraming framing{};

  // Cache state of the current exchange.
  cache::RequestPolicy cache_policy{};
  bool cache_owner = false;    // this client holds the key's miss claim: others wait on it
  // (Parked until the owner's response is stored, or a timeout: ex.waiting() == cache.)
  uint64_t cache_hash = 0;
  uint64_t cache_epoch = 0;    // the cache epoch when the request arrived
  std::string cache_key;
  std::unique_ptr<cache::EntryBuilder> fill;  // the response being stored as it streams
  cache::EntryRef revalidate;  // the stale entry this request asks the origin about (conditionally)
  bool cache_refreshed = false;  // a 304 freshened it and the result was stored

  // The current request as the latency histograms and the access log see it: opened at its
  // first byte (begin_request), closed once answered or cut off (request_finished).
  int64_t request_start_us = 0;   // 0: no request in progress
  int64_t upstream_start_us = 0;  // when the first upstream connection was attached; 0: none
  int64_t upstream_us = -1;       // time spent upstream; -1: it never went upstream
  uint16_t status = 0;            // status answered (0: none yet)
  CacheResult cache_result = CacheResult::none;
  bool head_parsed = false;       // the request head was complete (method and target known)
  uint64_t bytes_in = 0;          // request bytes parsed (head and body)
  uint64_t out_mark = 0;          // out.queued_total() when the request began
  std::string target_name;        // the target of the last upstream attempt (access log only)
  // The current request's id (README "Request id"): the client's valid X-Request-Id (a view
  // into the parser, valid until request_finished) or generated_id; empty until
  // Worker::request_id() picks it.
  std::string_view request_id;
  char generated_id[http::kGeneratedRequestIdBytes];

  // Waiting for a connection to `queued_on` (--upstream-max-conns); FIFO links of that
  // target's WaitQueue (then ex.waiting() == queue). c->timer then runs the queue deadline,
  // not the client's.
  upstream::TargetState* queued_on = nullptr;
  ClientConn* queue_prev = nullptr;
  ClientConn* queue_next = nullptr;
  int64_t queued_at_us = 0;
  // Head and body bytes already serialized for a failed connect, kept while queued.
  std::unique_ptr<base::ByteBuffer> queued_bytes;

  char ip[46] = "";
};

struct UpstreamConn {
  Worker* worker;
  int fd;
  // Null once the target left the snapshot: the connection finishes its exchange, then closes.
  upstream::TargetState* target;
  size_t live_index = 0;  // position in Worker::live_upstreams_
  // Where the connection stands, which upstream deadline runs, and what its events mean
  // (upstream_exchange.h): the reactor code feeds it events and carries out its steps.
  UpstreamExchange x;
  uint32_t in_flight = 0;
  bool recv_armed = false;     // a receive or (while idle) a poll is posted
  bool recv_is_poll = false;   // ... and it is the idle poll (no buffer)
  ClientConn* client = nullptr;
  // Unparsed response bytes are [read_begin, read_end). A posted receive writes at read_end,
  // so the bytes are only slid to the front when no receive is in flight.
  char* read_buffer = nullptr;  // from Worker::read_buffers_
  uint32_t read_begin = 0;
  uint32_t read_end = 0;
  uint32_t unparsed() const { return read_end - read_begin; }
  // Only while a request is in flight (from the reactor's spares): a pooled idle connection
  // holds no parser, so a burst's leftover idle connections pin no heap pages.
  std::unique_ptr<http::ResponseParser> parser;
  OutQueue out;
  TimerNode timer;
};

// A pooled idle upstream connection and when it closes unused: its last request's service's
// upstream-idle-timeout-ms after it went idle (nginx's keepalive_timeout in an upstream
// block, HAProxy's pool-purge-delay). Kept next to the pointer so that a sweep reads one
// array, not every connection.
struct IdleConn {
  UpstreamConn* conn;
  int64_t expires_ms;
};

// Requests of one reactor waiting for a connection to one target, oldest first.
struct WaitQueue {
  ClientConn* head = nullptr;
  ClientConn* tail = nullptr;
};

// Single writer (the worker), read by the admin thread.
struct WorkerStats {
  metrics::Counter connections_accepted;
  metrics::Counter connections_refused;
  metrics::Counter requests;
  metrics::Counter rejected;
  metrics::Counter upstream_connects;
  metrics::Counter upstream_connect_failures;
  metrics::Counter upstream_reused;
  metrics::Counter upstream_retries;
  metrics::Counter responses_502;
  metrics::Counter responses_503;
  metrics::Counter responses_504;
  metrics::Counter unrouted;  // 404: no service matched
  metrics::Counter truncated;
  metrics::Counter cache_hits;
  metrics::Counter cache_misses;
  metrics::Counter cache_not_modified;
  metrics::Counter cache_collapsed_waits;
  metrics::Counter cache_not_stored;
  metrics::Counter cache_invalidated;
  metrics::Counter cache_revalidations;
  metrics::Counter cache_revalidated;
  metrics::Counter cache_stale_served;
  // stale-while-revalidate's refreshes without a client: started, ended with an answer
  // from the origin (stored, freshened by a 304, or not storable), ended without one (no
  // target, 5xx, broken or timed out: the stale entry stays), and not started for
  // kBackgroundRefreshesMax.
  metrics::Counter cache_refreshes_started;
  metrics::Counter cache_refreshes_succeeded;
  metrics::Counter cache_refreshes_failed;
  metrics::Counter cache_refreshes_refused;
  metrics::Gauge connections_open;
  // --upstream-max-conns: requests that waited for a connection, those answered 503 because
  // the queue was full or the wait too long, the queue's length now and the waits.
  metrics::Counter upstream_queued;
  metrics::Counter upstream_queue_full;
  metrics::Counter upstream_queue_timeouts;
  metrics::Gauge upstream_queue_length;
  metrics::Gauge upstream_connections_open;
  metrics::Histogram upstream_queue_wait;
  // Loop turns (at least one per kTickMs while running): the systemd watchdog pings only
  // while every reactor's count moves.
  metrics::Counter loop_turns;
  // Request time, first byte to the answer complete, and time upstream, for every request.
  metrics::Histogram request_time;
  metrics::Histogram upstream_time;
};

class Worker {
 public:
  Worker(const ServerOptions& options, int index, int listen_fd, upstream::RoutingCell* routes,
         const std::atomic<bool>* stop_requested, const std::atomic<bool>* handover, const std::vector<int>* wake_fds,
         std::atomic<uint32_t>* connections);
  ~Worker();

  // The reactor loop; returns once drained after a stop request.
  void run();
  const WorkerStats& stats() const { return stats_; }

 private:
  // Loop plumbing (worker.cc).
  void dispatch(io_uring_cqe* cqe);
  void run_timers();
  void begin_drain();
  void drain_tick();
  void bury_dead();
  // Routing (routing_glue.cc).
  void adopt_routes();
  void close_unrouted_upstreams();
  bool route_request(ClientConn* c);
  void release_service(ClientConn* c);
  void answer_no_service(ClientConn* c);
  cache::Cache* cache_of(const ClientConn* c) const {
    return c->service != nullptr ? c->service->runtime->cache.get() : nullptr;
  }
  int64_t cache_ttl_ms_of(const ClientConn* c) const {
    return c->service != nullptr ? c->service->runtime->cache_ttl_ms : 0;
  }
  void arm_accept();
  void on_accept(io_uring_cqe* cqe);
  void cancel(uint64_t user_data);

  // Client side (client_conn.cc).
  // Arms the deadline the exchange machine asked for on c's timer node, on the matching list.
  void arm_client_timer(ClientConn* c, ClientTimer timer) {
    if (timer != ClientTimer::keep) client_lists_[static_cast<size_t>(timer)]->arm(&c->timer, now_ms_);
  }
  void arm_client_recv(ClientConn* c);
  void update_client_recv(ClientConn* c);
  void on_client_recv(ClientConn* c, io_uring_cqe* cqe);
  void on_client_send(ClientConn* c, int res);
  void on_client_timer(ClientConn* c);
  void pump_client(ClientConn* c);
  bool pump_client_once(ClientConn* c);
  void consume_held(ClientConn* c, size_t bytes);
  void on_request_head(ClientConn* c);
  void local_response(ClientConn* c, uint16_t status, uint32_t retry_after_s = 0);
  void begin_request(ClientConn* c);
  void end_upstream_time(ClientConn* c);
  void request_finished(ClientConn* c, bool complete);
  void log_request(ClientConn* c, int64_t end_us, int64_t total_us, bool complete);
  // The request's id: the client's when it sent a valid one with a parsed head, otherwise
  // one made here, once per request.
  std::string_view request_id(ClientConn* c);
  void finish_exchange(ClientConn* c);
  void arm_between_requests(ClientConn* c, ClientTimer timer);
  void kick_client_send(ClientConn* c);
  void client_input_ended(ClientConn* c, int res);
  void begin_linger(ClientConn* c);
  void close_client(ClientConn* c);
  void release_held(ClientConn* c);

  // Cache glue (cache_glue.cc).
  const cache::RequestInfo& cache_request_info(ClientConn* c);
  bool try_cache(ClientConn* c);
  void serve_hit(ClientConn* c, cache::EntryRef entry);
  void park_cache_waiter(ClientConn* c);
  void unpark_cache_waiter(ClientConn* c);
  void wake_cache_waiters();
  void on_cache_wait_timer(ClientConn* c);
  void start_fill(ClientConn* c, UpstreamConn* u);
  http::ParseResult parse_body_filling(ClientConn* c, UpstreamConn* u, const char* data, size_t len);
  // Ends the request's part in the cache (stores its fill, releases its claim, wakes the
  // waiters); whether a response was stored. pass_if_unstored=false: nothing was learnt
  // about the key (a refresh without an answer), so misses keep collapsing on it.
  bool end_cache_claim(ClientConn* c, bool pass_if_unstored = true);
  void invalidate_after_unsafe(ClientConn* c, const http::ResponseHead& response);
  void write_hit(ClientConn* c, cache::EntryRef entry);
  bool answer_revalidated(ClientConn* c, const http::ResponseHead& response);
  bool serve_stale(ClientConn* c, bool disconnected);
  void serve_while_revalidating(ClientConn* c, cache::Cache* cache);
  ClientConn* prepare_background_refresh(ClientConn* c);
  void end_background_refresh(ClientConn* b, bool answered);
  void wake_reactors(const cache::ReactorSet& reactors);
  void arm_wake_read();

  // Upstream side (upstream_conn.cc).
  void start_attempt(ClientConn* c, base::ByteBuffer* carried);
  // Sends the request to `target` now, on an idle or a new connection; false: no socket.
  void forget_target(UpstreamConn* u);

  bool send_now(ClientConn* c, upstream::TargetState* target, base::ByteBuffer* carried);
  // --upstream-max-conns queue (upstream_conn.cc).
  void enqueue(ClientConn* c, upstream::TargetState* target, base::ByteBuffer* carried);
  void unlink_queued(ClientConn* c);
  // Retry-After of a 503 from the queue: the longest wait c's service would have made.
  static uint32_t retry_after_s(const ClientConn* c);
  // Where c's upstream exchange keeps its deadline (its service's upstream-timeout-ms).
  static TimerList& upstream_timers(const ClientConn* c) { return *c->service->upstream_timers; }
  void serve_queues();
  void on_queue_timer(ClientConn* c);
  UpstreamConn* open_upstream(upstream::TargetState* target, __kernel_timespec* connect_timeout);
  UpstreamConn* take_idle(upstream::TargetState* target);
  std::vector<IdleConn>& idle_pool(upstream::TargetState* target) { return idle_pools_[target]; }
  void remove_from_idle_pool(UpstreamConn* u);
  // Closes the pooled connections past their idle deadline (worker.cc), when one is due.
  void close_idle_expired();
  const char* target_name(const UpstreamConn* u) const { return u->target ? u->target->name.c_str() : "(gone)"; }
  void attach(ClientConn* c, UpstreamConn* u);
  void write_request_head(ClientConn* c, UpstreamConn* u);
  void on_upstream_connect(UpstreamConn* u, int res);
  void on_upstream_recv(UpstreamConn* u, int res);
  void on_upstream_send(UpstreamConn* u, int res);
  void on_upstream_timer(UpstreamConn* u);
  void arm_upstream_recv(UpstreamConn* u);
  void release_read_buffer(UpstreamConn* u);
  // Free read buffers kept resident: as many as are in use (under steady load the free ones
  // are taken again at once), at least kReadBuffersWarmMax.
  size_t read_buffers_warm() const { return std::max(kReadBuffersWarmMax, read_buffers_.in_use()); }
  // --upstream-idle-max (0: no reuse).
  uint32_t idle_max_ = 0;
  // Idle connections kept per target after a request of service s: --upstream-idle-max, at
  // least this reactor's share of s's upstream-max-conns, so that a reactor busy up to its
  // limit reuses its connections instead of closing most after one request (1000 clients on
  // one reactor with 64 kept: 24,766 connects for ~38,000 requests). Idle ones count against
  // the limit, so this never opens more. Services sharing targets share one limit (config).
  static uint32_t idle_cap(uint32_t idle_max, const ServiceLocal* s) {
    return idle_max == 0 ? 0 : std::max(idle_max, s != nullptr ? s->conns_share : 0u);
  }
  void recycle_parser(std::unique_ptr<http::RequestParser> parser);
  void recycle_response_parser(UpstreamConn* u);
  void maybe_trim();
  // With no connection left: frees what the per-reactor lists grew to (worker.cc).
  void release_vacant_memory();
  void kick_upstream_send(UpstreamConn* u);
  void pump_upstream(UpstreamConn* u);
  void on_response_done(ClientConn* c);
  // The upstream machine's steps carried out (upstream_exchange.h): timers, failover,
  // resends, error answers, closes.
  void set_upstream_timer(UpstreamConn* u, UpstreamTimer timer);
  void carry_out(UpstreamConn* u, const UpstreamStep& step);
  void tell_client(ClientConn* c, ClientEvent event, uint16_t status = 0);
  void resend(ClientConn* c, UpstreamConn* broken, bool same_target);
  void release_upstream(UpstreamConn* u, uint32_t idle_timeout_ms);
  void close_upstream(UpstreamConn* u);
  void detach(ClientConn* c);

  const ServerOptions& options_;
  int index_;
  int listen_fd_;
  const std::atomic<bool>* stop_requested_;
  const std::atomic<bool>* handover_;
  bool handing_over_ = false;  // draining after a takeover (see Server::request_handover)
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  upstream::RoutingCell* routes_;
  const upstream::RoutingTable* table_ = nullptr;  // the table adopted this turn
  std::unordered_map<const upstream::ServiceRuntime*, std::unique_ptr<ServiceLocal>> services_;
  uint64_t balancer_seed_;
  // Services whose limits a reload changed, kept while a request routed before still uses them.
  std::vector<std::unique_ptr<ServiceLocal>> retired_services_;
  // A target's failure and ejection bookkeeping lives in its per-reactor slot, whichever
  // service's balancer picked it; this balancer only reaches those slots (it picks nothing,
  // and the connection limits are each service's balancer's).
  upstream::Balancer balancer_;
  // Idle keep-alive connections per target, most recently used last.
  std::unordered_map<const upstream::TargetState*, std::vector<IdleConn>> idle_pools_;
  int64_t idle_sweep_at_ms_ = INT64_MAX;  // the earliest idle deadline, roughly (close_idle_expired)
  std::vector<UpstreamConn*> live_upstreams_;  // every open upstream connection
  // (This reactor's shares of upstream-max-conns and upstream-queue-max: each ServiceLocal's.)
  std::unordered_map<upstream::TargetState*, WaitQueue> wait_queues_;
  std::vector<upstream::TargetState*> queue_scratch_;
  uint32_t queued_total_ = 0;

  TimerList header_timers_;
  TimerList idle_timers_;
  TimerList client_timers_;
  TimerList linger_timers_;
  // The lists above by ClientTimer (keep: none).
  TimerList* client_lists_[5] = {nullptr, &header_timers_, &idle_timers_, &client_timers_, &linger_timers_};
  TimerListSet upstream_timer_lists_;  // upstream conns: each service's upstream-timeout-ms
  TimerList cache_wait_timers_;
  TimerListSet queue_timer_lists_;     // queued clients: each service's upstream-queue-timeout-ms
  // Cross-reactor wake-ups for collapsed cache misses.
  const std::vector<int>* wake_fds_;
  uint64_t wake_value_ = 0;
  bool local_wake_pending_ = false;
  std::vector<ClientConn*> cache_waiters_;
  uint32_t background_refreshes_ = 0;     // in flight, at most kBackgroundRefreshesMax
  uint64_t boundary_serial_ = 0;          // multipart/byteranges boundaries
  cache::Fields cache_fields_;            // scratch: the request's fields as the cache sees them
  cache::RequestInfo cache_info_;         // scratch
  cache::Fields cache_response_fields_;   // scratch
  base::ByteBuffer fill_scratch_;         // decoded body bytes on their way to a fill

  std::vector<ClientConn*> starved_;
  std::vector<ClientConn*> dead_clients_;
  std::vector<UpstreamConn*> dead_upstreams_;
  std::vector<std::unique_ptr<http::RequestParser>> spare_parsers_;
  std::vector<std::unique_ptr<http::ResponseParser>> spare_response_parsers_;
  // Connections live in slabs of their own (slab.h): destroyed after every connection.
  Slab<ClientConn> client_slab_;
  Slab<UpstreamConn> upstream_slab_;
  BufferSlab read_buffers_;  // upstream read buffers (slab.h)
  BufferPool out_pool_;  // every connection's output buffers (out_queue.h)
  uint64_t freed_bytes_ = 0;  // roughly, since the last trim
  int64_t last_trim_ms_ = 0;
  int64_t recollect_at_ms_ = 0;  // a second mimalloc collect is due (0: none)
  int64_t no_clients_since_ms_ = 0;  // 0: there are clients
  bool buffers_touched_ = false;     // receive buffers used since their pages were released
  bool vacant_released_ = false;     // release_vacant_memory ran since the last client
  uint32_t clients_ = 0;
  uint32_t upstreams_ = 0;
  // Client connections of the whole proxy (all reactors), against --max-connections: one
  // atomic add per accept and per close, never per request.
  std::atomic<uint32_t>* connections_;
  bool accept_armed_ = false;
  bool draining_ = false;
  int64_t drain_deadline_ms_ = 0;
  int64_t now_ms_ = 0;
  WorkerStats stats_;
  http::RequestIdGenerator request_ids_;
  // Access log (null when off): this reactor's queue, a reused line buffer.
  AccessLogQueue* log_queue_ = nullptr;
  base::ByteBuffer log_line_;
  int64_t log_second_ = -1;    // the wall-clock second log_time_ was formatted for
  char log_time_[24] = "";     // "2026-12-03T08:24:01"
  // A line's wall-clock time is its monotonic end time plus this offset, measured again
  // once a second (log_offset_until_us_): no second clock read per line.
  int64_t log_wall_offset_us_ = 0;
  int64_t log_offset_until_us_ = 0;
};

}  // namespace ringmaster::proxy
