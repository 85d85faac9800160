#include "ringmaster/proxy/server.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <utility>

#include "ringmaster/base/log.h"
#include "ringmaster/io/socket.h"
#include "worker.h"

namespace ringmaster::proxy {

Server::Server(const ServerOptions& options, upstream::RoutingCell* routes) : options_(options), routes_(routes) {}

Server::~Server() {
  request_stop();
  wait();
  // Workers outlive their threads until here: the admin thread may read their counters
  // until main stops it.
  workers_.clear();
  for (int fd : wake_fds_) ::close(fd);
  wake_fds_.clear();
}

void Server::start() {
  // Every listener is bound here, on the calling thread, so "address in use" is reported
  // before anything runs; each worker then gets its own SO_REUSEPORT socket.
  std::vector<int> fds;
  try {
    for (unsigned i = 0; i < options_.threads; ++i) fds.push_back(io::listen_tcp(options_.listen, 4096));
  } catch (...) {
    for (int fd : fds) ::close(fd);
    throw;
  }
  start(fds);
}

void Server::start(const std::vector<int>& fds) {
  if (fds.size() != options_.threads) throw std::runtime_error("one listener per reactor expected");
  listen_fds_ = fds;
  // Pin within the CPUs we were given (taskset, a cpuset), not all online ones.
  std::vector<int> cpus;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
    }
  }
  for (unsigned i = 0; i < options_.threads; ++i) {
    int wake = eventfd(0, EFD_CLOEXEC);
    if (wake < 0) throw std::runtime_error("eventfd failed");
    wake_fds_.push_back(wake);
  }
  for (unsigned i = 0; i < options_.threads; ++i) {
    workers_.push_back(
        std::make_unique<Worker>(options_, static_cast<int>(i), fds[i], routes_, &stop_requested_, &handover_, &wake_fds_,
                                 &connections_));
  }
  for (unsigned i = 0; i < options_.threads; ++i) {
    Worker* w = workers_[i].get();
    int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
    threads_.emplace_back([w, i, cpu, pin = options_.pin_threads] {
      char name[16];
      std::snprintf(name, sizeof name, "reactor-%u", i);
      base::set_thread_name(name);
      if (pin && cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      }
      try {
        w->run();
      } catch (const std::exception& e) {
        // Only ring creation throws, before any connection exists.
        RM_LOG_ERROR("reactor %u failed to start: %s", i, e.what());
        std::_Exit(1);
      }
    });
  }
}

namespace {

using Workers = std::vector<std::unique_ptr<Worker>>;

// A counter family of WorkerStats: one unlabelled sample, its reactors' sum.
struct Family {
  const char* name;
  const char* help;
  const metrics::Counter WorkerStats::*counter;
};

// A counter or gauge of WorkerStats summed over the reactors, read at render time.
template <class Metric>
auto sum_over(const Workers& workers, const Metric WorkerStats::*member) {
  decltype((workers.front()->stats().*member).get()) sum = 0;
  for (const auto& w : workers) sum += (w->stats().*member).get();
  return sum;
}

void register_cache_metrics(metrics::Registry& registry, const Workers& workers, const cache::Cache* cache) {
  static const Family kFamilies[] = {
      {"ringmaster_cache_hits_total", "Requests answered from the cache.", &WorkerStats::cache_hits},
      {"ringmaster_cache_misses_total", "Cacheable lookups that found nothing fresh.", &WorkerStats::cache_misses},
      {"ringmaster_cache_not_modified_total", "Hits answered 304 to a conditional request.",
       &WorkerStats::cache_not_modified},
      {"ringmaster_cache_collapsed_waits_total", "Misses that waited for another request's fetch of the same key.",
       &WorkerStats::cache_collapsed_waits},
      {"ringmaster_cache_not_stored_total", "Responses to storable requests that were not stored.",
       &WorkerStats::cache_not_stored},
      {"ringmaster_cache_invalidated_total",
       "Entries removed after successful unsafe requests (their target, Location, Content-Location).",
       &WorkerStats::cache_invalidated},
      {"ringmaster_cache_revalidations_total", "Conditional requests sent upstream for stale entries.",
       &WorkerStats::cache_revalidations},
      {"ringmaster_cache_revalidated_total", "Stale entries freshened by a 304 and served.",
       &WorkerStats::cache_revalidated},
      {"ringmaster_cache_stale_served_total",
       "Stale entries served because no target answered (or one answered 5xx within stale-if-error).",
       &WorkerStats::cache_stale_served},
      {"ringmaster_cache_refreshes_started_total",
       "Background refreshes started for stale entries served within stale-while-revalidate.",
       &WorkerStats::cache_refreshes_started},
      {"ringmaster_cache_refreshes_succeeded_total", "Background refreshes the origin answered.",
       &WorkerStats::cache_refreshes_succeeded},
      {"ringmaster_cache_refreshes_failed_total",
       "Background refreshes without an answer (no target, 5xx, broken, timed out): the stale entry stays.",
       &WorkerStats::cache_refreshes_failed},
      {"ringmaster_cache_refreshes_refused_total",
       "Background refreshes not started: the reactor already ran its maximum.",
       &WorkerStats::cache_refreshes_refused},
  };
  for (const Family& f : kFamilies) registry.counter(f.name, f.help, [&workers, &f] { return sum_over(workers, f.counter); });
  if (cache == nullptr) return;
  const cache::Cache* c = cache;
  const cache::CacheStats* s = &c->stats();
  registry.counter("ringmaster_cache_stores_total", "Responses stored.", [s] { return uint64_t{s->stores.load()}; });
  registry.counter("ringmaster_cache_evictions_total", "Entries evicted to stay within --cache-bytes.",
                   [s] { return uint64_t{s->evictions.load()}; });
  registry.counter("ringmaster_cache_invalidations_total", "Whole-cache invalidations (content version, purge).",
                   [s] { return uint64_t{s->invalidations.load()}; });
  registry.counter("ringmaster_cache_purged_total", "Entries removed by a purge of one path.",
                   [s] { return uint64_t{s->purged.load()}; });
  registry.gauge("ringmaster_cache_bytes", "Bytes held by cache entries.",
                 [s] { return static_cast<int64_t>(s->bytes.load()); });
  registry.gauge("ringmaster_cache_entries", "Entries in the cache.", [s] { return static_cast<int64_t>(s->entries.load()); });
  registry.gauge("ringmaster_cache_capacity_bytes", "--cache-bytes.",
                 [c] { return static_cast<int64_t>(c->capacity_bytes()); });
}

}  // namespace

void Server::register_metrics(metrics::Registry& registry) const {
  static const Family kFamilies[] = {
      {"ringmaster_connections_accepted_total", "Client connections accepted.", &WorkerStats::connections_accepted},
      {"ringmaster_connections_refused_total", "Client connections refused over --max-connections or while draining.",
       &WorkerStats::connections_refused},
      {"ringmaster_requests_total", "Request heads parsed and accepted.", &WorkerStats::requests},
      {"ringmaster_requests_rejected_total", "Requests answered 4xx by the proxy's own validation.",
       &WorkerStats::rejected},
      {"ringmaster_upstream_connects_total", "Upstream connections opened.", &WorkerStats::upstream_connects},
      {"ringmaster_upstream_connect_failures_total", "Upstream connects refused or timed out.",
       &WorkerStats::upstream_connect_failures},
      {"ringmaster_upstream_reused_total", "Requests sent on a pooled keep-alive upstream connection.",
       &WorkerStats::upstream_reused},
      {"ringmaster_upstream_retries_total", "Idempotent requests resent after a stale pooled connection closed.",
       &WorkerStats::upstream_retries},
      {"ringmaster_responses_502_total", "502 answers (no reachable target, bad upstream response).",
       &WorkerStats::responses_502},
      {"ringmaster_responses_503_total", "503 answers (no target configured, upstream queue full or timed out).", &WorkerStats::responses_503},
      {"ringmaster_responses_504_total", "504 answers (upstream timeout).", &WorkerStats::responses_504},
      {"ringmaster_unrouted_requests_total", "404 answers: no service matched the request (Host, path).",
       &WorkerStats::unrouted},
      {"ringmaster_responses_truncated_total", "Responses cut off by the backend; the client connection was closed.",
       &WorkerStats::truncated},
      {"ringmaster_upstream_queued_total", "Requests that waited for a connection under --upstream-max-conns.",
       &WorkerStats::upstream_queued},
      {"ringmaster_upstream_queue_full_total", "Requests answered 503 because their target's queue was full.",
       &WorkerStats::upstream_queue_full},
      {"ringmaster_upstream_queue_timeouts_total", "Requests answered 503 after --upstream-queue-timeout-ms in the queue.",
       &WorkerStats::upstream_queue_timeouts},
  };
  for (const Family& f : kFamilies) registry.counter(f.name, f.help, [this, &f] { return sum_over(workers_, f.counter); });
  registry.gauge("ringmaster_connections_open", "Client connections open now.",
                 [this] { return sum_over(workers_, &WorkerStats::connections_open); });
  registry.gauge("ringmaster_upstream_queue_length", "Requests waiting for an upstream connection now.",
                 [this] { return sum_over(workers_, &WorkerStats::upstream_queue_length); });
  registry.gauge("ringmaster_upstream_connections_open", "Upstream connections open now (connecting, busy or idle).",
                 [this] { return sum_over(workers_, &WorkerStats::upstream_connections_open); });
  const std::pair<const char*, const char*> kHistograms[] = {
      {"ringmaster_request_duration_seconds",
       "Requests from their first byte until the answer is complete (or the request is cut off)."},
      {"ringmaster_upstream_duration_seconds",
       "Requests that went upstream: from the first upstream connection attached until the response is "
       "complete (or fails), failovers included."},
      {"ringmaster_upstream_queue_wait_seconds",
       "Requests that waited for an upstream connection (--upstream-max-conns): time in the queue."},
  };
  metrics::Histogram WorkerStats::*const kMembers[] = {&WorkerStats::request_time, &WorkerStats::upstream_time,
                                                       &WorkerStats::upstream_queue_wait};
  for (size_t i = 0; i < std::size(kMembers); ++i) {
    registry.histogram(kHistograms[i].first, kHistograms[i].second,
                       [this, member = kMembers[i]](std::vector<const metrics::Histogram*>& parts) {
                         for (const auto& w : workers_) parts.push_back(&(w->stats().*member));
                       });
  }
  register_cache_metrics(registry, workers_, options_.cache);
}

std::vector<uint64_t> Server::loop_turns() const {
  std::vector<uint64_t> turns;
  for (const auto& w : workers_) turns.push_back(w->stats().loop_turns.get());
  return turns;
}

void Server::wait() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace ringmaster::proxy
