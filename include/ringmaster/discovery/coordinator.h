// discovery coordinator: the one thread of `ringmaster proxy --zk` that talks to ZooKeeper.
// It owns the session; watches each service source's targets path (children) and cache
// version node (data) — one session and one thread for every service; publishes immutable
// target snapshots, one per source, through the RouteBoard (upstream/routing.h); and every
// flush interval turns the reactors' per-target request counters into at most one
// version-checked setData per target. Reactors never call ZooKeeper and never wait for it:
// when ZooKeeper is down, slow or expired, they keep the last snapshot and keep counting, and
// the coordinator writes what accumulated once it is back.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ringmaster/base/host_port.h"
#include "ringmaster/metrics/metrics.h"
#include "ringmaster/metrics/registry.h"
#include "ringmaster/upstream/routing.h"
#include "ringmaster/upstream/targets.h"

namespace ringmaster::discovery {

// One service source in ZooKeeper (README "Services"): its targets directory and its
// content-version node ("" for none).
struct SourceOptions {
  std::string targets_path;
  std::string cache_version_path;
  // Who writes its children (README "Other registries"): as CoordinatorOptions'
  // targets_format / serverset_endpoint / counts_path, for this source. The flags' source
  // (targets path = CoordinatorOptions::targets_path) always takes the flags' values.
  std::string format = "ringmaster";
  std::string serverset_endpoint;
  std::string counts_path;
  bool operator==(const SourceOptions&) const = default;
};

// The RouteBoard key of a ZooKeeper source's targets.
inline std::string source_key(const std::string& targets_path) { return "zk:" + targets_path; }

struct CoordinatorOptions {
  std::string zk;  // "host:port,...[/chroot]"
  // The flags' source. Its targets keep bare names as keys in counts and fleet batches (what
  // every older proxy of a fleet uses); other sources' targets are keyed by full path.
  std::string targets_path = "/targets";
  // Who writes the children of targets_path (README "Other registries"): "ringmaster" (our own
  // layout: "<host>:<port>" nodes holding the count), or "nerve", "serverset", "curator":
  // another tool's nodes, only read; their counts live in persistent nodes
  // <counts_path>/<host>:<port>, created on demand and written like ours.
  std::string targets_format = "ringmaster";
  std::string serverset_endpoint;  // ServerSets: an additionalEndpoints name; empty: serviceEndpoint
  std::string counts_path = "/ringmaster/counts/default";
  std::string cache_version_path = "/cacheAge";
  // Every source watched; empty: just the flags' one.
  std::vector<SourceOptions> sources;
  uint32_t flush_interval_ms = 100;
  uint32_t session_timeout_ms = 10000;
  // Other proxies' increments are learned by re-reading counts this often.
  uint32_t refresh_interval_ms = 1000;
  unsigned reactors = 1;
  // Fleet coordination (see README "Fleets"): proxies announce themselves under
  // <fleet_path>/proxies, one leader writes every count; off = every proxy writes its own.
  bool fleet = true;
  std::string fleet_path = "/ringmaster";
  // The fleet listener (followers' reports); port 0 = any. Unset: this proxy never leads.
  std::optional<base::HostPort> fleet_listen;
  // Called on the coordinator thread when a cache version node changes value.
  std::function<void(const std::string& version_path)> on_content_version_change;
};

class ZkClient;
enum class ZkCode : int;
class TargetBook;
class CountWriter;
class FleetWriter;
struct ZkOpCounters;
class FleetServer;
class FleetClient;
struct FleetState;
struct RegistryState;

class Coordinator {
 public:
  Coordinator(const CoordinatorOptions& options, upstream::RouteBoard* board);
  // Over a session it does not own (a scripted fake, tests/unit/discovery/fake_zk.h) and a
  // clock it is given (ms; also the fleet ledger's wall clock), with no thread: the caller turns the event loop with
  // run_once() and ends it with run_final(); start() and stop() are not called. The fleet
  // listener, when options.fleet_listen is set, is bound on the first run_once(). `pause_ms`
  // is how the loop waits without an event to wait for (a fleet follower's last flush between
  // two reports); by default it returns at once (the test moves the clock).
  // ARCHITECTURE.md §3, "The coordinator's seam".
  Coordinator(const CoordinatorOptions& options, upstream::RouteBoard* board, ZkClient& session,
              std::function<int64_t()> clock_ms, std::function<void(int64_t)> pause_ms = {});
  ~Coordinator();

  // Starts the thread. Throws std::runtime_error (startup only) when the fleet listener
  // cannot be bound.
  void start();
  // Writes what is still unflushed (bounded by one session timeout), closes the session and
  // joins the thread. Call after the reactors stopped, so every request is counted.
  void stop();

  // Blocks until the proxy is ready or the timeout passed; true if ready. Ready: every
  // source was read once (its children list, and the count of each target in it), so that
  // no service answers 503 for want of a read not made yet; or, when a source could not be
  // read (ZooKeeper down, an ACL; an empty or missing targets path is an answer, not a
  // failure), one session timeout after the loop began, with a warning naming it.
  bool wait_ready(int64_t timeout_ms);

  // A reload (any thread): the sources to watch from now on. New ones are read at once and
  // publish nothing before that read; removed ones are no longer read (the RouteBoard keeps
  // their targets while the configuration in use routes there), and are forgotten once
  // nothing routes to them and the counts their targets took are written.
  void set_sources(std::vector<SourceOptions> sources);

  // For the admin listener (any thread): {"mode", "session", "snapshot_version", "fleet",
  // "targets": the flags' source's targets, "sources": {targets path: [targets]}}.
  std::string targets_json() const;
  // Registers the coordinator's families (ZooKeeper operations, flushes, registries, fleet,
  // per-target histograms), read from the admin thread at render time.
  void register_metrics(metrics::Registry& registry) const;

  // One turn of the event loop (the thread runs these until stop()): apply a reload, open
  // the session if it is not, take the session's events (waiting for them until the next
  // flush is due), read what they say changed, and when the flush is due write the counts
  // and publish the snapshots.
  void run_once();
  // The loop's end: writes what is still unflushed (the reactors have stopped), closes the
  // session.
  void run_final();

 private:
  Coordinator(const CoordinatorOptions& options, upstream::RouteBoard* board, std::unique_ptr<ZkClient> owned,
              ZkClient* session, std::function<int64_t()> clock_ms, std::function<int64_t()> wall_ms,
              std::function<void(int64_t)> pause_ms);
  void begin_loop();
  struct Source;
  void handle_session_change();
  void full_read();
  void apply_pending_sources();
  ZkCode read_members(Source& source);
  // Whether every watched source was read once (wait_ready); then, or once the session
  // timeout since the loop began passed (a warning naming the others), ready.
  bool source_read(const Source& source) const;
  void check_ready(int64_t now);
  void read_unread();
  // Foreign registry formats (registry_format.h): the endpoints the children list routes to.
  std::vector<std::string> read_registry(Source& source, const std::vector<std::string>& children);
  void read_registry_node(Source& source, const std::string& child);
  void on_registry_node_event(const std::string& path, bool deleted);
  bool foreign_key(const std::string& name) const;  // a count node of ours under a counts path
  void read_cache_version(const std::string& path);
  ZkOpCounters zk_counters();  // the metrics below, for the writers
  void publish();
  std::string target_path(const std::string& name) const;

  // Fleet mode (coordinator_fleet.cc).
  void fleet_start();
  void fleet_tick(int64_t now);
  void fleet_final();
  bool read_fleet();
  void fleet_register();
  void fleet_reset_session();
  void become_leader();
  void step_down();
  void follow(int64_t now);
  int64_t leader_interval_ms() const;
  bool report_to_leader(int64_t now, bool want_counts);
  int answer_report(std::string_view body, std::string* answer);
  void publish_fleet_view();
  void register_fleet_metrics(metrics::Registry& registry) const;

  // One watched source; the state that was one per proxy before services.
  struct Source {
    SourceOptions options;
    std::string group;  // its keys' prefix in the book (see TargetBook::set_members)
    // The last children list applied (sorted) and its parent's cversion (-1: none).
    std::vector<std::string> applied_names;
    int64_t applied_cversion = -1;
    int64_t empty_since_ms = 0;
    bool published_nonempty = false;
    bool read_once = false;
    bool removed = false;  // by a reload: not routed, not read; its counts still written
    // Its foreign registry's state (null for ringmaster's own layout). Shared, not unique:
    // RegistryState is complete in coordinator.cc only.
    std::shared_ptr<RegistryState> registry;
  };
  struct VersionNode {
    bool have = false;
    bool absent = false;
    std::string value;
  };
  Source* source_for(const std::string& targets_path);  // a watched (not removed) one
  void forget_drained_sources();

  CoordinatorOptions options_;
  upstream::RouteBoard* board_;
  std::function<int64_t()> clock_ms_;  // base::now_ms, or the test's
  std::function<int64_t()> wall_ms_;   // the fleet ledger's: the system's, or the test's
  std::function<void(int64_t)> pause_ms_;  // sleeps, or the test's
  std::vector<Source> sources_;                       // coordinator thread only
  std::map<std::string, VersionNode> versions_;       // by version path; coordinator thread only
  std::mutex pending_mutex_;
  std::optional<std::vector<SourceOptions>> pending_sources_;  // set_sources -> the thread
  std::unique_ptr<ZkClient> owned_session_;  // the real ZkSession; null over a test's
  ZkClient* session_;
  std::unique_ptr<TargetBook> book_;  // coordinator thread only
  // The count decisions over the session (flush, settle, re-read); coordinator thread only.
  std::unique_ptr<CountWriter> counts_;
  std::unique_ptr<FleetWriter> fleet_writer_;  // fleet mode's writes; null unless options_.fleet
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool need_full_read_ = true;
  // Members whose count read got no answer (CountWriter::read_target false), read again on
  // the next turn (read_unread). Coordinator thread only.
  std::set<std::string> unread_;
  // The loop's schedule (run_once).
  bool loop_started_ = false;
  int64_t loop_started_ms_ = 0;
  int64_t next_flush_ms_ = 0;
  int64_t next_refresh_ms_ = 0;
  int64_t next_open_ms_ = 0;
  uint64_t snapshot_version_ = 0;

  bool flags_foreign_ = false;  // the flags' source is another tool's (its counts: counts_path)
  std::atomic<bool> any_registry_{false};  // a foreign source was ever watched (metrics shown)
  std::unique_ptr<FleetState> fleet_;  // null unless options_.fleet
  std::unique_ptr<FleetServer> fleet_server_;
  std::unique_ptr<FleetClient> fleet_client_;

  mutable std::mutex view_mutex_;  // guards the admin view below
  std::string targets_json_;
  std::vector<std::shared_ptr<const upstream::TargetState>> view_targets_;  // for per-target metrics
  std::condition_variable ready_cv_;
  bool ready_ = false;

  // Metrics (single writer: the coordinator thread).
  metrics::Counter zk_reads_;
  metrics::Counter zk_writes_;
  metrics::Counter zk_multis_;
  metrics::Counter zk_children_reads_;
  metrics::Counter zk_other_ops_;
  metrics::Counter zk_bad_version_;
  metrics::Counter zk_errors_;
  metrics::Counter flush_intervals_;
  metrics::Counter flush_batches_;
  metrics::Counter flushed_requests_;
  metrics::Counter ambiguous_writes_;
  metrics::Counter hidden_churn_;
  metrics::Counter sessions_started_;
  metrics::Counter cache_invalidations_;
  metrics::Gauge session_connected_;
  metrics::Gauge snapshot_version_gauge_;
  metrics::Gauge targets_gauge_;
  metrics::Gauge unflushed_gauge_;
  metrics::Gauge skipped_gauge_;
  metrics::Gauge registry_routed_;
  metrics::Gauge registry_duplicates_;
  metrics::Gauge registry_not_routed_;
  metrics::Gauge registry_malformed_;
  metrics::Counter registry_malformed_reads_;  // every source's
};

}  // namespace ringmaster::discovery
