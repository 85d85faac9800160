// Fleet coordination: the pure parts (no I/O), unit-tested from tables.
//
// Many proxies add their requests to the same `/targets/<host>:<port>` counts. If each wrote
// every node itself, ZooKeeper's load would grow with proxies × targets and their versioned
// writes would collide. Instead one proxy at a time, the leader, writes: every flush interval
// one multi holding every target's new count *and* the fleet ledger. The others (followers)
// hand their per-interval deltas to the leader over TCP as numbered batches; the leader
// applies them in its next multi and acknowledges them in its next answer.
//
// The ledger (`<fleet>/ledger`, one persistent node) is what keeps counts exact under any
// fault. It maps each proxy instance to the highest batch sequence of it that is included in
// the counts, and it is rewritten (version-checked) in the same transaction as the counts.
// So:
//   * a batch is applied at most once: whoever applies it (a leader, an old leader that does
//     not know it was replaced, or its own proxy writing directly because no leader answers)
//     does so in a multi conditioned on the ledger version it read, and drops what the ledger
//     already covers;
//   * a multi whose outcome is unknown (CONNECTIONLOSS) is settled by the ledger alone: either
//     its own entry reached the planned sequence (all of it landed, atomically) or not;
//   * a follower learns from the leader's answer, or from any ledger read, which of its
//     batches are in; the rest it keeps and sends again (to a new leader too).
// A sequence covers everything up to it: a proxy's own write with sequence s includes all of
// its requests not yet acknowledged, so every batch numbered below s is covered as well.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster::discovery::fleet {

// ---- Ledger -------------------------------------------------------------------------

struct LedgerEntry {
  uint64_t seq = 0;         // highest sequence of this instance included in the counts
  int64_t updated_ms = 0;   // wall-clock time it last moved (for pruning departed instances)
  bool operator==(const LedgerEntry&) const = default;
};

class Ledger {
 public:
  // Text, one instance a line: "<instance> <seq> <updated_ms>\n", sorted. Empty data is an
  // empty ledger. nullopt when a line does not parse (the caller refuses to write over it).
  static std::optional<Ledger> parse(std::string_view data);
  std::string serialize() const;

  uint64_t seq(const std::string& instance) const;
  void set(const std::string& instance, uint64_t seq, int64_t now_ms);
  // Forgets instances that have not moved for keep_ms (a proxy gone for good). Instances in
  // `live` are kept whatever their age.
  void prune(int64_t now_ms, int64_t keep_ms, const std::vector<std::string>& live);
  size_t size() const { return entries_.size(); }
  const std::map<std::string, LedgerEntry>& entries() const { return entries_; }
  bool operator==(const Ledger&) const = default;

 private:
  std::map<std::string, LedgerEntry> entries_;
};

// ---- Batches ------------------------------------------------------------------------

using Deltas = std::map<std::string, uint64_t>;  // target name -> requests

struct Batch {
  uint64_t seq = 0;
  Deltas deltas;
  bool operator==(const Batch&) const = default;
};

void add_deltas(Deltas& into, const Deltas& from);

// A follower's batches not yet known to be in the counts, oldest first.
class Outbox {
 public:
  // Appends a batch (seq must grow). Batches are immutable once made: a leader may hold any
  // of them, so their contents never change.
  void push(Batch batch);
  // Everything up to `seq` is in the counts: drops those batches and returns their deltas
  // summed (what the caller moves to "written").
  Deltas ack_through(uint64_t seq);
  // Batches with a sequence above `seq`.
  std::vector<Batch> after(uint64_t seq) const;
  size_t size() const { return batches_.size(); }
  bool empty() const { return batches_.empty(); }
  uint64_t last_seq() const { return batches_.empty() ? 0 : batches_.back().seq; }

 private:
  std::deque<Batch> batches_;
};

// The leader's batches received from followers and not yet applied.
class Inbox {
 public:
  // Takes the batches of `instance` above what is already applied (`applied`) or held.
  // Returns false (taking none) when the follower or batch bound would be exceeded.
  bool accept(const std::string& instance, const std::vector<Batch>& batches, uint64_t applied);
  // The highest sequence held for `instance`, or `applied` when none is higher.
  uint64_t received(const std::string& instance, uint64_t applied) const;
  // What one multi would apply: for each instance, the highest held sequence, and the sum of
  // the deltas of every held batch.
  struct Plan {
    std::map<std::string, uint64_t> through;  // instance -> highest sequence included
    Deltas deltas;
  };
  Plan plan() const;
  // Drops every batch the ledger covers (after a multi landed, or a ledger read).
  void drop_covered(const Ledger& ledger);
  void clear() { held_.clear(); }
  size_t batches() const;

  static constexpr size_t kInstancesMax = 4096;
  static constexpr size_t kBatchesPerInstanceMax = 4096;

 private:
  std::map<std::string, std::deque<Batch>> held_;
};

// ---- Election -----------------------------------------------------------------------

// Proxy nodes are ephemeral sequential children of <fleet>/proxies named
// "<role>-<instance>-<10-digit counter>": role "l" may lead (it has a fleet listener), "f"
// only follows. The instance in the name lets a proxy find its own node after a
// CONNECTIONLOSS on create without reading any data.
struct Member {
  std::string name;
  bool can_lead = false;
  std::string instance;
  uint64_t counter = 0;
};
std::optional<Member> parse_member(std::string_view name);
std::string member_prefix(bool can_lead, const std::string& instance);

struct Election {
  std::optional<Member> leader;  // the lowest counter among those that may lead
  std::optional<Member> self;    // this instance's node, if present
  size_t members = 0;            // parseable members (the fleet's size)
};
Election elect(const std::vector<std::string>& children, const std::string& instance);

// ---- Wire format --------------------------------------------------------------------
// Follower -> leader: POST /fleet/report with a JSON body; the leader answers JSON.

struct Report {
  std::string instance;
  std::string token;       // the leader's token, from its node: proves the follower reads ZooKeeper
  std::vector<Batch> batches;
  bool want_counts = false;
};
std::string encode_report(const Report& report);
std::optional<Report> decode_report(std::string_view body);

struct Answer {
  std::string leader;      // the leader's instance
  uint64_t applied = 0;    // the follower's highest sequence in the counts
  uint64_t received = 0;   // the follower's highest sequence the leader holds or applied
  std::optional<std::map<std::string, uint64_t>> counts;  // target -> count, when asked
};
std::string encode_answer(const Answer& answer);
std::optional<Answer> decode_answer(std::string_view body);

// A proxy node's data: where its fleet listener is and the token followers must present.
struct Announcement {
  std::string instance;
  std::string address;  // "host:port" of the fleet listener; empty for followers only
  std::string token;
};
std::string encode_announcement(const Announcement& a);
std::optional<Announcement> decode_announcement(std::string_view data);

// 16 random bytes as hex (instances and tokens).
std::string random_id();

}  // namespace ringmaster::discovery::fleet
