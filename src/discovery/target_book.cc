#include "target_book.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ringmaster::discovery {
namespace {
// How many departed targets' count floors prune() keeps (16 bytes plus a name each).
}  // namespace

std::optional<uint64_t> parse_count(std::string_view data) {
  if (data.empty() || data.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : data) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

ChildrenChurn children_churn(const std::vector<std::string>& before, int64_t before_cversion,
                             const std::vector<std::string>& now, int64_t now_cversion) {
  ChildrenChurn churn;
  auto a = now.begin(), b = before.begin();
  while (a != now.end() || b != before.end()) {
    if (b == before.end() || (a != now.end() && *a < *b)) {
      ++churn.visible;
      ++a;
    } else if (a == now.end() || *b < *a) {
      ++churn.visible;
      ++b;
    } else {
      ++a;
      ++b;
    }
  }
  churn.changes = now_cversion - before_cversion;
  churn.hidden = before_cversion >= 0 && (churn.changes < 0 || churn.changes > static_cast<int64_t>(churn.visible));
  return churn;
}

TargetBook::TargetBook(unsigned reactors, Resolver resolver) : reactors_(reactors), resolver_(std::move(resolver)) {}

std::string_view TargetBook::group_of(std::string_view key) {
  size_t slash = key.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : key.substr(0, slash + 1);
}

std::optional<TargetBook::Entry> TargetBook::make_entry(const std::string& key) const {
  std::string_view name = std::string_view(key).substr(group_of(key).size());
  auto hp = base::parse_host_port(name);
  std::optional<base::SocketAddress> address = hp ? resolver_(*hp) : std::nullopt;
  if (!address) return std::nullopt;
  Entry e;
  e.state = std::make_shared<upstream::TargetState>(std::string(name), *address, reactors_);
  return e;
}

std::vector<std::string> TargetBook::set_members(const std::vector<std::string>& names, int64_t now_ms,
                                                 bool read_all, const std::string& group) {
  for (auto& [key, e] : entries_) {
    e.was_member = false;
    if (group_of(key) != group) continue;
    e.was_member = e.member;
    if (e.member) e.left_ms = now_ms;  // provisional: reset below for those still present
    e.member = false;
  }
  std::vector<std::string> to_read;
  for (const std::string& bare : names) {
    std::string name = group + bare;
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::optional<Entry> e = bare.find('/') == std::string::npos ? make_entry(name) : std::nullopt;
      if (!e) {
        ++skipped_names_;
        continue;
      }
      if (auto d = departed_floors_.find(name); d != departed_floors_.end()) {
        e->floor = d->second;
        departed_floors_.erase(d);
      }
      it = entries_.emplace(name, std::move(*e)).first;
    }
    Entry& e = it->second;
    if (!e.was_member && e.offset_set) {
      // Back after leaving: a new node (new count, new version) as far as we know. Level it
      // again with the others when it is read, as on first sight.
      e.offset_set = false;
    }
    e.member = true;
    // New members, returning ones and those whose node was missing are read.
    if (read_all || !e.was_member || !e.readable || !e.node_present) to_read.push_back(name);
  }
  return to_read;
}

void TargetBook::prune(int64_t now_ms, int64_t linger_ms) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& e = it->second;
    bool idle = local_total(e) == e.written_total;
    if (!e.member && idle && now_ms - e.left_ms >= linger_ms) {
      if (e.floor > 0) {
        if (departed_floors_.size() >= kDepartedFloorsMax) departed_floors_.erase(departed_floors_.begin());
        departed_floors_[it->first] = e.floor;
      }
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

void TargetBook::on_read(const std::string& name, std::string_view data, int32_t version, int64_t czxid) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  e.node_present = true;
  if (czxid != 0) {
    if (e.czxid != 0 && czxid != e.czxid) e.offset_set = false;  // re-created: level it again
    e.czxid = czxid;
  }
  std::optional<uint64_t> count = parse_count(data);
  if (!count) {
    ++skipped_data_;
    e.readable = false;
    return;
  }
  if (*count < e.count) e.offset_set = false;  // a re-created node: level it again
  e.count = *count;
  e.floor = std::max(e.floor, *count);
  e.version = version;
  if (!e.offset_set) level(name, e);
  e.readable = true;
}

void TargetBook::level(const std::string& key, Entry& e) {
  // Joining: level with the least-loaded member, whatever the cumulative count says, so a
  // fresh target (count 0 next to 100000s) gets an even share instead of a flood. With
  // weights, "level" means the same requests per unit of weight (Balancer::pick compares
  // those), so a weight-3 member joins at three times the least-loaded weight-1 member's base.
  e.offset_set = false;
  double per_weight = min_normalised_per_weight(group_of(key));
  int64_t start = std::llround(per_weight * e.weight);
  e.offset = static_cast<int64_t>(balance_on_own_ ? local_total(e) : base_count(e)) - start;
  e.offset_set = true;
}

void TargetBook::set_weight(const std::string& name, uint32_t weight) {
  auto it = entries_.find(name);
  if (it == entries_.end() || weight == 0 || it->second.weight == weight) return;
  Entry& e = it->second;
  e.weight = weight;
  if (e.offset_set) level(name, e);
}

void TargetBook::on_missing(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second.node_present = false;
}

int64_t TargetBook::normalised(const Entry& e) const {
  // Fleet mode: this proxy's own requests. Every proxy balancing its own share evenly makes
  // the fleet's sum even, with no herding: balancing on the fleet-wide count (learnt late,
  // the same for everyone) sends every proxy to the same "least loaded" targets at once.
  if (balance_on_own_) return static_cast<int64_t>(local_total(e)) - e.offset;
  uint64_t pending = local_total(e) - e.written_total;
  return static_cast<int64_t>(base_count(e) + pending) - e.offset;
}

double TargetBook::min_normalised_per_weight(std::string_view group) const {
  bool any = false;
  double best = 0;
  for (const auto& [name, e] : entries_) {
    if (!e.member || !e.readable || !e.offset_set || group_of(name) != group) continue;
    double norm = static_cast<double>(normalised(e)) / e.weight;
    if (!any || norm < best) best = norm;
    any = true;
  }
  return any ? best : 0;
}

namespace {
// `base` is the count to add to: the node's, or the floor above it (a node re-created lower
// is restored even with no requests to add).
std::optional<CountWrite> plan_entry(const std::string& name, uint64_t count, uint64_t base, int32_t version,
                                     uint64_t written, uint64_t total, int64_t czxid) {
  if (total == written && base == count) return std::nullopt;
  return CountWrite{name, base + (total - written), version, total, written, czxid};
}
}  // namespace

std::vector<TargetBook::Write> TargetBook::plan_flush() const {
  std::vector<Write> writes;
  for (const auto& [name, e] : entries_) {
    if (!writable(name, e)) continue;
    if (auto w = plan_entry(name, e.count, base_count(e), e.version, e.written_total, local_total(e), e.czxid)) {
      writes.push_back(*w);
    }
  }
  return writes;
}

std::optional<TargetBook::Write> TargetBook::plan_one(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || !writable(it->first, it->second)) {
    return std::nullopt;
  }
  const Entry& e = it->second;
  return plan_entry(name, e.count, base_count(e), e.version, e.written_total, local_total(e), e.czxid);
}

void TargetBook::on_assumed_written(const Write& write) {
  auto it = entries_.find(write.name);
  if (it != entries_.end()) it->second.written_total = write.requests_total;
}

bool TargetBook::on_written(const Write& write, int32_t new_version, int64_t czxid) {
  auto it = entries_.find(write.name);
  if (it == entries_.end()) return true;
  Entry& e = it->second;
  e.count = write.count;
  e.floor = std::max(e.floor, write.count);
  e.version = new_version;
  e.written_total = write.requests_total;
  if (czxid == 0) return true;
  bool same = e.czxid == 0 || e.czxid == czxid;
  e.czxid = czxid;
  return same;
}

std::unique_ptr<upstream::TargetSnapshot> TargetBook::build_snapshot(uint64_t version, const std::string& group) const {
  auto snapshot = std::make_unique<upstream::TargetSnapshot>();
  snapshot->version = version;
  for (const auto& [name, e] : entries_) {
    if (!e.member || !e.readable || group_of(name) != group) continue;
    int64_t norm = normalised(e);
    upstream::Target t;
    t.state = e.state;
    t.count = e.count;
    t.balance_base = norm > 0 ? static_cast<uint64_t>(norm) : 0;
    t.weight = e.weight;
    snapshot->targets.push_back(std::move(t));
  }
  return snapshot;
}

size_t TargetBook::member_count() const {
  size_t n = 0;
  for (const auto& [name, e] : entries_) n += e.member && e.readable;
  return n;
}

uint64_t TargetBook::unflushed_total() const {
  uint64_t sum = 0;
  for (const auto& [name, e] : entries_) sum += local_total(e) - e.written_total;
  return sum;
}

uint64_t TargetBook::unflushed_members(std::string_view group) const {
  uint64_t sum = 0;
  for (const auto& [name, e] : entries_) {
    if (e.member && group_of(name) == group) sum += local_total(e) - e.written_total;
  }
  return sum;
}

// ---- Fleet ----

bool TargetBook::writable(const std::string& name, const Entry& e) const {
  return (e.member || write_left_.contains(std::string(group_of(name)))) && e.readable && e.node_present;
}

fleet::Deltas TargetBook::take_batch() {
  fleet::Deltas deltas;
  for (auto& [name, e] : entries_) {
    uint64_t local = local_total(e);
    if (local > e.batched_total) deltas[name] = local - e.batched_total;
    e.batched_total = std::max(e.batched_total, local);
  }
  return deltas;
}

void TargetBook::on_acked(const fleet::Deltas& deltas) {
  for (const auto& [name, n] : deltas) {
    auto it = entries_.find(name);
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    e.written_total = std::min(e.written_total + n, local_total(e));
  }
}

bool TargetBook::add_carried(const std::string& name, uint64_t n) {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::optional<Entry> e = make_entry(name);
    if (!e) return false;
    it = entries_.emplace(name, std::move(*e)).first;
  }
  it->second.carried += n;
  return true;
}

void TargetBook::on_count(const std::string& name, uint64_t count) {
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second.readable) return;
  // A count learnt from the leader: for display and balancing only (no version: this proxy
  // does not write the node while it follows). Counts only grow on one node.
  if (count > it->second.count) it->second.count = count;
  it->second.floor = std::max(it->second.floor, count);  // should this proxy lead later
}

std::vector<TargetBook::FleetWrite> TargetBook::plan_fleet(const fleet::Deltas& extra, fleet::Deltas* unwritable) const {
  std::vector<FleetWrite> writes;
  for (const auto& [name, e] : entries_) {
    auto x = extra.find(name);
    uint64_t add_extra = x == extra.end() ? 0 : x->second;
    if (!writable(name, e)) continue;
    uint64_t local = local_total(e);
    uint64_t add = (local - e.written_total) + add_extra;
    if (add == 0 && base_count(e) == e.count) continue;
    writes.push_back(FleetWrite{name, base_count(e) + add, e.version, e.czxid, local});
  }
  for (const auto& [name, n] : extra) {
    auto it = entries_.find(name);
    if (n > 0 && (it == entries_.end() || !writable(it->first, it->second))) (*unwritable)[name] += n;
  }
  return writes;
}

bool TargetBook::on_fleet_written(const FleetWrite& w, int32_t new_version, int64_t czxid, uint64_t* advanced) {
  auto it = entries_.find(w.name);
  if (it == entries_.end()) return true;
  Entry& e = it->second;
  e.count = w.count;
  e.floor = std::max(e.floor, w.count);
  e.version = new_version;
  if (advanced != nullptr) *advanced = w.local_total > e.written_total ? w.local_total - e.written_total : 0;
  e.written_total = std::max(e.written_total, w.local_total);
  e.batched_total = std::max(e.batched_total, w.local_total);
  bool same = czxid == 0 || e.czxid == 0 || e.czxid == czxid;
  if (czxid != 0) e.czxid = czxid;
  return same;
}

void TargetBook::rebatch_unwritten() {
  for (auto& [name, e] : entries_) e.batched_total = e.written_total;
}

std::vector<std::string> TargetBook::pending_members() const {
  std::vector<std::string> names;
  for (const auto& [name, e] : entries_) {
    if ((e.member || write_left_.contains(std::string(group_of(name)))) && local_total(e) > e.written_total) names.push_back(name);
  }
  return names;
}

std::vector<TargetBook::Row> TargetBook::rows() const {
  std::vector<Row> out;
  for (const auto& [name, e] : entries_) {
    out.push_back(
        Row{name, e.member, e.readable, e.node_present, e.count, local_total(e) - e.written_total, e.version, e.weight});
  }
  return out;
}

}  // namespace ringmaster::discovery
