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

struct ProxyConfig {
  base::HostPort listen;                 // --listen HOST:PORT (required)
  unsigned threads = 0;                  // --threads N (1..1024); 0 after parsing never happens:
                                         // the default is the number of online CPUs
  std::optional<base::HostPort> admin;   // --admin HOST:PORT
  std::string zk;                        // --zk HOSTS[/chroot]; empty in static mode
  std::vector<base::HostPort> targets;   // --target HOST:PORT, repeatable (static mode)
  std::string targets_path = "/targets";         // --targets-path
  std::string cache_version_path = "/cacheAge";  // --cache-version-path
  uint32_t flush_interval_ms = 100;      // --flush-interval-ms (1..60000)
  uint64_t cache_bytes = 256ull << 20;   // --cache-bytes SIZE (0 disables)
  uint32_t cache_ttl_s = 0;              // --cache-ttl SECONDS: fixed lifetime of responses that state none (0: off)
  uint64_t cache_object_max = 8ull << 20;  // --cache-object-max SIZE: larger responses are not stored
  uint32_t cache_lock_timeout_ms = 5000;   // --cache-lock-timeout-ms: collapsed misses wait this long
  uint32_t cache_serve_stale_s = 3600;     // --cache-serve-stale: how stale an entry may answer when no target answers
  bool cache_stale_on_5xx = false;         // --cache-stale-on-5xx: ... and when a target answers 500-504
  uint32_t session_timeout_ms = 10000;   // --session-timeout-ms: ZooKeeper session (1000..120000)

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
  bool verbose = false;                  // --verbose: debug logging
};

// Parses the arguments after "proxy". Throws ConfigError (one line) on unknown flags, missing
// values, bad values, missing --listen, or neither/both of --zk and --target.
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
  bool verbose = false;
};

AgentConfig parse_agent_args(const std::vector<std::string_view>& args);

// "16K" -> 16384 etc.; nullopt when malformed or overflowing.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace ringmaster::config
