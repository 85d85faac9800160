#include "fleet.h"

#include <algorithm>
#include <charconv>
#include <random>

#include <nlohmann/json.hpp>

namespace ringmaster::discovery::fleet {
namespace {

using json = nlohmann::json;

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Instances and target names are printable tokens without spaces (the ledger's separator).
bool token_ok(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// nlohmann throws on type mismatches; the wire formats are parsed in one try block each.
std::optional<json> parse_json(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

// ---- Ledger ---------------------------------------------------------------------------

std::optional<Ledger> Ledger::parse(std::string_view data) {
  Ledger ledger;
  while (!data.empty()) {
    size_t eol = data.find('\n');
    if (eol == std::string_view::npos) return std::nullopt;  // every line ends with \n
    std::string_view line = data.substr(0, eol);
    data.remove_prefix(eol + 1);
    size_t a = line.find(' ');
    size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
    if (b == std::string_view::npos) return std::nullopt;
    std::string_view instance = line.substr(0, a);
    auto seq = parse_number<uint64_t>(line.substr(a + 1, b - a - 1));
    auto updated = parse_number<int64_t>(line.substr(b + 1));
    if (!token_ok(instance) || !seq || !updated) return std::nullopt;
    ledger.entries_[std::string(instance)] = LedgerEntry{*seq, *updated};
  }
  return ledger;
}

std::string Ledger::serialize() const {
  std::string out;
  for (const auto& [instance, e] : entries_) {
    out += instance;
    out += ' ';
    out += std::to_string(e.seq);
    out += ' ';
    out += std::to_string(e.updated_ms);
    out += '\n';
  }
  return out;
}

uint64_t Ledger::seq(const std::string& instance) const {
  auto it = entries_.find(instance);
  return it == entries_.end() ? 0 : it->second.seq;
}

void Ledger::set(const std::string& instance, uint64_t seq, int64_t now_ms) {
  LedgerEntry& e = entries_[instance];
  if (seq > e.seq) {
    e.seq = seq;
    e.updated_ms = now_ms;
  }
}

void Ledger::prune(int64_t now_ms, int64_t keep_ms, const std::vector<std::string>& live) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    bool is_live = std::find(live.begin(), live.end(), it->first) != live.end();
    if (!is_live && now_ms - it->second.updated_ms > keep_ms) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- Batches --------------------------------------------------------------------------

void add_deltas(Deltas& into, const Deltas& from) {
  for (const auto& [name, n] : from) into[name] += n;
}

void Outbox::push(Batch batch) {
  if (!batches_.empty() && batch.seq <= batches_.back().seq) return;  // sequences only grow
  batches_.push_back(std::move(batch));
}

Deltas Outbox::ack_through(uint64_t seq) {
  Deltas acked;
  while (!batches_.empty() && batches_.front().seq <= seq) {
    add_deltas(acked, batches_.front().deltas);
    batches_.pop_front();
  }
  return acked;
}

std::vector<Batch> Outbox::after(uint64_t seq) const {
  std::vector<Batch> out;
  for (const Batch& b : batches_) {
    if (b.seq > seq) out.push_back(b);
  }
  return out;
}

bool Inbox::accept(const std::string& instance, const std::vector<Batch>& batches, uint64_t applied) {
  auto it = held_.find(instance);
  if (it == held_.end()) {
    if (held_.size() >= kInstancesMax) return false;
    it = held_.emplace(instance, std::deque<Batch>{}).first;
  }
  std::deque<Batch>& q = it->second;
  size_t fresh = 0;
  uint64_t high = std::max(applied, q.empty() ? 0 : q.back().seq);
  for (const Batch& b : batches) fresh += b.seq > high;
  if (q.size() + fresh > kBatchesPerInstanceMax) {
    if (q.empty()) held_.erase(it);
    return false;
  }
  std::vector<const Batch*> sorted;
  for (const Batch& b : batches) sorted.push_back(&b);
  std::sort(sorted.begin(), sorted.end(), [](const Batch* a, const Batch* b) { return a->seq < b->seq; });
  for (const Batch* b : sorted) {
    if (b->seq <= high) continue;  // already applied or held: a resend
    q.push_back(*b);
    high = b->seq;
  }
  if (q.empty()) held_.erase(it);
  return true;
}

uint64_t Inbox::received(const std::string& instance, uint64_t applied) const {
  auto it = held_.find(instance);
  if (it == held_.end() || it->second.empty()) return applied;
  return std::max(applied, it->second.back().seq);
}

Inbox::Plan Inbox::plan() const {
  Plan plan;
  for (const auto& [instance, q] : held_) {
    if (q.empty()) continue;
    plan.through[instance] = q.back().seq;
    for (const Batch& b : q) add_deltas(plan.deltas, b.deltas);
  }
  return plan;
}

void Inbox::drop_covered(const Ledger& ledger) {
  for (auto it = held_.begin(); it != held_.end();) {
    uint64_t applied = ledger.seq(it->first);
    std::deque<Batch>& q = it->second;
    while (!q.empty() && q.front().seq <= applied) q.pop_front();
    if (q.empty()) {
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t Inbox::batches() const {
  size_t n = 0;
  for (const auto& [instance, q] : held_) n += q.size();
  return n;
}

// ---- Election -------------------------------------------------------------------------

std::string member_prefix(bool can_lead, const std::string& instance) {
  return std::string(can_lead ? "l-" : "f-") + instance + "-";
}

std::optional<Member> parse_member(std::string_view name) {
  // "<l|f>-<instance>-<10 digits>"
  if (name.size() < 2 + 1 + 1 + 10 || (name[0] != 'l' && name[0] != 'f') || name[1] != '-') return std::nullopt;
  size_t dash = name.rfind('-');
  if (dash <= 2 || name.size() - dash - 1 != 10) return std::nullopt;
  auto counter = parse_number<uint64_t>(name.substr(dash + 1));
  std::string_view instance = name.substr(2, dash - 2);
  if (!counter || !token_ok(instance)) return std::nullopt;
  return Member{std::string(name), name[0] == 'l', std::string(instance), *counter};
}

Election elect(const std::vector<std::string>& children, const std::string& instance) {
  Election e;
  for (const std::string& child : children) {
    std::optional<Member> m = parse_member(child);
    if (!m) continue;
    ++e.members;
    if (m->instance == instance && (!e.self || m->counter < e.self->counter)) e.self = *m;
    if (m->can_lead && (!e.leader || m->counter < e.leader->counter)) e.leader = *m;
  }
  return e;
}

// ---- Wire format ----------------------------------------------------------------------

namespace {

json deltas_json(const Deltas& d) {
  json out = json::object();
  for (const auto& [name, n] : d) out[name] = n;
  return out;
}

std::optional<Deltas> deltas_from(const json& j) {
  if (!j.is_object()) return std::nullopt;
  Deltas d;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_unsigned() || !token_ok(it.key())) return std::nullopt;
    d[it.key()] = it.value().get<uint64_t>();
  }
  return d;
}

std::optional<std::string> string_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<uint64_t> uint_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<uint64_t>();
}

}  // namespace

std::string encode_report(const Report& r) {
  json batches = json::array();
  for (const Batch& b : r.batches) batches.push_back({{"seq", b.seq}, {"deltas", deltas_json(b.deltas)}});
  json j = {{"instance", r.instance}, {"token", r.token}, {"batches", batches}, {"want_counts", r.want_counts}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Report> decode_report(std::string_view body) {
  auto j = parse_json(body);
  if (!j) return std::nullopt;
  Report r;
  auto instance = string_field(*j, "instance");
  auto token = string_field(*j, "token");
  auto batches = j->find("batches");
  if (!instance || !token_ok(*instance) || !token || batches == j->end() || !batches->is_array()) return std::nullopt;
  r.instance = *instance;
  r.token = *token;
  for (const json& b : *batches) {
    if (!b.is_object()) return std::nullopt;
    auto seq = uint_field(b, "seq");
    auto d = b.find("deltas");
    if (!seq || *seq == 0 || d == b.end()) return std::nullopt;
    auto deltas = deltas_from(*d);
    if (!deltas) return std::nullopt;
    r.batches.push_back(Batch{*seq, std::move(*deltas)});
  }
  auto want = j->find("want_counts");
  r.want_counts = want != j->end() && want->is_boolean() && want->get<bool>();
  return r;
}

std::string encode_answer(const Answer& a) {
  json j = {{"leader", a.leader}, {"applied", a.applied}, {"received", a.received}};
  if (a.counts) j["counts"] = deltas_json(*a.counts);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Answer> decode_answer(std::string_view body) {
  auto j = parse_json(body);
  if (!j) return std::nullopt;
  Answer a;
  auto leader = string_field(*j, "leader");
  auto applied = uint_field(*j, "applied");
  auto received = uint_field(*j, "received");
  if (!leader || !applied || !received) return std::nullopt;
  a.leader = *leader;
  a.applied = *applied;
  a.received = *received;
  auto counts = j->find("counts");
  if (counts != j->end()) {
    auto c = deltas_from(*counts);
    if (!c) return std::nullopt;
    a.counts = std::move(*c);
  }
  return a;
}

std::string encode_announcement(const Announcement& a) {
  json j = {{"instance", a.instance}, {"fleet", a.address}, {"token", a.token}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Announcement> decode_announcement(std::string_view data) {
  auto j = parse_json(data);
  if (!j) return std::nullopt;
  auto instance = string_field(*j, "instance");
  auto address = string_field(*j, "fleet");
  auto token = string_field(*j, "token");
  if (!instance || !address || !token) return std::nullopt;
  return Announcement{*instance, *address, *token};
}

std::string random_id() {
  std::random_device rd;
  std::string out;
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 4; ++i) {
    uint32_t v = rd();
    for (int k = 0; k < 8; ++k) {
      out.push_back(kHex[v & 15]);
      v >>= 4;
    }
  }
  return out;
}

}  // namespace ringmaster::discovery::fleet
