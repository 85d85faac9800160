#include "ringmaster/upstream/targets.h"

#include <algorithm>

#include "ringmaster/base/check.h"

namespace ringmaster::upstream {

TargetState::TargetState(std::string name_in, const base::SocketAddress& address_in, unsigned reactors_in)
    : name(std::move(name_in)), address(address_in), slots(new ReactorSlot[reactors_in]), reactors(reactors_in) {}

uint64_t TargetState::requests_total() const {
  uint64_t sum = 0;
  for (unsigned r = 0; r < reactors; ++r) sum += slots[r].requests.load(std::memory_order_relaxed);
  return sum;
}

void register_target_histograms(metrics::Registry& registry, std::function<TargetStates()> targets) {
  registry.family("ringmaster_target_upstream_duration_seconds", metrics::Type::histogram,
                  "Per target: time upstream of requests answered, or failed, on a connection to it.",
                  [targets = std::move(targets)](metrics::Samples& out) {
                    std::vector<const metrics::Histogram*> parts;
                    for (const auto& t : targets()) {
                      parts.clear();
                      for (unsigned r = 0; r < t->reactors; ++r) parts.push_back(&t->slots[r].upstream_time);
                      out.add_histogram("target=\"" + metrics::label_value(t->name) + "\"", parts);
                    }
                  });
}

// ---- TriedSet ----

bool TriedSet::contains(const TargetState* state) const {
  return std::find(states, states + size, state) != states + size;
}

void TriedSet::add(const TargetState* state) {
  RM_CHECK(size < kAttemptsMax);
  states[size++] = state;
}

// ---- Balancer ----

void Balancer::adopt(const TargetSnapshot* snapshot) {
  if (snapshot == snapshot_) return;
  snapshot_ = snapshot;
  local_.clear();
  weight_prefix_.clear();
  if (snapshot == nullptr) return;
  local_.reserve(snapshot->targets.size());
  bool equal = true;
  for (const Target& t : snapshot->targets) {
    TargetState* s = t.state.get();
    local_.push_back(Local{s, &s->slots[reactor_], t.balance_base, s->slots[reactor_].picks, std::max<uint32_t>(1, t.weight)});
    equal = equal && local_.back().weight == local_.front().weight;
  }
  if (!equal && local_.size() > kScanTargetsMax) {
    uint64_t sum = 0;
    for (const Local& l : local_) weight_prefix_.push_back(sum += l.weight);
  }
}

uint64_t Balancer::next_random() {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return rng_;
}

int Balancer::draw_weighted() {
  uint64_t x = next_random() % weight_prefix_.back();
  return static_cast<int>(std::upper_bound(weight_prefix_.begin(), weight_prefix_.end(), x) - weight_prefix_.begin());
}

uint64_t Balancer::score(const Local& l) const { return l.balance_base + (l.slot->picks - l.picks_at_adopt); }

bool Balancer::lighter(const Local& a, const Local& b) const {
  using Wide = unsigned __int128;  // a 64-bit score times a 32-bit weight cannot overflow it
  return static_cast<Wide>(score(a)) * b.weight < static_cast<Wide>(score(b)) * a.weight;
}

bool Balancer::better(const Local& a, const Local& b) const {
  bool a_full = full(*a.slot);
  bool b_full = full(*b.slot);
  if (a_full != b_full) return !a_full;
  if (a_full && a.slot->queued != b.slot->queued) return a.slot->queued < b.slot->queued;
  return lighter(a, b);
}

bool Balancer::usable(const Local& l, const TriedSet& tried, int64_t now_ms) const {
  return l.slot->ejected_until_ms <= now_ms && !tried.contains(l.state);
}

int Balancer::pick(const TriedSet& tried, int64_t now_ms) {
  int n = static_cast<int>(local_.size());
  if (n == 0 || tried.size >= kAttemptsMax) return -1;
  if (n > kScanTargetsMax) {
    // Many targets: the better of two random ones (power of two choices) balances almost as
    // well as a full scan at a constant cost; the scan below remains the fallback.
    int a, b;
    if (weight_prefix_.empty()) {
      uint64_t r = next_random();
      a = static_cast<int>(r % static_cast<uint64_t>(n));
      b = static_cast<int>((r >> 32) % static_cast<uint64_t>(n - 1));
      if (b >= a) ++b;
    } else {
      a = draw_weighted();
      b = draw_weighted();
      if (b == a) b = a + 1 < n ? a + 1 : 0;
    }
    bool a_ok = usable(local_[a], tried, now_ms);
    bool b_ok = usable(local_[b], tried, now_ms);
    if (a_ok && b_ok) return better(local_[b], local_[a]) ? b : a;
    if (a_ok) return a;
    if (b_ok) return b;
  }
  int best = -1;
  bool best_ejected = true;
  // Start the scan at a rotating offset so ties do not always land on the first target.
  int start = static_cast<int>(rotate_++ % static_cast<uint32_t>(n));
  for (int k = 0; k < n; ++k) {
    int i = start + k < n ? start + k : start + k - n;
    const Local& l = local_[i];
    if (tried.contains(l.state)) continue;
    bool is_ejected = l.slot->ejected_until_ms > now_ms;
    bool take = best < 0 || (best_ejected && !is_ejected) || (best_ejected == is_ejected && better(l, local_[best]));
    if (take) {
      best = i;
      best_ejected = is_ejected;
    }
  }
  return best;
}

void Balancer::on_connect_failure(TargetState* state, int64_t now_ms) {
  ReactorSlot& s = slot(state);
  s.consecutive_failures = std::min<uint32_t>(s.consecutive_failures + 1, 16);
  s.ejected_until_ms = now_ms + std::min(kEjectMaxMs, kEjectBaseMs << (s.consecutive_failures - 1));
}

}  // namespace ringmaster::upstream
