// The coordinator's fleet-mode state (see fleet.h for the protocol). Everything here belongs
// to the coordinator thread except `shared`, which the fleet listener's thread reads and
// writes under `mutex` when it answers a follower.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fleet.h"
#include "target_book.h"
#include "ringmaster/metrics/metrics.h"
#include "zk_session.h"

namespace ringmaster::discovery {

struct FleetState {
  std::string instance;  // this process, for its whole life
  std::string token;     // followers present it to this proxy while it leads
  std::string proxies_path;
  std::string ledger_path;
  std::string announce_address;  // "host:port" of our listener; empty: never leads

  // Membership (from the last children list of proxies_path).
  std::string self_node;                // our node in this session; empty: none yet
  bool create_uncertain = false;        // a create was cut off: look before creating again
  size_t members = 0;
  std::vector<std::string> live_instances;
  std::string leader_node;              // empty: no leader
  fleet::Announcement leader;           // the leader's data (address, token)
  bool is_leader = false;
  bool leader_ready = false;            // ledger and counts read since becoming leader
  double write_credit = 1.0;            // the leader's writes are paced (leader_interval_ms)

  // The ledger as last read or written, and its znode version (-1: unknown).
  fleet::Ledger ledger;
  int32_t ledger_version = -1;

  // Follower side.
  fleet::Outbox outbox;
  uint64_t next_seq = 0;
  uint64_t leader_received = 0;  // what the leader says it holds of ours
  int64_t last_report_ok_ms = 0;
  bool leader_unreachable = false;  // logged once per outage
  int64_t last_counts_ms = 0;
  int64_t next_direct_ms = 0;

  // A multi cut off by CONNECTIONLOSS: sent again, identical, until its fate is known.
  struct Plan {
    uint64_t seq = 0;
    fleet::Ledger ledger;
    std::vector<ZkSetOp> ops;  // [0] is the ledger
    std::vector<TargetBook::FleetWrite> writes;
    fleet::Deltas unwritable;  // inbox requests for targets that cannot be written now
    uint64_t relayed = 0;      // other proxies' requests in it
  };
  std::optional<Plan> uncertain;

  // Shared with the fleet listener thread.
  std::mutex mutex;
  struct Shared {
    bool serving = false;          // this proxy leads and has read the ledger
    fleet::Inbox inbox;
    fleet::Ledger committed;       // the ledger as last known to be in ZooKeeper
    std::map<std::string, uint64_t> counts;
  } shared;

  // Metrics.
  metrics::Gauge leader_gauge;
  metrics::Gauge members_gauge;
  metrics::Counter reports_ok;
  metrics::Counter reports_failed;
  metrics::Counter direct_flushes;
  metrics::Counter relayed_requests;
  metrics::Counter leader_changes;
  metrics::Counter lost_requests;
  metrics::Counter ledger_unreadable;
  metrics::Counter batches_received;  // listener thread only
  metrics::Counter reports_refused;   // listener thread only
};

}  // namespace ringmaster::discovery
