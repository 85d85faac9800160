// proxy: the data plane. One Worker per reactor thread (pinned, its own io_uring, its own
// SO_REUSEPORT listener); each worker owns its client connections, its upstream connection
// pools and its Balancer outright, so the request path shares no mutable state and takes no
// lock. Server is the handle main() holds: it starts the workers and stops them on SIGTERM.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ringmaster/base/host_port.h"
#include "ringmaster/cache/cache.h"
#include "ringmaster/http/message.h"
#include "ringmaster/metrics/metrics.h"
#include "ringmaster/metrics/registry.h"
#include "ringmaster/proxy/access_log.h"
#include "ringmaster/upstream/routing.h"

namespace ringmaster::proxy {

struct ServerOptions {
  base::SocketAddress listen;
  unsigned threads = 1;
  bool pin_threads = true;
  http::Limits limits;
  uint32_t header_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 60000;
  uint32_t client_timeout_ms = 60000;
  uint32_t shutdown_timeout_ms = 10000;
  uint32_t max_connections = 10000;
  uint32_t upstream_idle_max = 64;
  // (Connect and upstream timeouts, upstream-max-conns and its queue, and the request body
  // limit are each service's: upstream::ServiceLimits in the routing table. limits.body_bytes_max
  // is the parser's before routing, which main leaves unlimited.)
  // The shared response cache; null disables caching (--cache-bytes 0).
  cache::Cache* cache = nullptr;
  int64_t cache_ttl_ms = 0;                  // opt-in freshness when a response states none (0: heuristics
                                             //   only; 64-bit: --cache-ttl goes up to 365 days)
  uint64_t cache_object_bytes_max = 8 << 20;  // larger responses stream through unstored
  uint32_t cache_lock_timeout_ms = 5000;     // a collapsed miss waits this long, then goes upstream
  int64_t cache_serve_stale_ms = 3600000;     // how stale an entry may answer when no target answers (0: never)
  bool cache_stale_on_5xx = false;            // ... and when a target answers 500-504 (operator's opt-in)
  uint32_t cache_pass_ms = 1000;             // after an unstorable response, misses don't wait
  // --access-log: one line per request into this reactor's queue; null when off.
  AccessLog* access_log = nullptr;
};

class Worker;

class Server {
 public:
  // `routes` must outlive the server and have one reactor slot per thread; a RouteBoard
  // (main's configuration, the discovery coordinator's targets) publishes into it.
  Server(const ServerOptions& options, upstream::RoutingCell* routes);
  ~Server();

  // Binds every listener and starts the workers; throws std::runtime_error with the reason
  // (address in use, io_uring refused) before any traffic is served.
  void start();
  // The same with listeners inherited from the previous process (a takeover, see upgrade.h):
  // one reactor per descriptor, nothing is bound.
  void start(const std::vector<int>& inherited_listeners);
  // Async-signal-safe: asks every worker to stop accepting and drain.
  void request_stop() { stop_requested_.store(true, std::memory_order_relaxed); }
  // The drain after a takeover: the listeners now belong to the next process too, so they
  // are closed here without shutdown() (which would stop them for it as well), and
  // connections accepted until the accept is cancelled are served, not refused.
  void request_handover() {
    handover_.store(true, std::memory_order_relaxed);
    request_stop();
  }
  // This process's listening descriptors, one per reactor (for handing them over).
  const std::vector<int>& listen_fds() const { return listen_fds_; }
  // Joins the worker threads (they exit once drained or at the shutdown deadline); their
  // counters stay readable until the server is destroyed.
  void wait();
  // Registers the proxy's families: counters, gauges and histograms summed over reactors at
  // render time (from any thread, until the server is destroyed), then the cache's
  // hits/misses/waits and the shared cache's own counters and gauges.
  void register_metrics(metrics::Registry& registry) const;
  // Each reactor's loop-turn count (callable from any thread once started).
  std::vector<uint64_t> loop_turns() const;

 private:
  ServerOptions options_;
  upstream::RoutingCell* routes_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> handover_{false};
  std::vector<int> listen_fds_;
  std::atomic<uint32_t> connections_{0};  // open client connections, all reactors
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<int> wake_fds_;  // one eventfd per worker: cache fills wake other reactors' waiters
  std::vector<std::thread> threads_;
};

}  // namespace ringmaster::proxy
