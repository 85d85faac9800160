#include "count_writer.h"

#include <utility>

#include "ringmaster/base/log.h"

namespace ringmaster::discovery {

Settlement settle_uncertain_write(const CountWrite& w, ZkCode read_rc, std::string_view data, const ZkStat& stat) {
  // CONNECTIONLOSS after a write says nothing about whether it landed. Read the node back:
  // our exact value one version up means it did; an unchanged version, or another writer's
  // value one version up, means it did not. Anything else is ambiguous and counted as written, so a retry can never count twice.
  if (read_rc == ZkCode::no_node) {
    // Gone (its agent left or its session expired) before we could look: whether the write
    // landed is undecidable, and the agent may carry the count into a new node. Counted as
    // applied (never twice), and the flushes of every other target go on.
    return Settlement::gone;
  }
  if (read_rc != ZkCode::ok) return Settlement::unknown;
  // A node deleted and re-created meanwhile (an agent's takeover, a session expiry) starts
  // again at version 0, so "unchanged version" proves nothing there: had the write landed on
  // the old node, the new one may carry its count already, and writing it again would count
  // it twice. Another incarnation than the one planned against is therefore ambiguous.
  bool same_node = w.czxid == 0 || stat.czxid == w.czxid;
  if (same_node && stat.version == w.expected_version) return Settlement::not_applied;
  if (same_node && stat.version == w.expected_version + 1) {
    // Exactly one versioned write since our plan. With our value it was ours; with another
    // value it was another writer's (another proxy with --fleet off), so ours cannot have
    // landed: it would have needed that same version step.
    return data == std::to_string(w.count) ? Settlement::applied : Settlement::not_applied;
  }
  return Settlement::ambiguous;
}

const char* settlement_name(Settlement s) {
  switch (s) {
    case Settlement::unknown: return "unknown";
    case Settlement::not_applied: return "not_applied";
    case Settlement::applied: return "applied";
    case Settlement::ambiguous: return "ambiguous";
    case Settlement::gone: return "gone";
  }
  return "?";
}

CountWriter::CountWriter(ZkClient& zk, TargetBook& book, PathOf path_of, IsForeign foreign, ZkOpCounters counters)
    : zk_(zk), book_(book), path_of_(std::move(path_of)), foreign_(std::move(foreign)), counters_(counters) {}

bool CountWriter::create_count_node(const std::string& key) {
  // Counts of a foreign registry's targets: persistent, so they outlive the registration (a
  // backend that leaves and comes back continues its total) and never depend on its owner.
  std::string path = path_of_(key);
  ZkCode rc = zk_.create(path, "0", CreateMode::persistent);
  counters_.other_ops->add();
  if (rc == ZkCode::no_node) {
    rc = zk_.create_parents(path);
    counters_.other_ops->add();
    if (rc == ZkCode::ok) rc = zk_.create(path, "0", CreateMode::persistent);
    counters_.other_ops->add();
  }
  if (rc == ZkCode::ok || rc == ZkCode::node_exists) return true;
  counters_.errors->add();
  return false;
}

bool CountWriter::read_target(const std::string& key) {
  std::string data;
  ZkStat stat;
  ZkCode rc = zk_.get(path_of_(key), &data, &stat, false);
  counters_.reads->add();
  if (rc == ZkCode::no_node && foreign_(key) && create_count_node(key)) {
    rc = zk_.get(path_of_(key), &data, &stat, false);
    counters_.reads->add();
  }
  if (rc == ZkCode::ok) {
    book_.on_read(key, data, stat.version, stat.czxid);
  } else if (rc == ZkCode::no_node) {
    book_.on_missing(key);
  } else {
    counters_.errors->add();
    return false;
  }
  return true;
}

void CountWriter::refresh_counts() {
  for (const TargetBook::Row& row : book_.rows()) {
    if (row.member) read_target(row.name);
  }
}

void CountWriter::flush() {
  // Writes whose outcome is still unknown are settled first, or their requests would be
  // planned (and written) a second time.
  std::vector<CountWrite> unsettled;
  unsettled.swap(uncertain_);
  for (const CountWrite& w : unsettled) resolve_uncertain_write(w);
  if (!uncertain_.empty()) return;
  std::vector<TargetBook::Write> writes = book_.plan_flush();
  if (writes.empty()) return;
  counters_.flush_batches->add();
  if (writes.size() > 1 && flush_as_one(writes)) return;
  for (TargetBook::Write w : writes) {
    for (int attempt = 0; attempt < kWriteAttemptsMax; ++attempt) {
      ZkStat stat;
      ZkCode rc = zk_.set(path_of_(w.name), std::to_string(w.count), w.expected_version, &stat);
      counters_.writes->add();
      if (rc == ZkCode::ok) {
        counters_.flushed_requests->add(w.requests_total - w.written_before);
        if (!book_.on_written(w, stat.version, stat.czxid)) landed_on_new_node(w.name);
        break;
      }
      if (rc == ZkCode::bad_version) {
        // Another proxy wrote first: read its count and add ours on top.
        counters_.bad_version->add();
        read_target(w.name);
        auto again = book_.plan_one(w.name);
        if (!again) break;
        w = *again;
        continue;
      }
      if (rc == ZkCode::no_node) {
        // The node is gone (agent stopped or its session expired): keep the requests and
        // write them when the node is back.
        book_.on_missing(w.name);
        break;
      }
      counters_.errors->add();
      if (rc == ZkCode::connection_loss) resolve_uncertain_write(w);
      return;  // the connection is in trouble: the rest waits for the next flush
    }
  }
}

bool CountWriter::flush_as_one(const std::vector<CountWrite>& writes) {
  // One transaction for the whole batch: ZooKeeper's load per flush stays one request
  // whatever the number of targets. Any conflict (another proxy won a version race, a node
  // vanished) fails the whole transaction, and the per-target path sorts it out.
  std::vector<ZkSetOp> ops;
  ops.reserve(writes.size());
  for (const CountWrite& w : writes) ops.push_back({path_of_(w.name), std::to_string(w.count), w.expected_version});
  std::vector<ZkStat> stats;
  ZkCode rc = zk_.multi_set(ops, &stats);
  counters_.multis->add();
  if (rc == ZkCode::ok) {
    for (size_t i = 0; i < writes.size(); ++i) {
      counters_.flushed_requests->add(writes[i].requests_total - writes[i].written_before);
      if (!book_.on_written(writes[i], stats[i].version, stats[i].czxid)) landed_on_new_node(writes[i].name);
    }
    return true;
  }
  if (rc == ZkCode::connection_loss) {
    // Landed or not, all together: settle each by reading it back.
    counters_.errors->add();
    for (const CountWrite& w : writes) resolve_uncertain_write(w);
    return true;
  }
  if (zk_connection_problem(rc)) {
    counters_.errors->add();
    return true;  // nothing landed; the requests wait for the next flush
  }
  return false;
}

void CountWriter::resolve_uncertain_write(const CountWrite& w) {
  std::string data;
  ZkStat stat;
  ZkCode rc = zk_.get(path_of_(w.name), &data, &stat, false);
  counters_.reads->add();
  switch (settle_uncertain_write(w, rc, data, stat)) {
    case Settlement::unknown:
      uncertain_.push_back(w);
      return;
    case Settlement::gone:
      counters_.ambiguous_writes->add();
      counters_.flushed_requests->add(w.requests_total - w.written_before);
      book_.on_assumed_written(w);
      book_.on_missing(w.name);
      return;
    case Settlement::not_applied:
      book_.on_read(w.name, data, stat.version, stat.czxid);
      return;
    case Settlement::ambiguous:
      counters_.ambiguous_writes->add();
      [[fallthrough]];
    case Settlement::applied:
      counters_.flushed_requests->add(w.requests_total - w.written_before);
      book_.on_assumed_written(w);
      book_.on_read(w.name, data, stat.version, stat.czxid);
      return;
  }
}

void CountWriter::landed_on_new_node(const std::string& key) {
  // The node was deleted and re-created after our last read and before this write, and the
  // new one had the version we expected: the write replaced the new node's count with one
  // computed from the old node's. ZooKeeper cannot condition a write on the creation zxid,
  // so this window (normally milliseconds: the children watch makes us re-read) can only be
  // reported, as an ambiguous write.
  RM_LOG_WARN("count write to %s landed on a re-created node", key.c_str());
  counters_.ambiguous_writes->add();
}

}  // namespace ringmaster::discovery
