// services: the proxy's services (README "Services") turned from configuration into what
// the reactors route with — at start and on every reload. Owned by main; its methods run on
// main's threads (start, SIGHUP, the admin listener's POST /config/reload) under one mutex,
// and on the coordinator thread (a content version changed).
//
// A service that a reload keeps — same name, same source, same cache settings — keeps its
// ServiceRuntime: its counters, its cache and, in each reactor, its balancer and pooled
// connections. Anything else about it changed (hosts, prefix) is only the routing table's.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ringmaster/cache/cache.h"
#include "ringmaster/config/config.h"
#include "ringmaster/discovery/coordinator.h"
#include "ringmaster/upstream/routing.h"

namespace ringmaster {

class Services {
 public:
  // `flags_cache`: the cache of the service the flags describe (--cache-bytes; null: off).
  Services(unsigned reactors, upstream::RouteBoard* board, cache::Cache* flags_cache);

  struct Plan;
  // Everything `cfg` needs, built without changing anything: names resolved, runtimes made
  // or reused. Throws config::ConfigError (one line) when it cannot be.
  std::shared_ptr<Plan> prepare(const config::ProxyConfig& cfg);
  // The ZooKeeper sources the plan watches.
  static std::vector<discovery::SourceOptions> sources(const Plan& plan);
  // Publishes the plan's routing table (static targets first). Returns a one-line summary.
  std::string apply(const std::shared_ptr<Plan>& plan);

  // Coordinator thread: the node at `path` changed value; the caches of its services empty.
  void on_content_version_change(const std::string& path);
  // GET /targets's "services": each service with the targets it routes to now.
  nlohmann::ordered_json services_view() const;
  size_t size() const;
  // Registers ringmaster_service_cache_bytes{service} (what each service's cache holds) and
  // each service's own cache counters, read under the services' lock at render time.
  void register_metrics(metrics::Registry& registry) const;
  // A service's cache (null: no such service, or it does not cache).
  std::shared_ptr<cache::Cache> cache_of(const std::string& name) const;

 private:
  struct Entry {
    std::shared_ptr<upstream::ServiceRuntime> runtime;
    std::string signature;     // source and cache settings: equal -> the runtime is kept
    std::string version_path;  // "" when none
    std::shared_ptr<const upstream::TargetSnapshot> static_targets;  // static sources
    std::string static_spec;   // the static list as configured (kept when unchanged)
  };

  Entry make_entry(const config::ServiceConfig& service, const config::ProxyConfig& cfg, bool flags_service);

  unsigned reactors_;
  upstream::RouteBoard* board_;
  cache::Cache* flags_cache_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // the applied services, by name
  std::string default_name_;
};

}  // namespace ringmaster

namespace ringmaster {

// Live reload (SIGHUP, POST /config/reload): the command line is parsed again — so the
// config file is read again — on the calling thread, never a reactor; a good result is
// published as a new routing table and new coordinator sources, a bad one changes nothing.
class Reloader {
 public:
  Reloader(std::vector<std::string_view> args, config::ProxyConfig running, Services* services,
           discovery::Coordinator* coordinator, upstream::RouteBoard* board);
  struct Result {
    bool ok = false;
    std::string message;  // one line (several for settings that need a restart)
  };
  // Serialised: one reload at a time, from any thread.
  Result reload();
  // Registers ringmaster_config_reloads_total{result}.
  void register_metrics(metrics::Registry& registry) const;
  const std::string& config_file() const { return running_.config_file; }

 private:
  std::vector<std::string_view> args_;
  config::ProxyConfig running_;
  Services* services_;
  discovery::Coordinator* coordinator_;
  upstream::RouteBoard* board_;
  std::mutex mutex_;
  metrics::Counter ok_;
  metrics::Counter error_;
};

// The settings that differ between `a` and `b` and are only read at start (listeners,
// threads, ZooKeeper, limits, timeouts): a reload reports them instead of applying them.
std::vector<std::string> settings_needing_restart(const config::ProxyConfig& a, const config::ProxyConfig& b);

}  // namespace ringmaster
