// AgentLoop: the agent's decisions (ringmaster/discovery/agent.h) over a ZkClient and a given
// clock, so unit tests turn its loop against the scripted FakeZk (tests/unit/discovery/fake_zk.h)
// as they turn the coordinator's (ARCHITECTURE.md §3, "The agent's seam"): register the
// node, re-register it after a session expiry from the last count it saw, remove a crashed
// run's leftover and carry its count over, wait for another live agent's node to go, and
// register or deregister as the health checks say. run_agent() runs it over a ZkSession, the
// real clock and an HTTP health probe; the I/O beside ZooKeeper (the probe, the chroot's
// helper session) comes in as functions. One thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "ringmaster/discovery/agent.h"
#include "zk_client.h"

namespace ringmaster::discovery {

// What a foreign-format registration looks like: where it is created, how, with what data.
struct AgentRegistration {
  std::string path;  // the full path, or the prefix ZooKeeper appends a sequence number to
  CreateMode mode = CreateMode::ephemeral;
  std::string data;
};

class AgentLoop {
 public:
  using Clock = std::function<int64_t()>;  // monotonic ms
  // One health check of the backend: "" when healthy (a 2xx), else why not.
  using Probe = std::function<std::string()>;
  // Creates the connect string's missing chroot (with a helper session of its own).
  using CreateChroot = std::function<ZkCode()>;

  // `session` closed: the first turn opens it. `stop` is looked at after each wait, so a stop
  // request is not followed by more ZooKeeper steps.
  AgentLoop(const AgentOptions& options, ZkClient& session, Clock clock_ms, Probe probe, CreateChroot create_chroot,
            const std::atomic<bool>& stop);

  // Logs what the agent announces, and how.
  void begin();
  // One turn: take the session's events (waiting until the next health check, reopen or
  // stop poll is due), keep the session, check health when due, then bring the node in line.
  void run_once();
  // Stop: delete our node when connected, close the session.
  void run_final();

  bool healthy() const { return healthy_; }

 private:
  enum class NodeState { unknown, absent, ours, foreign };

  int64_t next_wakeup_ms(int64_t now) const;
  void handle_event(const ZkEvent& event);
  void handle_session_event(SessionState state);
  void on_session_established();
  void maintain_session(int64_t now);
  void check_health(int64_t now);
  void reconcile(int64_t now);

  ZkCode setup();
  ZkCode ensure_targets_path();
  ZkCode write_content_version(const std::string& version);

  ZkCode sync_node();
  ZkCode refresh_node();
  ZkCode create_node();
  ZkCode remove_stale_node();
  ZkCode find_own_sequential_node();
  ZkCode delete_own_node(bool* removed = nullptr);

  const AgentOptions& options_;
  ZkClient& session_;
  const Clock clock_ms_;
  const Probe probe_;
  const CreateChroot create_chroot_;
  const std::atomic<bool>& stop_;
  const std::string node_name_;
  // A foreign format's registration (none: ringmaster's own node). A sequential node's path
  // is only known once created; empty until then, and again once it is gone.
  const std::optional<AgentRegistration> registration_;
  const bool sequential_;
  std::string node_path_;

  // Session bookkeeping.
  const int64_t connect_window_ms_;     // a new handle's time to connect before "unreachable"
  int64_t handle_opened_ms_ = 0;
  bool handle_connected_once_ = false;  // has the current handle ever connected?
  int64_t reopen_at_ms_ = 0;            // when closed: when to open again
  int64_t backoff_ms_;
  int64_t established_session_ = 0;     // session id setup was done for
  bool connection_lost_logged_ = false;
  bool setup_pending_ = false;
  int64_t retry_at_ms_ = 0;

  // Node bookkeeping (per session unless said otherwise).
  NodeState node_state_ = NodeState::unknown;
  ZkStat node_stat_;                    // of the node as last read (ours or foreign)
  uint64_t foreign_count_ = 0;
  bool foreign_count_valid_ = false;
  bool owned_in_session_ = false;
  bool stale_removed_in_session_ = false;
  bool waiting_logged_ = false;
  // The last count proxies wrote to our node, kept across sessions and health flaps (process
  // lifetime), and taken over from a crashed run's leftover node. A node re-created after a
  // session expiry or a health flap starts from it, not from 0, so the count stays what
  // operators read it as: the requests this backend has served, cumulative. Balancing does
  // not depend on where a count starts (issue 3: a target joining at any count gets an even
  // share), so carrying it over costs the proxies nothing.
  uint64_t last_count_ = 0;
  bool created_once_ = false;
  int64_t count_read_at_ms_ = 0;  // a deferred re-read of our node after a count write

  // Health.
  bool healthy_;
  uint32_t ok_streak_ = 0;
  uint32_t fail_streak_ = 0;
  int64_t next_check_ms_ = 0;
};

}  // namespace ringmaster::discovery
