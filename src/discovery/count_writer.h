// CountWriter: the coordinator's count decisions over a ZkClient (ARCHITECTURE.md §3, "The
// coordinator's seam"): what to write each flush (one multi, or one versioned set per target
// with BADVERSION retries), how to settle a write cut off by CONNECTIONLOSS, and when to
// re-read a count. The bookkeeping is the TargetBook's; this class is the part that talks to
// ZooKeeper, through the interface, so unit tests drive it with a scripted fake
// (tests/unit/discovery/fake_zk.h). Coordinator thread only (not fleet mode's writes: see
// fleet_writer.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ringmaster/metrics/metrics.h"
#include "target_book.h"
#include "zk_client.h"

namespace ringmaster::discovery {

// The coordinator's ZooKeeper counters (its /metrics), which the writers add to. Not owned.
struct ZkOpCounters {
  metrics::Counter* reads;
  metrics::Counter* writes;
  metrics::Counter* multis;
  metrics::Counter* other_ops;
  metrics::Counter* bad_version;
  metrics::Counter* errors;
  metrics::Counter* flush_batches;
  metrics::Counter* flushed_requests;
  metrics::Counter* ambiguous_writes;
};

// What reading a count node back says about a versioned write cut off by CONNECTIONLOSS.
// The decision alone, from the write and the read's result: a pure function (tested from a
// table).
enum class Settlement {
  unknown,      // the read failed too: settle again at the next flush, plan nothing meanwhile
  not_applied,  // same incarnation, version unchanged: the requests are still to be written
  applied,      // same incarnation, one version up, our exact value: it landed
  ambiguous,    // anything else (another writer, a re-created node): counted as applied,
                // so a retry can never count twice
  gone,         // NONODE: undecidable, counted as applied; the node is missing meanwhile
};
Settlement settle_uncertain_write(const CountWrite& w, ZkCode read_rc, std::string_view data, const ZkStat& stat);
const char* settlement_name(Settlement s);

class CountWriter {
 public:
  // Attempts per target per flush when other proxies keep winning the version race.
  static constexpr int kWriteAttemptsMax = 5;
  // A book key -> its count node's path (Coordinator::target_path).
  using PathOf = std::function<std::string(const std::string& key)>;
  // A book key whose count node is ours and persistent (a foreign registry's), created on
  // demand when missing.
  using IsForeign = std::function<bool(const std::string& key)>;

  CountWriter(ZkClient& zk, TargetBook& book, PathOf path_of, IsForeign foreign, ZkOpCounters counters);

  // One flush interval (non-fleet mode): settles the writes still uncertain, then writes
  // every target with requests not yet in ZooKeeper — one multi when there are several, one
  // versioned set per target when that fails on a conflict (BADVERSION: read, add ours on
  // top, again; NONODE: the requests wait for the node). A connection problem ends the flush;
  // the rest waits for the next one.
  void flush();
  // Reads one target's count node into the book (creating a foreign key's node when missing).
  // False when ZooKeeper gave no answer (neither the count nor NONODE: a timeout, a
  // connection problem): the count is still unknown.
  bool read_target(const std::string& key);
  // Reads every member's count (other proxies' increments reach us here).
  void refresh_counts();
  // Reports a write that landed on another incarnation than planned (TargetBook::on_written).
  void landed_on_new_node(const std::string& key);
  // Writes cut off by CONNECTIONLOSS and not settled yet.
  size_t uncertain_writes() const { return uncertain_.size(); }

 private:
  bool flush_as_one(const std::vector<CountWrite>& writes);
  void resolve_uncertain_write(const CountWrite& w);
  bool create_count_node(const std::string& key);

  ZkClient& zk_;
  TargetBook& book_;
  PathOf path_of_;
  IsForeign foreign_;
  ZkOpCounters counters_;
  std::vector<CountWrite> uncertain_;  // writes lost to CONNECTIONLOSS, settled next flush
};

}  // namespace ringmaster::discovery
