#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <random>

#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"
#include "ringmaster/io/socket.h"
#include "stall_hook.h"
#include "worker.h"

// mimalloc, when the binary links it (not the sanitizer builds, not the unit tests): its
// collect is what gives a thread's freed pages back; glibc's malloc_trim does otherwise.
#include <mimalloc.h>
#pragma weak mi_collect
#pragma weak mi_option_get
#pragma weak mi_option_set
#pragma weak mi_heap_new
#pragma weak mi_heap_set_default
#pragma weak mi_heap_get_backing
#pragma weak mi_heap_collect

namespace ringmaster::proxy {

// ---- TimerList ----

TimerList::TimerList(int64_t duration_ms) : duration_ms_(duration_ms) {
  sentinel_.prev = sentinel_.next = &sentinel_;
}

void TimerList::arm(TimerNode* node, int64_t now_ms) {
  disarm(node);
  node->deadline_ms = now_ms + duration_ms_;
  node->list = this;
  node->prev = sentinel_.prev;
  node->next = &sentinel_;
  sentinel_.prev->next = node;
  sentinel_.prev = node;
}

void TimerList::disarm(TimerNode* node) {
  if (node->list == nullptr) return;
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = nullptr;
  node->list = nullptr;
}

TimerNode* TimerList::pop_expired(int64_t now_ms) {
  TimerNode* first = sentinel_.next;
  if (first == &sentinel_ || first->deadline_ms > now_ms) return nullptr;
  disarm(first);
  return first;
}

TimerList* TimerListSet::acquire(int64_t duration_ms) {
  for (Shared& s : lists_) {
    if (s.list->duration_ms() == duration_ms) {
      ++s.users;
      return s.list.get();
    }
  }
  lists_.push_back(Shared{std::make_unique<TimerList>(duration_ms), 1});
  return lists_.back().list.get();
}

void TimerListSet::release(TimerList* list) {
  for (Shared& s : lists_) {
    if (s.list.get() != list) continue;
    RM_CHECK(s.users > 0);
    --s.users;  // freed by expire() once empty
    return;
  }
  RM_CHECK(false && "a timer list released that was never acquired");
}

ServiceLocal::ServiceLocal(std::shared_ptr<upstream::ServiceRuntime> runtime_in, const upstream::ServiceLimits& limits_in,
                           unsigned reactor, unsigned reactors, uint64_t seed, TimerListSet* upstream_lists_in,
                           TimerListSet* queue_lists_in)
    : runtime(std::move(runtime_in)),
      balancer(reactor, seed),
      slot(&runtime->slots[reactor]),
      limits(limits_in),
      upstream_timers(upstream_lists_in->acquire(limits_in.upstream_timeout_ms)),
      queue_timers(queue_lists_in->acquire(limits_in.upstream_queue_timeout_ms)),
      upstream_lists(upstream_lists_in),
      queue_lists(queue_lists_in) {
  // upstream-max-conns and upstream-queue-max are per proxy; each reactor holds an even share,
  // so that the limit holds without any shared counter on the request path. SO_REUSEPORT
  // spreads clients evenly enough that the shares fill alike; config guarantees each reactor
  // at least one connection.
  if (limits.upstream_max_conns != 0) {
    conns_share = std::max<uint32_t>(1, reactor_share(limits.upstream_max_conns, reactor, reactors));
    balancer.set_conns_max(conns_share);
  }
  queue_max = reactor_share(limits.upstream_queue_max, reactor, reactors);
  connect_timeout.tv_sec = limits.connect_timeout_ms / 1000;
  connect_timeout.tv_nsec = static_cast<long long>(limits.connect_timeout_ms % 1000) * 1000000;
}

ServiceLocal::~ServiceLocal() {
  upstream_lists->release(upstream_timers);
  queue_lists->release(queue_timers);
}

// ---- Worker ----

namespace {
// Gives this thread's free heap pages back to the kernel. mimalloc (2.0.x) decommits a freed
// span only after mi_option_decommit_delay, and only when a later free or allocation in the
// same segment notices the delay passed: an idle reactor would keep a burst's pages resident
// forever (measured: ~1 KB per burst client). With the delay at 0 for the collect, the pages
// it frees, and the free neighbours they merge with, are decommitted at once; the delay
// stays as it was for the request path (reuse within it saves a page-fault cycle). Only
// when `decommit`: a reactor under steady load trims every second, and decommitting then
// costs a madvise and page faults per page that is reused a moment later (measured at
// -c1000: ~100 madvise per second).
void collect_heap(bool decommit) {
  if (mi_collect == nullptr) {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // A sanitizer's allocator replaces malloc, so glibc's arenas were never set up: its
    // malloc_trim would set them up now, from every reactor at once, which is not thread-safe
    // (two draining reactors crashed in it under ASan). There is nothing of glibc's to trim.
    malloc_trim(0);
#endif
    return;
  }
  // The reactor's start-up heap (see use_request_heap) holds no freed burst memory, but the
  // thread's retired pages and delayed decommits are collected per heap.
  mi_heap_collect(mi_heap_get_backing(), true);
  if (!decommit) {
    mi_collect(true);
    return;
  }
  // The option is process-wide and every reactor trims for itself: one at a time, and the
  // value put back is the one read before any reactor ran (two interleaved trims would
  // otherwise read each other's 0 and leave it at 0 for good: a madvise per freed page on
  // the request path, measured at -30 % throughput).
  static const long delay_ms = mi_option_get(mi_option_decommit_delay);
  static std::mutex option_mutex;
  std::lock_guard<std::mutex> hold(option_mutex);
  mi_option_set(mi_option_decommit_delay, 0);
  mi_collect(true);
  // Spans freed earlier are only marked for a delayed decommit, which mimalloc carries out
  // when it next takes a page from that segment: take (and give back) a page of each small
  // and medium size class, so that every segment with free room is visited once.
  for (size_t bytes = 16; bytes <= 128 * 1024; bytes += bytes / 4 + 8) {
    void* p = std::malloc(bytes);
    asm volatile("" : : "r"(p) : "memory");  // a real allocation: not elided with the free
    std::free(p);
  }
  mi_collect(true);
  mi_option_set(mi_option_decommit_delay, delay_ms);
}

// From here on this thread's allocations go to a heap of their own (mimalloc builds), apart
// from what the reactor made at start-up. A mimalloc page with one live block stays
// resident whole: objects made at start (services, balancers, the ring's bookkeeping) each
// sat on a page that a burst then filled with transient blocks (parsers, buffers, client
// lists) and kept it resident after the burst was gone (measured: 0.7 MiB per reactor, on
// pages of 16, 32, 1024 and 4096-byte blocks with one start-up object each). Apart, the
// start-up heap's pages stay as small as they were, and the request heap empties once the
// reactor has no connection left and its lists were let go (release_vacant_memory). Nothing
// changes per request: malloc takes the thread's default heap either way.
void use_request_heap() {
  if (mi_heap_new == nullptr) return;  // glibc: arenas are not split this way
  if (mi_heap_t* heap = mi_heap_new()) mi_heap_set_default(heap);
}

template <typename T>
T* container_of_timer(TimerNode* node) {
  return reinterpret_cast<T*>(reinterpret_cast<char*>(node) - offsetof(T, timer));
}

// 64 bits from the kernel's random source, at reactor start only (request ids' prefix).
uint64_t random_u64() {
  std::random_device source;
  return (static_cast<uint64_t>(source()) << 32) | source();
}
}  // namespace

Worker::Worker(const ServerOptions& options, int index, int listen_fd, upstream::RoutingCell* routes,
               const std::atomic<bool>* stop_requested, const std::atomic<bool>* handover, const std::vector<int>* wake_fds,
               std::atomic<uint32_t>* connections)
    : options_(options),
      index_(index),
      listen_fd_(listen_fd),
      stop_requested_(stop_requested),
      handover_(handover),
      routes_(routes),
      balancer_seed_(std::random_device{}()),
      balancer_(static_cast<unsigned>(index), balancer_seed_),
      header_timers_(options.header_timeout_ms),
      idle_timers_(options.idle_timeout_ms),
      client_timers_(options.client_timeout_ms),
      linger_timers_(kLingerMs),
      cache_wait_timers_(options.cache_lock_timeout_ms),
      wake_fds_(wake_fds),
      read_buffers_(kUpstreamReadBytes, kReadBuffersPerRegionMax),
      connections_(connections),
      request_ids_(random_u64(), random_u64()) {
  if (options.access_log != nullptr) log_queue_ = &options.access_log->queue(static_cast<unsigned>(index));
  // (Each service's upstream limits and timeouts: ServiceLocal, made in adopt_routes.)
  // Idle connections kept per target: --upstream-idle-max, raised per release to the
  // reactor's share of the service's upstream-max-conns (idle_cap).
  idle_max_ = options.upstream_idle_max;
}

Worker::~Worker() {
  // Before the timer list sets the services hold lists of (declared after them).
  retired_services_.clear();
  services_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void Worker::run() {
  // The ring must be created by the thread that drives it (SINGLE_ISSUER).
  ring_ = std::make_unique<io::Ring>(4096);
  buffers_ = std::make_unique<io::BufferRing>(*ring_, 0, kRecvBufferCount, kRecvBufferBytes);
  // Sockets get registered slots (no per-operation file lookup); the table covers every
  // descriptor number the process may open, up to a cap (its size is per reactor).
  rlimit files{};
  unsigned slots = kRegisteredFilesMax;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < slots) slots = static_cast<unsigned>(files.rlim_cur);
  if (!ring_->register_files(slots)) RM_LOG_DEBUG("worker %d: no registered files", index_);
  now_ms_ = base::now_ms();
  adopt_routes();
  arm_accept();
  arm_wake_read();
  use_request_heap();
  const char* stall_path = stall_hook_path(index_);  // a test hook, off unless asked for
  for (;;) {
    if (stall_path != nullptr) [[unlikely]] stall_hook_hold(stall_path);
    stats_.loop_turns.add();
    ring_->submit_and_wait(kTickMs);
    now_ms_ = base::now_ms();
    adopt_routes();
    ring_->drain([this](io_uring_cqe* cqe) { dispatch(cqe); });
    if (queued_total_ > 0) serve_queues();
    if (local_wake_pending_) {
      local_wake_pending_ = false;
      wake_cache_waiters();
    }
    // Receives that ran out of provided buffers start again once buffers came back.
    if (!starved_.empty() && buffers_->available() > kRecvBufferCount / 4) {
      std::vector<ClientConn*> retry;
      retry.swap(starved_);
      for (ClientConn* c : retry) {
        c->starved = false;
        update_client_recv(c);
      }
    }
    run_timers();
    if (!draining_ && stop_requested_->load(std::memory_order_relaxed)) begin_drain();
    if (draining_) drain_tick();
    bury_dead();
    maybe_trim();
    // Nothing from an older snapshot is referenced past this point of the turn.
    routes_->quiescent(static_cast<unsigned>(index_));
    // After a handover, also until the accept's cancel completed: a connection it took
    // meanwhile is served, not lost with the ring.
    if (draining_ && clients_ == 0 && upstreams_ == 0 && dead_clients_.empty() && dead_upstreams_.empty() &&
        !(handing_over_ && accept_armed_)) {
      break;
    }
  }
  routes_->offline(static_cast<unsigned>(index_));
  ring_->submit();
}

void Worker::dispatch(io_uring_cqe* cqe) {
  uint64_t ud = cqe->user_data;
  switch (io::tag_of(ud)) {
    case io::OpTag::ignore:
      return;
    case io::OpTag::wake:
      // Another reactor stored (or gave up on) a key some of our clients wait for.
      if (!draining_ || clients_ > 0) arm_wake_read();
      local_wake_pending_ = true;
      return;
    case io::OpTag::accept:
      on_accept(cqe);
      return;
    case io::OpTag::client_recv:
      on_client_recv(io::owner_of<ClientConn>(ud), cqe);
      return;
    case io::OpTag::client_send:
      on_client_send(io::owner_of<ClientConn>(ud), cqe->res);
      return;
    case io::OpTag::upstream_connect:
      on_upstream_connect(io::owner_of<UpstreamConn>(ud), cqe->res);
      return;
    case io::OpTag::upstream_recv:
      on_upstream_recv(io::owner_of<UpstreamConn>(ud), cqe->res);
      return;
    case io::OpTag::upstream_send:
      on_upstream_send(io::owner_of<UpstreamConn>(ud), cqe->res);
      return;
  }
}

void Worker::run_timers() {
  // (A client connection's deadlines, the cache's and the queue's included, all mean what
  // ClientExchange::on_timeout says: on_client_timer.)
  for (TimerList* list : {&header_timers_, &idle_timers_, &client_timers_, &linger_timers_}) {
    while (TimerNode* node = list->pop_expired(now_ms_)) on_client_timer(container_of_timer<ClientConn>(node));
  }
  upstream_timer_lists_.expire(now_ms_, [this](TimerNode* node) { on_upstream_timer(container_of_timer<UpstreamConn>(node)); });
  while (TimerNode* node = cache_wait_timers_.pop_expired(now_ms_)) on_client_timer(container_of_timer<ClientConn>(node));
  queue_timer_lists_.expire(now_ms_, [this](TimerNode* node) { on_client_timer(container_of_timer<ClientConn>(node)); });
  if (now_ms_ >= idle_sweep_at_ms_) close_idle_expired();
}

void Worker::close_idle_expired() {
  // One deadline check per pooled connection, only when the earliest deadline came (or a
  // reuse moved it: then nothing closes and the next earliest is found); no timer is armed
  // or disarmed per request. A pool that empties is freed with its map node: a burst's
  // pools (its share of upstream-max-conns each) do not outlive its connections.
  int64_t next_ms = INT64_MAX;
  for (auto it = idle_pools_.begin(); it != idle_pools_.end();) {
    std::vector<IdleConn>& pool = it->second;
    size_t keep = 0;
    for (const IdleConn& e : pool) {
      if (e.expires_ms > now_ms_) {
        next_ms = std::min(next_ms, e.expires_ms);
        pool[keep++] = e;
        continue;
      }
      RM_LOG_DEBUG("upstream %s idle past its timeout: closed", target_name(e.conn));
      if (e.conn->x.on_idle_expired().action == UpstreamAction::close) close_upstream(e.conn);
    }
    pool.resize(keep);
    it = pool.empty() ? idle_pools_.erase(it) : std::next(it);
  }
  idle_sweep_at_ms_ = next_ms == INT64_MAX ? INT64_MAX : std::max(next_ms, now_ms_ + kIdleSweepGapMs);
}

void Worker::cancel(uint64_t user_data) {
  io_uring_sqe* sqe = ring_->get_sqe();
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, io::pack_user_data(nullptr, io::OpTag::ignore));
}

void Worker::arm_accept() {
  io_uring_sqe* sqe = ring_->get_sqe();
  io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, io::pack_user_data(this, io::OpTag::accept));
  accept_armed_ = true;
}

void Worker::on_accept(io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) {
    accept_armed_ = false;
    // The multishot accept ended (an error such as EMFILE, or our own cancel): re-arm
    // unless we are draining.
    if (!draining_ && listen_fd_ >= 0) arm_accept();
  }
  if (cqe->res < 0) {
    if (cqe->res != -ECANCELED) RM_LOG_DEBUG("accept: %d", cqe->res);
    return;
  }
  int fd = cqe->res;
  bool refuse_draining = draining_ && !handing_over_;
  if (refuse_draining || connections_->fetch_add(1, std::memory_order_relaxed) >= options_.max_connections) {
    if (!refuse_draining) connections_->fetch_sub(1, std::memory_order_relaxed);
    // Over --max-connections: refuse at once rather than queue; existing clients are unharmed.
    stats_.connections_refused.add();
    ::close(fd);
    return;
  }
  stats_.connections_accepted.add();
  ClientConn* c = client_slab_.make();
  c->worker = this;
  c->fd = fd;
  c->out.set_pool(&out_pool_);
  buffers_touched_ = true;
  io::peer_ip(fd, c->ip, sizeof c->ip);
  ++clients_;
  stats_.connections_open.set(clients_);
  // The first request's head must be complete within the header deadline, counted from accept.
  arm_client_timer(c, c->ex.on_accept(draining_));
  ring_->install_file(&c->fd);
  arm_client_recv(c);
}

void Worker::begin_drain() {
  draining_ = true;
  drain_deadline_ms_ = now_ms_ + options_.shutdown_timeout_ms;
  RM_LOG_INFO("worker %d: draining (%u clients)", index_, clients_);
  if (accept_armed_) cancel(io::pack_user_data(this, io::OpTag::accept));
  handing_over_ = handover_->load(std::memory_order_relaxed);
  if (handing_over_) {
    // The next process accepts on this very socket: leave it listening. What our accept
    // still takes before the cancel lands is served (see on_accept), with Connection: close.
    RM_LOG_INFO("worker %d: handed the listener over", index_);
    ::close(listen_fd_);
    listen_fd_ = -1;
  } else {
    // shutdown() takes the socket out of the listening state (and out of the SO_REUSEPORT
    // group) at once, whoever still holds it: the pending multishot accept keeps a reference
    // of its own, and relying on the cancel above alone once left a listener queueing
    // connections that nobody would accept for the whole drain. The other workers do the
    // same, so the port refuses from here on.
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  for (auto& [state, pool] : idle_pools_) {
    std::vector<IdleConn> conns;
    conns.swap(pool);
    for (const IdleConn& e : conns) close_upstream(e.conn);
  }
}

void Worker::drain_tick() {
  // Every client connection (and background refresh) runs exactly one deadline, so the
  // timer lists reach them all: each is told of the drain, and the machine says which close
  // now (ClientExchange::on_drain: idle ones with nothing left to send; past the deadline,
  // every one). The rest finish their exchange and close after its answer.
  bool past_deadline = now_ms_ >= drain_deadline_ms_;
  std::vector<ClientConn*> to_close;
  uint32_t seen = 0;
  auto visit = [&](TimerNode* node) {
    ClientConn* c = container_of_timer<ClientConn>(node);
    ++seen;
    DrainAction action = c->ex.on_drain(c->out.empty());
    if (past_deadline) action = c->ex.on_drain_deadline();
    if (action == DrainAction::close_now) to_close.push_back(c);
  };
  for (TimerList* list : {&header_timers_, &idle_timers_, &client_timers_, &linger_timers_, &cache_wait_timers_}) {
    list->for_each(visit);
  }
  queue_timer_lists_.for_each(visit);
  // A connection on no list would never be closed by any deadline (nor by the drain).
  RM_CHECK(seen == clients_ + background_refreshes_);
  for (ClientConn* c : to_close) close_client(c);
  if (past_deadline) {
    upstream_timer_lists_.expire(INT64_MAX, [this](TimerNode* node) {
      UpstreamConn* u = container_of_timer<UpstreamConn>(node);
      if (u->client) close_client(u->client);
      close_upstream(u);
    });
  }
}

void Worker::recycle_parser(std::unique_ptr<http::RequestParser> parser) {
  if (spare_parsers_.size() >= kSpareParsersMax) {
    freed_bytes_ += kParserBytesEstimate;
    return;  // freed here
  }
  parser->reset();
  spare_parsers_.push_back(std::move(parser));
}

void Worker::recycle_response_parser(UpstreamConn* u) {
  if (!u->parser) return;
  if (spare_response_parsers_.size() >= kSpareParsersMax) {
    u->parser.reset();
    freed_bytes_ += kParserBytesEstimate;
    return;
  }
  spare_response_parsers_.push_back(std::move(u->parser));
}

void Worker::maybe_trim() {
  // After a burst, the memory its connections used is free but still resident (neither
  // allocator hands back free pages in the middle of its heap by itself at once): give it
  // back, rarely, since this walks the heap. mimalloc collects the calling thread's heap, so
  // every reactor does this for itself.
  if (recollect_at_ms_ != 0 && now_ms_ >= recollect_at_ms_) {
    // Once more, a moment later: if little was freed meanwhile the reactor has calmed down
    // (a burst is over), and the freed pages go back to the kernel now.
    recollect_at_ms_ = 0;
    collect_heap(freed_bytes_ < kCalmFreedBytesMax);
  }
  if (clients_ > 0 || !dead_clients_.empty()) {
    no_clients_since_ms_ = 0;
    vacant_released_ = false;
  } else if (no_clients_since_ms_ == 0) {
    no_clients_since_ms_ = now_ms_;
  } else if (buffers_touched_ && now_ms_ - no_clients_since_ms_ >= kQuietReleaseMs) {
    // No client, so no receive in flight (a closed client is buried only after its last
    // completion): the receive buffers' pages and the spares can all go until traffic
    // returns, so that RSS falls back to where it started once a burst is over.
    buffers_->release_memory();
    buffers_touched_ = false;
    freed_bytes_ += spare_parsers_.size() * kParserBytesEstimate + read_buffers_.trim(0);
    spare_parsers_.clear();
    spare_response_parsers_.clear();
    out_pool_.clear();
    client_slab_.release_empty();
    upstream_slab_.release_empty();
    last_trim_ms_ = 0;
    freed_bytes_ = std::max(freed_bytes_, kTrimFreedBytesMin);
  }
  if (no_clients_since_ms_ != 0 && !buffers_touched_ && !vacant_released_ && upstreams_ == 0 &&
      dead_upstreams_.empty() && queued_total_ == 0 && background_refreshes_ == 0) {
    // After the quiet release, once no connection is left at all (the pooled ones go at
    // their idle timeout): the lists a burst grew go too, and with them the last blocks on
    // the request heap's pages, which the next trim decommits.
    release_vacant_memory();
    vacant_released_ = true;
    last_trim_ms_ = 0;
    freed_bytes_ = std::max(freed_bytes_, kTrimFreedBytesMin);
  }
  // Much freed: soon. Anything freed: after a while (the tail of a burst, which freed less
  // than the threshold after the last trim, still holds pages).
  bool due = (freed_bytes_ >= kTrimFreedBytesMin && now_ms_ - last_trim_ms_ >= kTrimIntervalMs) ||
             (freed_bytes_ > 0 && now_ms_ - last_trim_ms_ >= kTrimLateMs);
  if (!due) return;
  // The spares go too: kept from a burst, each would pin a mostly empty heap page (the rest
  // of its page was the burst's), and they are cheap to make again.
  spare_parsers_.clear();
  spare_response_parsers_.clear();
  out_pool_.clear();
  read_buffers_.trim(read_buffers_warm());
  // A late trim (little freed for a while) or one with no clients left: calm.
  collect_heap(freed_bytes_ < kTrimFreedBytesMin || clients_ == 0);
  if (mi_collect != nullptr) recollect_at_ms_ = now_ms_ + kRecollectDelayMs;
  last_trim_ms_ = now_ms_;
  freed_bytes_ = 0;
}

void Worker::release_vacant_memory() {
  // Each of these is empty now; what a burst grew them to is their capacity. (A vector
  // swapped with an empty one frees it; a map assigned an empty one frees its buckets.)
  std::vector<UpstreamConn*>().swap(live_upstreams_);
  decltype(idle_pools_)().swap(idle_pools_);
  decltype(wait_queues_)().swap(wait_queues_);
  std::vector<upstream::TargetState*>().swap(queue_scratch_);
  std::vector<ClientConn*>().swap(starved_);
  std::vector<ClientConn*>().swap(dead_clients_);
  std::vector<UpstreamConn*>().swap(dead_upstreams_);
  std::vector<ClientConn*>().swap(cache_waiters_);
  decltype(spare_parsers_)().swap(spare_parsers_);
  decltype(spare_response_parsers_)().swap(spare_response_parsers_);
  out_pool_.clear();
  read_buffers_.trim(0);
  client_slab_.release_empty();
  upstream_slab_.release_empty();
}

void Worker::bury_dead() {
  // Destroy only what is closed and has nothing in flight; the rest waits for its last
  // completion (cancellations and shutdown() make those arrive promptly).
  size_t keep = 0;
  for (ClientConn* c : dead_clients_) {
    if (c->in_flight == 0) {
      if (c->fd >= 0) {  // a background cache refresh has none
        ring_->remove_file(c->fd);
        ::close(c->fd);
      }
      client_slab_.destroy(c);
      freed_bytes_ += sizeof(ClientConn);
    } else {
      dead_clients_[keep++] = c;
    }
  }
  dead_clients_.resize(keep);
  keep = 0;
  for (UpstreamConn* u : dead_upstreams_) {
    if (u->in_flight == 0) {
      ring_->remove_file(u->fd);
      ::close(u->fd);
      if (u->read_buffer != nullptr) read_buffers_.give(u->read_buffer);
      recycle_response_parser(u);
      upstream_slab_.destroy(u);
      freed_bytes_ += sizeof(UpstreamConn);
    } else {
      dead_upstreams_[keep++] = u;
    }
  }
  dead_upstreams_.resize(keep);
}

}  // namespace ringmaster::proxy
