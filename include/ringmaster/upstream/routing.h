// upstream routing: which service a request belongs to (README "Services").
//
// A RoutingTable is an immutable snapshot — the services, each with its current
// TargetSnapshot, and a Matcher built once per configuration — published to the reactors
// through an RcuCell exactly as target snapshots are (ARCHITECTURE.md §2). A reactor reads
// the cell once per loop turn; matching a request (Host, then the longest path prefix) is a
// few hash lookups and compares, with no allocation and no lock.
//
// Two threads change what the table holds: main (the configuration: at start and on each
// reload) and the discovery coordinator (each service source's targets). A RouteBoard joins
// the two under one mutex and publishes a new table whenever either part changes, so the
// cell still has one publisher at a time. Unchanged parts are shared between tables (the
// Matcher, every untouched service's TargetSnapshot), so a reactor's balancer for such a
// service sees the same pointer and keeps its state.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ringmaster/metrics/metrics.h"
#include "ringmaster/upstream/targets.h"

namespace ringmaster::cache {
class Cache;
}

namespace ringmaster::upstream {

// One reactor's counters for one service (single writer: that reactor).
struct alignas(64) ServiceSlot {
  metrics::Counter requests;          // requests routed to the service
  metrics::Counter cache_hits;        // answered from its cache
  metrics::Counter cache_misses;      // looked up (or storable) and sent upstream
  metrics::Histogram request_time;    // first byte to answer complete
  metrics::Histogram upstream_time;   // time upstream, for requests that went there
};

// A service's timeouts and upstream limits (README "Services": the per-service keys, which
// default to the flags of the same name). Whole-proxy values; each reactor takes its share of
// the counts as for the flags. Part of the routing table, not of the ServiceRuntime, so that a
// reload changing them applies to the requests routed after it while the service keeps its
// counters, cache and pools.
struct ServiceLimits {
  uint32_t connect_timeout_ms = 3000;         // connect-timeout-ms
  uint32_t upstream_timeout_ms = 60000;       // upstream-timeout-ms: backend silent -> 504
  uint32_t upstream_max_conns = 1024;         // upstream-max-conns: per target (0: unlimited)
  uint32_t upstream_queue_max = 10000;        // upstream-queue-max: requests waiting per target
  uint32_t upstream_queue_timeout_ms = 3000;  // upstream-queue-timeout-ms: then 503
  uint32_t upstream_idle_timeout_ms = 10000;  // upstream-idle-timeout-ms: a pooled connection idle this long closes
  uint64_t body_bytes_max = 1ull << 30;       // body-bytes-max: larger request body -> 413
  bool operator==(const ServiceLimits&) const = default;
};

// A service as long as it exists: a reload that keeps the name keeps this object (its
// counters, its cache, its reactors' connection pools).
struct ServiceRuntime {
  ServiceRuntime(std::string name_in, std::string source_in, unsigned reactors_in)
      : name(std::move(name_in)), source(std::move(source_in)), slots(new ServiceSlot[reactors_in]),
        reactors(reactors_in) {}
  std::string name;
  std::string source;                   // the RouteBoard key of its targets ("zk:/path", "static:name")
  std::shared_ptr<cache::Cache> cache;  // null: its answers are never stored
  int64_t cache_ttl_ms = 0;             // as --cache-ttl, for this service
  std::unique_ptr<ServiceSlot[]> slots;
  unsigned reactors;
};

// Host + path prefix -> service index. Built off the reactors; match() never allocates.
class Matcher {
 public:
  struct Rule {
    std::vector<std::string> hosts;  // lower case; "*.example.com" = any subdomain; empty: any host
    std::string path_prefix = "/";
    int service = 0;
  };
  // `default_service`: the index unmatched requests go to; -1: none (404).
  Matcher(const std::vector<Rule>& rules, int default_service);

  // `host` as the client sent it (any case, maybe with ":port" or a trailing dot); `target`
  // the request target. The service index, or -1 when nothing matches and there is no default.
  // Order: the exact host's prefixes, then the most specific wildcard's, then the rules
  // without hosts; within one, the longest prefix; then the default.
  int match(std::string_view host, std::string_view target) const;

  // The host as compared: port and one trailing dot removed, lower-cased into `buffer`
  // (hosts longer than kHostBytesMax match no host rule). Exposed for tests.
  static constexpr size_t kHostBytesMax = 253;
  static std::string_view normalise_host(std::string_view host, char (&buffer)[kHostBytesMax + 1]);

 private:
  struct Prefixes {
    std::vector<std::pair<std::string, int>> longest_first;
    int find(std::string_view target) const;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using HostMap = std::unordered_map<std::string, Prefixes, Hash, std::equal_to<>>;
  HostMap exact_;
  HostMap wildcards_;  // keyed by the suffix with its dot: ".example.com"
  Prefixes any_host_;
  int default_;
};

struct RoutedService {
  std::shared_ptr<ServiceRuntime> runtime;
  std::shared_ptr<const TargetSnapshot> targets;  // never null (empty: no targets yet)
  ServiceLimits limits{};  // the service's timeouts and limits as this table's configuration set them
};

struct RoutingTable {
  uint64_t version = 0;
  std::vector<RoutedService> services;
  std::shared_ptr<const Matcher> matcher;
  // The service of a request, or null (404: no service matched).
  const RoutedService* route(std::string_view host, std::string_view target) const {
    int i = matcher->match(host, target);
    return i < 0 ? nullptr : &services[static_cast<size_t>(i)];
  }
};

using RoutingCell = RcuCell<RoutingTable>;

// The publisher side of the RoutingCell (any thread; one mutex).
class RouteBoard {
 public:
  explicit RouteBoard(unsigned reactors) : cell_(reactors) {}

  RoutingCell* cell() { return &cell_; }

  struct ServiceSpec {
    std::shared_ptr<ServiceRuntime> runtime;
    std::vector<std::string> hosts;
    std::string path_prefix = "/";
    bool matchable = true;  // false: reached only as the default (the flags' service)
    ServiceLimits limits{};
  };
  // A new configuration: the services in order, and the index of the default (-1: none).
  void set_services(std::vector<ServiceSpec> services, int default_service);
  // A source's targets changed. Services using it see them in the table published now.
  // Null: the source is gone; its targets are kept while a service of the configuration in
  // use still reads it (a reload removes the source before it publishes the configuration
  // without it), and dropped with the first configuration that no longer does.
  // A service whose source has no targets yet (added or replaced by a reload, not read yet)
  // keeps routing with the targets the previous table gave the service of that name.
  void set_targets(const std::string& source, std::shared_ptr<const TargetSnapshot> targets);
  // Whether the table in use routes to `source`'s targets (read by a service, or kept for
  // one whose new source was not read yet): the coordinator keeps writing their counts.
  bool routes_to(const std::string& source) const;
  // The targets last set for `source` (null when none).
  std::shared_ptr<const TargetSnapshot> targets(const std::string& source) const;
  // The current services (admin thread: metrics, /targets).
  std::vector<std::shared_ptr<ServiceRuntime>> services() const;
  // Frees tables no reactor can still see (periodically; publishing does it too).
  void reclaim();

 private:
  void publish_locked();
  bool reads_locked(const std::string& source) const;  // a service of the configuration reads it

  mutable std::mutex mutex_;
  RoutingCell cell_;
  std::vector<ServiceSpec> services_;
  std::shared_ptr<const Matcher> matcher_;
  std::map<std::string, std::shared_ptr<const TargetSnapshot>> targets_;
  std::set<std::string> gone_;  // sources set null while a service still read them
  // What the last table routed each service (by name) to, and whose targets they are.
  struct Routed {
    std::string source;
    std::shared_ptr<const TargetSnapshot> targets;
  };
  std::map<std::string, Routed> routed_;
  std::shared_ptr<const TargetSnapshot> empty_ = std::make_shared<TargetSnapshot>();
  uint64_t version_ = 0;
};

// Registers the ringmaster_service_* families (requests, cache hits and misses, request and
// upstream time, by service) over the services `board` routes to at render time.
void register_service_metrics(metrics::Registry& registry, const RouteBoard& board);

}  // namespace ringmaster::upstream
