// config: the command line of `ringmaster proxy` and `ringmaster agent`, parsed into plain
// structs at startup on the main thread. The only module allowed to throw: a bad flag is a
// ConfigError whose message is one line; main prints it and exits 2.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ringmaster/base/host_port.h"

namespace ringmaster::config {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where a service's targets come from: a ZooKeeper directory (children are the targets, as
// for --targets-path) with its own content-version node, or a fixed list. A struct of its
// own so that later source kinds (a registry format) are one more field here.
struct TargetSource {
  std::string targets_path;                   // ZooKeeper mode; empty: static
  std::string cache_version_path;             // empty: no content version (caches kept)
  std::vector<base::HostPort> static_targets;  // static mode
  // Who writes the targets path's children, as --targets-format / --serverset-endpoint /
  // --counts-path for the flags' source (README "Other registries"). counts_path: after
  // parsing, set for every foreign format (default <fleet-path>/counts/<service name>).
  std::string format = "ringmaster";
  std::string serverset_endpoint;
  std::string counts_path;
};

// One `[[service]]` table of the config file (README "Services"). Requests are matched by
// Host (exact, or "*.example.com" for any subdomain), then by the longest path prefix.
struct ServiceConfig {
  std::string name;                // [A-Za-z0-9_.-], 1..64 bytes, unique; "default" is the flags'
  std::vector<std::string> hosts;  // lower case, no port; empty: any host
  std::string path_prefix = "/";   // plain byte prefix of the request target
  TargetSource source;
  bool cache = true;               // off: this service's answers are never stored
  uint64_t cache_bytes = 0;        // its own cache's size; 0: --cache-bytes / 8 (at least 1M)
  uint32_t cache_ttl_s = 0;        // as --cache-ttl, for this service
  // Timeouts and upstream limits, keys named and checked as the flags of the same name
  // (connect-timeout-ms, ...). Unset in the file: the flag's value, filled in by
  // parse_proxy_args, so every one is set once parsing returns.
  std::optional<uint32_t> connect_timeout_ms;
  std::optional<uint32_t> upstream_timeout_ms;
  std::optional<uint32_t> upstream_max_conns;
  std::optional<uint32_t> upstream_queue_max;
  std::optional<uint32_t> upstream_queue_timeout_ms;
  std::optional<uint32_t> upstream_idle_timeout_ms;
  std::optional<uint64_t> body_bytes_max;
  uint32_t line = 0;               // where it is declared (messages)
  uint32_t upstream_max_conns_line = 0;  // where upstream-max-conns is set (0: not in the file)
};

struct ProxyConfig {
  base::HostPort listen;                 // --listen HOST:PORT (required)
  unsigned threads = 0;                  // --threads N (1..1024); 0 after parsing never happens:
                                         // the default is the number of online CPUs
  std::optional<base::HostPort> admin;   // --admin HOST:PORT
  std::string zk;                        // --zk HOSTS[/chroot]; empty in static mode
  std::vector<base::HostPort> targets;   // --target HOST:PORT, repeatable (static mode)
  std::string targets_path = "/targets";         // --targets-path
  std::string targets_format = "ringmaster";     // --targets-format: ringmaster|nerve|serverset|curator
  std::string serverset_endpoint;                // --serverset-endpoint NAME; empty: serviceEndpoint
  std::string counts_path;                       // --counts-path; after parsing never empty
                                                 //   (default <fleet-path>/counts/default)
  std::string cache_version_path = "/cacheAge";  // --cache-version-path
  uint32_t flush_interval_ms = 100;      // --flush-interval-ms (1..60000)
  uint64_t cache_bytes = 256ull << 20;   // --cache-bytes SIZE (0 disables)
  uint32_t cache_ttl_s = 0;              // --cache-ttl SECONDS: fixed lifetime of responses that state none (0: off)
  uint64_t cache_object_max = 8ull << 20;  // --cache-object-max SIZE: larger responses are not stored
  uint32_t cache_lock_timeout_ms = 5000;   // --cache-lock-timeout-ms: collapsed misses wait this long
  uint32_t cache_serve_stale_s = 3600;     // --cache-serve-stale: how stale an entry may answer when no target answers
  bool cache_stale_on_5xx = false;         // --cache-stale-on-5xx: ... and when a target answers 500-504
  uint32_t session_timeout_ms = 10000;   // --session-timeout-ms: ZooKeeper session (1000..120000)
  bool fleet = true;                     // --fleet on|off: one leader writes the fleet's counts
  std::string fleet_path = "/ringmaster";  // --fleet-path: proxies' announcements and the ledger
  std::optional<base::HostPort> fleet_listen;  // --fleet-listen HOST:PORT (default: --listen's
                                               //   host, any port)
  bool fleet_listen_off = false;         // --fleet-listen off: never lead

  // Request limits (see http::Limits).
  uint32_t request_line_bytes_max = 8192;  // --request-line-bytes-max SIZE
  uint32_t header_bytes_max = 16384;       // --header-bytes-max SIZE
  uint32_t header_count_max = 100;         // --header-count-max N
  uint64_t body_bytes_max = 1ull << 30;    // --body-bytes-max SIZE

  // Timeouts, all milliseconds.
  uint32_t header_timeout_ms = 10000;    // --header-timeout-ms: whole request head deadline
  uint32_t idle_timeout_ms = 60000;      // --idle-timeout-ms: keep-alive wait between requests
  uint32_t client_timeout_ms = 60000;    // --client-timeout-ms: client inactivity mid-request
                                         //   (body upload stalled, response not being read)
  uint32_t connect_timeout_ms = 3000;    // --connect-timeout-ms: upstream connect
  uint32_t upstream_timeout_ms = 60000;  // --upstream-timeout-ms: backend silent mid-response
  uint32_t shutdown_timeout_ms = 10000;  // --shutdown-timeout-ms: SIGTERM drain deadline

  uint32_t max_connections = 10000;      // --max-connections N: client connections, whole proxy
  uint32_t upstream_idle_max = 64;       // --upstream-idle-max N: idle pooled connections per
                                         //   target per reactor
  // Upstream protection (HAProxy's per-server maxconn + queue): per target, whole proxy,
  // split evenly among the reactors.
  uint32_t upstream_max_conns = 1024;    // --upstream-max-conns N: connections (0: unlimited)
  uint32_t upstream_queue_max = 10000;   // --upstream-queue-max N: requests waiting for one
  uint32_t upstream_queue_timeout_ms = 3000;  // --upstream-queue-timeout-ms: then 503
  uint32_t upstream_idle_timeout_ms = 10000;  // --upstream-idle-timeout-ms: a pooled idle
                                              //   connection closes after this
  std::string access_log;                // --access-log PATH: JSON lines, one per request; empty: off
  uint64_t access_log_buffer = 1ull << 20;  // --access-log-buffer SIZE: queue per reactor (4K..1G)
  std::string upgrade_socket;            // --upgrade-socket PATH: hand listeners to / take them from
                                         //   another process (zero-downtime upgrade); empty: off
  bool verbose = false;                  // --verbose: debug logging
  std::string config_file;               // --config FILE: settings read before the flags

  // From the config file only: the services, and which one answers requests that match none.
  std::vector<ServiceConfig> services;
  // "default": the service the flags describe (--targets-path or --target); "none": no
  // service, unmatched requests get 404; or a [[service]]'s name. Unset, it is "default"
  // when the flags give that service targets (--zk or --target), "none" otherwise.
  std::string default_service;
};

// The name of the service the flags describe.
inline constexpr const char* kFlagsServiceName = "default";

// --cache-ttl in milliseconds, computed in 64 bits: its maximum, 365 days, is 3.15e10 ms,
// past what 32 bits hold.
inline int64_t cache_ttl_ms(const ProxyConfig& config) { return int64_t{config.cache_ttl_s} * 1000; }

// Parses the arguments after "proxy". Throws ConfigError (one line) on unknown flags, missing
// values, bad values, missing --listen, or neither/both of --zk and --target.
// With --config FILE the file's settings are applied first and the command line's flags
// override them (a --target on the command line replaces the file's targets). The file is
// TOML with one top-level key per flag, named without the dashes and checked by the same
// code: `listen = "127.0.0.1:8080"`, `target = ["127.0.0.1:9001"]`, `cache-ttl = 300`,
// `cache-bytes = "64M"`, `verbose = true`. Its errors read "FILE:LINE: KEY: reason".
// Flags take "--flag value" or "--flag=value". SIZE accepts a plain byte count or a K/M/G
// suffix (binary: 1K = 1024). Durations are plain integers in the flag's unit.
ProxyConfig parse_proxy_args(const std::vector<std::string_view>& args);

struct AgentConfig {
  std::string zk;                     // --zk HOSTS[/chroot] (required)
  base::HostPort target;              // --target HOST:PORT (required)
  std::string targets_path = "/targets";
  std::string cache_version_path = "/cacheAge";
  std::optional<std::string> health_path;       // --health-path /healthz
  uint32_t health_interval_ms = 1000;           // --health-interval-ms
  uint32_t health_timeout_ms = 1000;            // --health-timeout-ms
  uint32_t health_rise = 2;                     // --health-rise N
  uint32_t health_fall = 3;                     // --health-fall N
  std::optional<std::string> content_version;   // --content-version STRING
  uint32_t session_timeout_ms = 10000;          // --session-timeout-ms
  std::string format = "ringmaster";            // --format: ringmaster|nerve|serverset|curator
  std::string name;                             // --name: nerve instance / curator service name
  std::optional<uint32_t> weight;               // --weight N (nerve)
  bool verbose = false;
};

AgentConfig parse_agent_args(const std::vector<std::string_view>& args);

// --help: every flag the parser accepts, one line each with its value, meaning and default,
// generated from the parser's own flag tables.
std::string proxy_flags_help();
std::string agent_flags_help();

// "16K" -> 16384 etc.; nullopt when malformed or overflowing.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace ringmaster::config
