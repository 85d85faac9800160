// FleetWriter: fleet mode's count writes over a ZkClient (ARCHITECTURE.md §3, "The
// coordinator's seam"; the protocol is in fleet.h). A writer — the leader, or a follower
// writing directly — sends one multi: the ledger (every instance's last applied batch) and
// every count it has to add, all version-checked. A multi cut off by CONNECTIONLOSS is sent
// again, identical, until it lands or fails; the ledger then says whether the first copy
// landed, so no request is lost or counted twice. A conflict re-reads the ledger or the one
// target that moved, and plans again (at most kFleetAttemptsMax times per flush).
// Coordinator thread only; FleetState::shared under its mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "count_writer.h"
#include "fleet_state.h"
#include "target_book.h"
#include "zk_client.h"

namespace ringmaster::discovery {

class FleetWriter {
 public:
  // Ledger entries of instances gone this long are dropped.
  static constexpr int64_t kLedgerKeepMs = 3600 * 1000;
  // Attempts per flush when versions moved under us.
  static constexpr int kFleetAttemptsMax = 5;

  // Wall-clock ms: the ledger's entries are stamped with it and pruned by it, and the ledger
  // is shared by every proxy of the fleet, so a monotonic clock (per host) would not do.
  using WallClock = std::function<int64_t()>;
  static int64_t system_wall_ms();

  // `counts` reads single targets after a BADVERSION (its uncertain writes are not used here).
  // `wall_ms`: system_wall_ms, or a test's clock.
  FleetWriter(ZkClient& zk, TargetBook& book, FleetState& fleet, CountWriter& counts, CountWriter::PathOf path_of,
              ZkOpCounters counters, WallClock wall_ms);

  // One flush by a writer: the leader (as_leader: its cached view, plus the followers'
  // batches held in fleet.shared.inbox) or a follower writing its own requests directly
  // (ledger and pending targets read first). False when it stopped on an error (a
  // connection problem, an unreadable ledger, attempts used up): the next flush goes on.
  bool write(bool as_leader);
  // Reads the ledger into fleet.ledger (creating the node when missing). False when it
  // cannot be read or does not parse (then nothing is written until it is fixed).
  bool load_ledger();

 private:
  bool retry_uncertain();
  void apply_plan(const std::vector<ZkStat>& stats);

  ZkClient& zk_;
  TargetBook& book_;
  FleetState& fleet_;
  CountWriter& counts_;
  CountWriter::PathOf path_of_;
  ZkOpCounters counters_;
  WallClock wall_ms_;
};

}  // namespace ringmaster::discovery
