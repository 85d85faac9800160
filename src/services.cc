#include "services.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <tuple>

#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"

namespace ringmaster {
namespace {

// A service's own cache when it gives no cache-bytes: a share of --cache-bytes.
constexpr uint64_t kServiceCacheShareDivisor = 8;
constexpr uint64_t kServiceCacheBytesMin = 1ull << 20;

// The limits the reactors apply to a service; parsing set every one (the flags' values when
// the file gives none).
upstream::ServiceLimits limits_of(const config::ServiceConfig& s) {
  upstream::ServiceLimits l;
  l.connect_timeout_ms = s.connect_timeout_ms.value_or(l.connect_timeout_ms);
  l.upstream_timeout_ms = s.upstream_timeout_ms.value_or(l.upstream_timeout_ms);
  l.upstream_max_conns = s.upstream_max_conns.value_or(l.upstream_max_conns);
  l.upstream_queue_max = s.upstream_queue_max.value_or(l.upstream_queue_max);
  l.upstream_queue_timeout_ms = s.upstream_queue_timeout_ms.value_or(l.upstream_queue_timeout_ms);
  l.body_bytes_max = s.body_bytes_max.value_or(l.body_bytes_max);
  return l;
}

}  // namespace

struct Services::Plan {
  std::vector<std::pair<config::ServiceConfig, Entry>> services;  // in the file's order
  std::string default_name;
  std::vector<discovery::SourceOptions> sources;
};

Services::Services(unsigned reactors, upstream::RouteBoard* board, cache::Cache* flags_cache)
    : reactors_(reactors), board_(board), flags_cache_(flags_cache) {}

Services::Entry Services::make_entry(const config::ServiceConfig& service, const config::ProxyConfig& cfg,
                                     bool flags_service) {
  const config::TargetSource& source = service.source;
  std::string key = source.targets_path.empty() ? "static:" + service.name : discovery::source_key(source.targets_path);
  uint64_t cache_bytes = 0;
  if (service.cache) {
    cache_bytes = service.cache_bytes != 0 ? service.cache_bytes
                                           : std::max(cfg.cache_bytes / kServiceCacheShareDivisor, kServiceCacheBytesMin);
    if (service.cache_bytes == 0 && cfg.cache_bytes == 0) cache_bytes = 0;  // --cache-bytes 0: all off
  }
  std::string static_spec;
  for (const base::HostPort& hp : source.static_targets) static_spec += hp.to_string() + ",";
  Entry e;
  e.signature = key + "|" + std::to_string(cache_bytes) + "|" + std::to_string(service.cache_ttl_s) + "|" +
                std::to_string(cfg.cache_object_max) + (flags_service ? "|flags" : "");
  e.version_path = source.cache_version_path;
  e.static_spec = static_spec;
  {
    std::lock_guard lock(mutex_);
    auto old = entries_.find(service.name);
    if (old != entries_.end() && old->second.signature == e.signature) {
      e.runtime = old->second.runtime;
      if (old->second.static_spec == static_spec) e.static_targets = old->second.static_targets;
    }
  }
  if (!e.runtime) {
    e.runtime = std::make_shared<upstream::ServiceRuntime>(service.name, key, reactors_);
    e.runtime->cache_ttl_ms = int64_t{service.cache_ttl_s} * 1000;
    if (flags_service) {
      // The flags' cache is main's (the admin purge and the cache metrics know it).
      if (flags_cache_ != nullptr) e.runtime->cache = std::shared_ptr<cache::Cache>(flags_cache_, [](cache::Cache*) {});
    } else if (cache_bytes > 0) {
      unsigned shards = cache::Cache::shard_count(cache_bytes, reactors_, cfg.cache_object_max);
      e.runtime->cache = std::make_shared<cache::Cache>(cache_bytes, shards);
    }
  }
  if (!source.static_targets.empty() && !e.static_targets) {
    auto snapshot = std::make_shared<upstream::TargetSnapshot>();
    snapshot->version = 1;
    for (const base::HostPort& hp : source.static_targets) {
      auto address = base::resolve(hp);
      if (!address) {
        throw config::ConfigError(std::string(flags_service ? "--target" : "service \"" + service.name + "\": target") +
                                  ": cannot resolve \"" + hp.to_string() + "\"");
      }
      upstream::Target t;
      t.state = std::make_shared<upstream::TargetState>(hp.to_string(), *address, reactors_);
      snapshot->targets.push_back(std::move(t));
    }
    e.static_targets = std::move(snapshot);
  }
  return e;
}

std::shared_ptr<Services::Plan> Services::prepare(const config::ProxyConfig& cfg) {
  auto plan = std::make_shared<Plan>();
  plan->default_name = cfg.default_service;
  if (cfg.default_service == config::kFlagsServiceName) {
    config::ServiceConfig flags;
    flags.name = config::kFlagsServiceName;
    if (cfg.zk.empty()) {
      flags.source.static_targets = cfg.targets;
    } else {
      flags.source.targets_path = cfg.targets_path;
      flags.source.cache_version_path = cfg.cache_version_path;
      flags.source.format = cfg.targets_format;
      flags.source.serverset_endpoint = cfg.serverset_endpoint;
      if (cfg.targets_format != "ringmaster") flags.source.counts_path = cfg.counts_path;
    }
    flags.cache_ttl_s = cfg.cache_ttl_s;
    flags.cache = cfg.cache_bytes > 0;
    flags.connect_timeout_ms = cfg.connect_timeout_ms;
    flags.upstream_timeout_ms = cfg.upstream_timeout_ms;
    flags.upstream_max_conns = cfg.upstream_max_conns;
    flags.upstream_queue_max = cfg.upstream_queue_max;
    flags.upstream_queue_timeout_ms = cfg.upstream_queue_timeout_ms;
    flags.body_bytes_max = cfg.body_bytes_max;
    plan->services.emplace_back(flags, make_entry(flags, cfg, true));
  }
  for (const config::ServiceConfig& s : cfg.services) plan->services.emplace_back(s, make_entry(s, cfg, false));
  for (const auto& [service, entry] : plan->services) {
    const config::TargetSource& source = service.source;
    if (source.targets_path.empty()) continue;
    discovery::SourceOptions o{source.targets_path, source.cache_version_path, source.format,
                               source.serverset_endpoint, source.counts_path};
    bool known = std::any_of(plan->sources.begin(), plan->sources.end(),
                             [&o](const discovery::SourceOptions& x) { return x.targets_path == o.targets_path; });
    if (!known) plan->sources.push_back(o);
  }
  return plan;
}

std::vector<discovery::SourceOptions> Services::sources(const Plan& plan) { return plan.sources; }

std::string Services::apply(const std::shared_ptr<Plan>& plan) {
  std::vector<upstream::RouteBoard::ServiceSpec> specs;
  int default_index = -1;
  std::map<std::string, Entry> entries;
  for (const auto& [service, entry] : plan->services) {
    if (entry.static_targets) board_->set_targets(entry.runtime->source, entry.static_targets);
    upstream::RouteBoard::ServiceSpec spec{entry.runtime, service.hosts, service.path_prefix, true, limits_of(service)};
    if (service.name == plan->default_name) default_index = static_cast<int>(specs.size());
    // The flags' service only ever answers what nothing else matches.
    if (service.name == config::kFlagsServiceName) spec.matchable = false;
    specs.push_back(std::move(spec));
    entries[service.name] = entry;
  }
  board_->set_services(std::move(specs), default_index);
  std::lock_guard lock(mutex_);
  for (const auto& [name, old] : entries_) {
    // A static source no service uses any more: its snapshot goes with it.
    if (!entries.contains(name) && old.static_targets) board_->set_targets(old.runtime->source, nullptr);
  }
  entries_ = std::move(entries);
  default_name_ = plan->default_name;
  return std::to_string(entries_.size()) + " services, default \"" + default_name_ + "\"";
}

void Services::on_content_version_change(const std::string& path) {
  std::lock_guard lock(mutex_);
  for (const auto& [name, e] : entries_) {
    if (e.version_path == path && e.runtime->cache) e.runtime->cache->invalidate_all();
  }
}

nlohmann::ordered_json Services::services_view() const {
  using Json = nlohmann::ordered_json;
  std::lock_guard lock(mutex_);
  Json out = Json::array();
  for (const auto& [name, e] : entries_) {
    Json targets = Json::array();
    if (auto snapshot = board_->targets(e.runtime->source)) {
      for (const upstream::Target& t : snapshot->targets) {
        targets.push_back({{"name", t.state->name}, {"requests", t.state->requests_total()}});
      }
    }
    out.push_back({{"name", name},
                   {"source", e.runtime->source},
                   {"default", name == default_name_},
                   {"cache", e.runtime->cache != nullptr},
                   {"targets", std::move(targets)}});
  }
  return out;
}

void Services::register_metrics(metrics::Registry& registry) const {
  registry.family("ringmaster_service_cache_bytes", metrics::Type::gauge,
                  "Bytes held by each service's cache (0: it does not cache).", [this](metrics::Samples& out) {
                    std::lock_guard lock(mutex_);
                    for (const auto& [name, e] : entries_) {
                      int64_t bytes = e.runtime->cache ? e.runtime->cache->stats().bytes.load(std::memory_order_relaxed) : 0;
                      out.add("service=\"" + metrics::label_value(name) + "\"", bytes);
                    }
                  });
  // The ringmaster_cache_* counters of each service's own cache (those unlabelled families
  // stay the flags' service's, as before services).
  constexpr std::tuple<const char*, const char*, std::atomic<uint64_t> cache::CacheStats::*> kCounters[] = {
      {"ringmaster_service_cache_stores_total", "Responses stored, by service.", &cache::CacheStats::stores},
      {"ringmaster_service_cache_evictions_total", "Entries evicted to stay within each service's cache size.",
       &cache::CacheStats::evictions},
      {"ringmaster_service_cache_invalidations_total",
       "Whole-cache invalidations (its content version, a purge), by service.", &cache::CacheStats::invalidations},
  };
  for (auto [family, help, member] : kCounters) {
    registry.family(family, metrics::Type::counter, help, [this, member](metrics::Samples& out) {
      std::lock_guard lock(mutex_);
      for (const auto& [name, e] : entries_) {
        uint64_t value = e.runtime->cache ? (e.runtime->cache->stats().*member).load(std::memory_order_relaxed) : 0;
        out.add("service=\"" + metrics::label_value(name) + "\"", value);
      }
    });
  }
}

std::shared_ptr<cache::Cache> Services::cache_of(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.runtime->cache;
}

size_t Services::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace ringmaster

namespace ringmaster {

std::vector<std::string> settings_needing_restart(const config::ProxyConfig& a, const config::ProxyConfig& b) {
  std::vector<std::string> out;
  auto check = [&out](const char* name, bool differs) {
    if (differs) out.push_back(name);
  };
  check("listen", a.listen != b.listen);
  check("threads", a.threads != b.threads);
  check("admin", a.admin != b.admin);
  check("zk", a.zk != b.zk);
  check("fleet", a.fleet != b.fleet || a.fleet_path != b.fleet_path || a.fleet_listen != b.fleet_listen ||
                     a.fleet_listen_off != b.fleet_listen_off);
  check("flush-interval-ms", a.flush_interval_ms != b.flush_interval_ms);
  check("session-timeout-ms", a.session_timeout_ms != b.session_timeout_ms);
  check("cache-bytes", a.cache_bytes != b.cache_bytes);
  check("cache-object-max", a.cache_object_max != b.cache_object_max);
  check("cache-lock-timeout-ms", a.cache_lock_timeout_ms != b.cache_lock_timeout_ms);
  check("cache-serve-stale", a.cache_serve_stale_s != b.cache_serve_stale_s);
  check("cache-stale-on-5xx", a.cache_stale_on_5xx != b.cache_stale_on_5xx);
  // (body-bytes-max, connect-timeout-ms, upstream-timeout-ms and the upstream-max-conns and
  // queue settings are each service's, applied live through the routing table.)
  check("request limits", a.request_line_bytes_max != b.request_line_bytes_max ||
                              a.header_bytes_max != b.header_bytes_max || a.header_count_max != b.header_count_max);
  check("timeouts", a.header_timeout_ms != b.header_timeout_ms || a.idle_timeout_ms != b.idle_timeout_ms ||
                        a.client_timeout_ms != b.client_timeout_ms || a.shutdown_timeout_ms != b.shutdown_timeout_ms);
  check("max-connections", a.max_connections != b.max_connections);
  check("upstream-idle-max", a.upstream_idle_max != b.upstream_idle_max);
  check("access-log", a.access_log != b.access_log || a.access_log_buffer != b.access_log_buffer);
  check("upgrade-socket", a.upgrade_socket != b.upgrade_socket);
  return out;
}

Reloader::Reloader(std::vector<std::string_view> args, config::ProxyConfig running, Services* services,
                   discovery::Coordinator* coordinator, upstream::RouteBoard* board)
    : args_(std::move(args)),
      running_(std::move(running)),
      services_(services),
      coordinator_(coordinator),
      board_(board) {}

Reloader::Result Reloader::reload() {
  // How long a reload waits for a new ZooKeeper source's first read before it routes to it
  // anyway (its requests get 503 until targets arrive).
  constexpr int64_t kFirstReadWaitMs = 3000;
  constexpr int64_t kPollMs = 5;
  std::lock_guard lock(mutex_);
  Result result;
  try {
    config::ProxyConfig next = config::parse_proxy_args(args_);
    if (next.zk.empty() != running_.zk.empty()) {
      throw config::ConfigError("zk: switching between ZooKeeper and static mode needs a restart");
    }
    std::shared_ptr<Services::Plan> plan = services_->prepare(next);
    std::vector<discovery::SourceOptions> sources = Services::sources(*plan);
    if (coordinator_ != nullptr) {
      // Sources first, and the routing table once the new ones were read: a request for an
      // added service finds its targets, not an empty list.
      coordinator_->set_sources(sources);
      int64_t deadline = base::now_ms() + kFirstReadWaitMs;
      for (const discovery::SourceOptions& s : sources) {
        while (!board_->targets(discovery::source_key(s.targets_path)) && base::now_ms() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
        }
      }
    }
    result.message = "reloaded " + running_.config_file + ": " + services_->apply(plan);
    std::vector<std::string> restart = settings_needing_restart(running_, next);
    if (!restart.empty()) {
      result.message += "; not applied until a restart:";
      for (const std::string& name : restart) result.message += " " + name;
    }
    result.ok = true;
    ok_.add();
    RM_LOG_INFO("%s", result.message.c_str());
  } catch (const config::ConfigError& e) {
    result.message = std::string("reload failed, nothing changed: ") + e.what();
    error_.add();
    RM_LOG_ERROR("%s", result.message.c_str());
  }
  return result;
}

void Reloader::register_metrics(metrics::Registry& registry) const {
  registry.family("ringmaster_config_reloads_total", metrics::Type::counter,
                  "Configuration reloads (SIGHUP, POST /config/reload), by result.", [this](metrics::Samples& out) {
                    out.add("result=\"ok\"", ok_.get());
                    out.add("result=\"error\"", error_.get());
                  });
}

}  // namespace ringmaster
