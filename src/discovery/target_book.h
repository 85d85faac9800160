// TargetBook: the coordinator's bookkeeping, free of ZooKeeper I/O so it can be unit-tested.
// It knows every target seen under the targets path, its last read count and znode version,
// how many of its requests this proxy has already written, and how to normalise counts for
// balancing. Coordinator thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ringmaster/base/host_port.h"
#include "ringmaster/upstream/targets.h"
#include "fleet.h"

namespace ringmaster::discovery {

using Resolver = std::function<std::optional<base::SocketAddress>(const base::HostPort&)>;

// Decimal ASCII, digits only, at most 20 of them, no overflow.
std::optional<uint64_t> parse_count(std::string_view data);

// The re-read decision for a new children list of a targets path. The parent's cversion
// counts every child created or deleted. More of those since the last applied list than the
// two lists differ by means some node was deleted and created again in between (an agent's
// session expired and it came back, or a delete and create in one multi): the same name, a
// new node, a version restarted at 0. Which one is unknown, so every member is read again
// (TargetBook::set_members' read_all). Both lists sorted; before_cversion -1: no list yet.
struct ChildrenChurn {
  size_t visible = 0;   // names in one list and not the other
  int64_t changes = 0;  // the cversion's move
  bool hidden = false;  // more changes than visible ones (or the cversion went back)
};
ChildrenChurn children_churn(const std::vector<std::string>& before, int64_t before_cversion,
                             const std::vector<std::string>& now, int64_t now_cversion);

// One versioned count write planned by the coordinator.
struct CountWrite {
  std::string name;
  uint64_t count;            // the value to write
  int32_t expected_version;
  uint64_t requests_total;   // this proxy's total for the target once the write lands
  uint64_t written_before;   // this proxy's total already in ZooKeeper before it
  int64_t czxid = 0;         // the incarnation it was planned against (0: unknown)
};

class TargetBook {
 public:
  // How many departed targets' floors are remembered (see departed_floors_).
  static constexpr size_t kDepartedFloorsMax = 4096;
  TargetBook(unsigned reactors, Resolver resolver);
  // Fleet mode: balance on this proxy's own requests (levelled when a target joins) rather
  // than on the fleet-wide counts in ZooKeeper.
  void set_balance_on_own_requests(bool on) { balance_on_own_ = on; }
  // Count nodes that outlive membership (a foreign registry's, under the counts path): a
  // target that left still gets the requests it served written, then is forgotten (prune).
  // Our own layout's node goes with its agent, so there only members are written.
  // Per group: each source has its own format (README "Other registries").
  void set_write_left_members(const std::string& group, bool on) {
    if (on) {
      write_left_.insert(group);
    } else {
      write_left_.erase(group);
    }
  }

  // A new children list. Names that do not parse as host:port (or do not resolve) are
  // skipped and counted. Returns the names whose count must be read: new members,
  // returning ones, and those whose node was missing; every member with `read_all` (the
  // list hides a node deleted and re-created since the last one, see Coordinator).
  //
  // Groups: one book holds the targets of every service source (README "Services"), each
  // entry keyed by `group + name`. The default source's group is "" (keys are bare names, as
  // a fleet's older members know them); another source's is its targets path plus "/", so a
  // key is the node's full path. A children list replaces the members of its group only;
  // counts of every group are planned, batched and written together.
  std::vector<std::string> set_members(const std::vector<std::string>& names, int64_t now_ms,
                                       bool read_all = false, const std::string& group = "");
  // The group of a key: "" for a bare name, else everything up to its last '/'.
  static std::string_view group_of(std::string_view key);
  // Forgets targets that left at least `linger_ms` ago and have nothing left to write (a
  // request counted just before the reactors saw it leave still gets written).
  void prune(int64_t now_ms, int64_t linger_ms);
  // A fresh read of a member's node. Data that does not parse skips the target (counted)
  // until a later read parses. `czxid` (the node's creation zxid; 0: unknown) names its
  // incarnation: a node deleted and re-created under the same name restarts at version 0,
  // so versions alone cannot tell the two apart. A new incarnation is levelled again, as a
  // returning member is.
  void on_read(const std::string& name, std::string_view data, int32_t version, int64_t czxid = 0);
  // The node is gone (NONODE on read or write). Only the children list decides routing, so
  // the target keeps routing until a list without it is believed; its requests wait, unwritten,
  // until the node is read again (an agent re-creating it after session expiry).
  void on_missing(const std::string& name);
  // A member's weight (a foreign registry's, e.g. nerve's "weight"; 1 otherwise): its share
  // of requests is proportional to it. A change re-levels the member (see on_read) in
  // weighted terms, so it neither floods nor starves while its share moves.
  void set_weight(const std::string& name, uint32_t weight);

  using Write = CountWrite;
  // One write per member with requests not yet written; empty when nothing changed.
  std::vector<Write> plan_flush() const;
  // The write for one target after a fresh read (nullopt: nothing to write or not readable).
  std::optional<Write> plan_one(const std::string& name) const;
  // Returns false when the write landed on another incarnation than the one it was planned
  // from (`czxid` from the write's stat differs from the last read's): the node was deleted
  // and re-created between the read and the write, at the version we expected, and the
  // value written did not start from the new node's count.
  bool on_written(const Write& write, int32_t new_version, int64_t czxid = 0);
  // The write's outcome is unknown and is counted as applied: only the requests move to
  // "written"; count and version come from the read that follows.
  void on_assumed_written(const Write& write);

  // The routing view: members with a readable count, sorted by name, with balance bases
  // normalised so a member's base starts level with the least-loaded one when it joins.
  std::unique_ptr<upstream::TargetSnapshot> build_snapshot(uint64_t version, const std::string& group = "") const;

  size_t member_count() const;
  bool is_member(const std::string& key) const {
    auto it = entries_.find(key);
    return it != entries_.end() && it->second.member;
  }
  uint64_t skipped_names() const { return skipped_names_; }
  uint64_t skipped_data() const { return skipped_data_; }
  // Requests counted locally and not yet written, over all targets.
  uint64_t unflushed_total() const;
  // The same for one group's members (a source removed by a reload drains to 0 first).
  uint64_t unflushed_members(std::string_view group) const;

  // ---- Fleet mode (see fleet.h). A proxy's "local total" for a target is the requests its
  // reactors sent plus the requests of other proxies it took responsibility for (carried:
  // batches a leader acknowledged but could not write, e.g. the node was missing).

  // Follower: what was counted since the last batch, per target (and marks it batched).
  fleet::Deltas take_batch();
  // Follower: these batched requests are in ZooKeeper now.
  void on_acked(const fleet::Deltas& deltas);
  // Leader: requests of another proxy it now answers for. False when the name does not
  // resolve (the requests cannot be kept).
  bool add_carried(const std::string& name, uint64_t n);
  // Follower: a count learnt from the leader (display and balancing; never written back).
  void on_count(const std::string& name, uint64_t count);
  struct FleetWrite {
    std::string name;
    uint64_t count;         // the value to write
    int32_t expected_version;
    int64_t czxid;
    uint64_t local_total;   // this proxy's local total covered once it lands
  };
  // One write per writable target with own requests pending or `extra` requests (other
  // proxies' batches) to add; `extra` for targets that cannot be written now is added to
  // *unwritable.
  std::vector<FleetWrite> plan_fleet(const fleet::Deltas& extra, fleet::Deltas* unwritable) const;
  // The write landed; false when it landed on another incarnation than planned.
  // *advanced: how many of this proxy's requests it wrote.
  bool on_fleet_written(const FleetWrite& w, int32_t new_version, int64_t czxid, uint64_t* advanced = nullptr);
  // After this proxy's own write landed, its sequence covers every batch made before it:
  // those batches are dropped unacknowledged, so whatever of them is still not written (a
  // target that could not be written) goes into the next batch again.
  void rebatch_unwritten();
  // Members with requests not yet in ZooKeeper (what a direct write reads first).
  std::vector<std::string> pending_members() const;

  struct Row {
    std::string name;
    bool member;
    bool readable;
    bool node_present;
    uint64_t count;        // last known count in ZooKeeper
    uint64_t unflushed;    // this proxy's requests not yet written
    int32_t version;
    uint32_t weight;
  };
  std::vector<Row> rows() const;

 private:
  struct Entry {
    std::shared_ptr<upstream::TargetState> state;
    bool member = false;
    bool readable = false;   // a count was read and parsed
    bool node_present = false;  // the last read or write found the node
    uint64_t count = 0;
    int32_t version = 0;
    int64_t czxid = 0;           // the incarnation last seen; 0: unknown
    // The highest count this proxy saw on the target's node, over every incarnation (read,
    // written, or learnt from the fleet leader). An agent whose session expired re-creates
    // its ephemeral node from the last count *it* read, which can be behind what proxies
    // wrote just before the expiry; the node is then written from this floor, so the
    // cumulative count never goes backwards (README "ZooKeeper layout").
    uint64_t floor = 0;
    uint64_t written_total = 0;  // this proxy's requests already included in ZooKeeper
    uint64_t carried = 0;        // other proxies' requests this one answers for (fleet leader)
    uint64_t batched_total = 0;  // follower: requests already put into a batch
    int64_t offset = 0;          // balance normalisation: base = count - offset
    bool offset_set = false;
    uint32_t weight = 1;
    int64_t left_ms = 0;  // when it stopped being a member
    bool was_member = false;  // scratch for set_members
  };
  // The least normalised count per unit of weight over the group's levelled members (0 when
  // none).
  double min_normalised_per_weight(std::string_view group) const;
  void level(const std::string& key, Entry& e);
  // A new entry for `key` (its name, the last path component, must parse and resolve).
  std::optional<Entry> make_entry(const std::string& key) const;
  int64_t normalised(const Entry& e) const;
  static uint64_t local_total(const Entry& e) { return e.state->requests_total() + e.carried; }
  // The count a write starts from: the node's, or the floor when the node came back lower.
  static uint64_t base_count(const Entry& e) { return std::max(e.count, e.floor); }
  bool writable(const std::string& name, const Entry& e) const;

  unsigned reactors_;
  Resolver resolver_;
  std::map<std::string, Entry> entries_;
  // Floors of targets forgotten by prune(), handed back if the target returns (an agent whose
  // node stayed away longer than the linger). Bounded: past kDepartedFloorsMax the first name
  // in sort order is dropped, and that target, if it returns, restarts from its node's count.
  std::map<std::string, uint64_t> departed_floors_;
  bool balance_on_own_ = false;
  std::set<std::string> write_left_;  // groups whose left members are still written
  uint64_t skipped_names_ = 0;
  uint64_t skipped_data_ = 0;
};

}  // namespace ringmaster::discovery
