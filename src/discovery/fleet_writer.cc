#include "fleet_writer.h"

#include <chrono>
#include <utility>

#include "ringmaster/base/log.h"

namespace ringmaster::discovery {
int64_t FleetWriter::system_wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

FleetWriter::FleetWriter(ZkClient& zk, TargetBook& book, FleetState& fleet, CountWriter& counts,
                         CountWriter::PathOf path_of, ZkOpCounters counters, WallClock wall_ms)
    : zk_(zk),
      book_(book),
      fleet_(fleet),
      counts_(counts),
      path_of_(std::move(path_of)),
      counters_(counters),
      wall_ms_(std::move(wall_ms)) {}

bool FleetWriter::load_ledger() {
  FleetState& f = fleet_;
  std::string data;
  ZkStat stat;
  ZkCode rc = zk_.get(f.ledger_path, &data, &stat, false);
  counters_.reads->add();
  if (rc == ZkCode::no_node) {
    zk_.create_parents(f.ledger_path);
    rc = zk_.create(f.ledger_path, "", CreateMode::persistent);
    counters_.other_ops->add();
    if (rc != ZkCode::ok && rc != ZkCode::node_exists) {
      counters_.errors->add();
      return false;
    }
    rc = zk_.get(f.ledger_path, &data, &stat, false);
    counters_.reads->add();
  }
  if (rc != ZkCode::ok) {
    counters_.errors->add();
    return false;
  }
  std::optional<fleet::Ledger> ledger = fleet::Ledger::parse(data);
  if (!ledger) {
    // Never written over: what it says is the only proof of what is counted.
    f.ledger_unreadable.add();
    if (f.ledger_unreadable.get() % 100 == 1) {  // every flush tries again: say it now and then
      RM_LOG_ERROR("fleet: %s does not parse; counts are not written until it is fixed", f.ledger_path.c_str());
    }
    return false;
  }
  f.ledger = std::move(*ledger);
  f.ledger_version = stat.version;
  std::lock_guard lock(f.mutex);
  f.shared.committed = f.ledger;
  f.shared.inbox.drop_covered(f.ledger);
  return true;
}

// One flush by a writer: the leader (as_leader: its cached view, plus the followers'
// batches) or a follower writing its own requests directly (everything read first).
bool FleetWriter::write(bool as_leader) {
  FleetState& f = fleet_;
  for (int attempt = 0; attempt < kFleetAttemptsMax; ++attempt) {
    if (f.uncertain) {
      if (!retry_uncertain()) return false;
      continue;
    }
    if (!as_leader || f.ledger_version < 0) {
      if (!load_ledger()) return false;
      if (!as_leader) {
        for (const std::string& name : book_.pending_members()) counts_.read_target(name);
      }
    }
    // Whatever of ours the ledger covers (a leader applied it) is written.
    book_.on_acked(f.outbox.ack_through(f.ledger.seq(f.instance)));

    fleet::Inbox::Plan held;
    if (as_leader) {
      std::lock_guard lock(f.mutex);
      f.shared.inbox.drop_covered(f.ledger);
      held = f.shared.inbox.plan();
    }
    FleetState::Plan plan;
    plan.writes = book_.plan_fleet(held.deltas, &plan.unwritable);
    if (plan.writes.empty() && held.through.empty()) return true;  // nothing to write
    if (attempt == 0) counters_.flush_batches->add();
    int64_t now = wall_ms_();
    plan.seq = ++f.next_seq;
    plan.ledger = f.ledger;
    plan.ledger.set(f.instance, plan.seq, now);
    for (const auto& [instance, seq] : held.through) plan.ledger.set(instance, seq, now);
    if (as_leader) plan.ledger.prune(now, kLedgerKeepMs, f.live_instances);
    for (const auto& [name, n] : held.deltas) plan.relayed += n;
    plan.ops.push_back({f.ledger_path, plan.ledger.serialize(), f.ledger_version});
    for (const TargetBook::FleetWrite& w : plan.writes) {
      plan.ops.push_back({path_of_(w.name), std::to_string(w.count), w.expected_version});
    }

    std::vector<ZkStat> stats;
    size_t failed = 0;
    ZkCode rc = zk_.multi_set(plan.ops, &stats, &failed);
    counters_.multis->add();
    if (rc == ZkCode::ok) {
      f.uncertain = std::move(plan);
      apply_plan(stats);
      return true;
    }
    if (rc == ZkCode::connection_loss) {
      counters_.errors->add();
      f.uncertain = std::move(plan);  // landed or not, all together: the ledger will say
      return false;
    }
    if (rc == ZkCode::bad_version || rc == ZkCode::no_node) {
      if (failed == 0) {
        // Someone else moved the ledger (a follower writing directly, an old leader).
        counters_.bad_version->add();
        if (!load_ledger()) return false;
        continue;
      }
      if (failed <= plan.writes.size()) {
        const std::string& name = plan.writes[failed - 1].name;
        if (rc == ZkCode::bad_version) {
          counters_.bad_version->add();
          counts_.read_target(name);
        } else {
          book_.on_missing(name);
        }
        continue;
      }
    }
    counters_.errors->add();
    return false;
  }
  return false;
}

bool FleetWriter::retry_uncertain() {
  // The same operations with the same expected versions: at most one of the two copies can
  // ever land, so sending it again is safe, and the ledger tells which happened.
  FleetState& f = fleet_;
  std::vector<ZkStat> stats;
  size_t failed = 0;
  ZkCode rc = zk_.multi_set(f.uncertain->ops, &stats, &failed);
  counters_.multis->add();
  if (rc == ZkCode::ok) {
    apply_plan(stats);
    return true;
  }
  if (zk_connection_problem(rc)) {
    counters_.errors->add();
    return false;
  }
  if (failed == 0 && rc == ZkCode::bad_version) {
    if (!load_ledger()) return false;
    if (f.ledger.seq(f.instance) >= f.uncertain->seq) {
      // The first copy landed. Versions as it left them (if someone wrote since, the next
      // write meets BADVERSION and reads again).
      std::vector<ZkStat> assumed(f.uncertain->ops.size());
      for (size_t i = 0; i < assumed.size(); ++i) assumed[i].version = f.uncertain->ops[i].version + 1;
      assumed[0].version = f.ledger_version;
      fleet::Ledger read = f.ledger;
      apply_plan(assumed);
      f.ledger = read;
      return true;
    }
  } else if (failed >= 1 && failed <= f.uncertain->writes.size()) {
    // The ledger still had the version we expected, so the first copy did not land either,
    // and it never will (a target's version has moved on).
    const std::string& name = f.uncertain->writes[failed - 1].name;
    if (rc == ZkCode::bad_version) {
      counts_.read_target(name);
    } else if (rc == ZkCode::no_node) {
      book_.on_missing(name);
    }
  }
  f.uncertain.reset();  // did not land and cannot any more: plan afresh
  return true;
}

void FleetWriter::apply_plan(const std::vector<ZkStat>& stats) {
  FleetState& f = fleet_;
  FleetState::Plan plan = std::move(*f.uncertain);
  f.uncertain.reset();
  f.ledger = plan.ledger;
  f.ledger_version = stats[0].version;
  for (size_t i = 0; i < plan.writes.size(); ++i) {
    uint64_t own = 0;  // exact: the reactors keep counting while this runs
    if (!book_.on_fleet_written(plan.writes[i], stats[i + 1].version, stats[i + 1].czxid, &own)) {
      counts_.landed_on_new_node(plan.writes[i].name);
    }
    counters_.flushed_requests->add(own);
  }
  // Our sequence covers every batch made before it; what of them is still unwritten goes
  // into the next batch.
  f.outbox.ack_through(plan.seq);
  book_.rebatch_unwritten();
  for (const auto& [name, n] : plan.unwritable) {
    if (!book_.add_carried(name, n)) f.lost_requests.add(n);
  }
  f.relayed_requests.add(plan.relayed);
  std::lock_guard lock(f.mutex);
  f.shared.committed = f.ledger;
  f.shared.inbox.drop_covered(f.ledger);
}

}  // namespace ringmaster::discovery
