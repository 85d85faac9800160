// discovery agent: `ringmaster agent`, the small process that runs beside each backend and
// announces it in ZooKeeper. It owns one ZooKeeper session and holds the ephemeral node
// `<targets_path>/<host>:<port>` in it for as long as the backend is healthy (always, without
// a health path), so proxies watching `<targets_path>` start and stop sending traffic with no
// configuration change. Proxies write the node's data (the cumulative request count); the
// agent only creates it, re-creates it after a session expiry starting from the last count it
// saw, removes a leftover of a crashed run, and deletes it on SIGTERM before exiting.
//
// One thread (the caller's) runs everything: session events, health checks, node upkeep. It
// never gives up on ZooKeeper: an unreachable ensemble is retried forever with backoff. The
// decisions are AgentLoop's, over the ZkClient interface (ARCHITECTURE.md §3, "The agent's
// seam").
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "ringmaster/base/host_port.h"

namespace ringmaster::discovery {

// Plain data mirroring config::AgentConfig (main maps one to the other).
struct AgentOptions {
  std::string zk;                               // "host:port,...[/chroot]"
  base::HostPort target;                        // the backend; also the node's name
  std::string targets_path = "/targets";
  std::string cache_version_path = "/cacheAge";
  std::optional<std::string> health_path;       // e.g. "/healthz"; none: always healthy
  uint32_t health_interval_ms = 1000;
  uint32_t health_timeout_ms = 1000;
  uint32_t health_rise = 2;                     // consecutive 2xx to become healthy
  uint32_t health_fall = 3;                     // consecutive failures to become unhealthy
  std::optional<std::string> content_version;   // written to cache_version_path if different
  uint32_t session_timeout_ms = 10000;
  // Register as another tool would (README "Other registries"), so a fleet read by nerve's
  // synapse, Finagle or Curator can move to ringmaster one backend at a time:
  //   "nerve":     ephemeral sequential <targets_path>/<name>_<seq>, {"host","port","name","weight"?}
  //   "serverset": ephemeral sequential <targets_path>/member_<seq>,
  //                {"serviceEndpoint":{"host","port"},"additionalEndpoints":{},"status":"ALIVE"}
  //   "curator":   ephemeral <targets_path>/<random id>, Curator's ServiceInstance JSON
  // Counts are then not kept in the node (proxies keep them under their counts path).
  std::string format = "ringmaster";
  std::string name;                // nerve: instance name (default: target host);
                                   // curator: service name (default: targets_path's last part)
  std::optional<uint32_t> weight;  // nerve "weight"
};

// Runs until `stop` becomes true (main sets it from SIGTERM/SIGINT), then deletes the node,
// closes the session and returns the exit code (0). Never throws; never returns because
// ZooKeeper is unreachable.
int run_agent(const AgentOptions& options, const std::atomic<bool>& stop);

}  // namespace ringmaster::discovery
