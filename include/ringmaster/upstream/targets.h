// upstream: which backend a request goes to.
//
// A TargetSnapshot is an immutable list of targets, built by whoever knows the targets (main
// from --target, or the discovery coordinator from ZooKeeper) and published to the reactors
// through a SnapshotCell (RCU with quiescent-state reclamation). A reactor reads the cell
// once per loop turn — one acquire load, no lock, no reference count — and its Balancer then
// picks targets from that snapshot privately.
//
// Each target has a TargetState that outlives snapshots (the same "host:port" keeps the same
// state while it stays known), holding one cache-line slot per reactor. A slot is written by
// its reactor only: the request counter (read by the coordinator to batch increments into
// ZooKeeper) and the reactor's private failure/ejection bookkeeping.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ringmaster/base/host_port.h"
#include "ringmaster/metrics/metrics.h"
#include "ringmaster/metrics/registry.h"

namespace ringmaster::upstream {

struct alignas(64) ReactorSlot {
  // Requests this reactor sent to the target — on an established connection, so a refused
  // connect is not a request (single writer: relaxed load + store). These are what ZooKeeper
  // counts.
  std::atomic<uint64_t> requests{0};
  // Private to the reactor.
  uint64_t picks = 0;  // times the balancer chose the target (what least-requests compares:
                       // it moves at once, even while the connection is still being made)
  uint32_t consecutive_failures = 0;
  int64_t ejected_until_ms = 0;
  // This reactor's connections to the target (private to the reactor): open ones (connecting,
  // busy or pooled), the pooled idle ones among them, and requests waiting in its queue for
  // one (--upstream-max-conns, --upstream-queue-max).
  uint32_t conns_open = 0;
  uint32_t conns_idle = 0;
  uint32_t queued = 0;
  // Time upstream of this reactor's requests that got an answer or failed on a connection to
  // the target (single writer; summed per target at scrape time).
  metrics::Histogram upstream_time;

  void count_request() { requests.store(requests.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
};

struct TargetState {
  TargetState(std::string name_in, const base::SocketAddress& address_in, unsigned reactors);
  std::string name;  // "host:port", the znode name in discovery mode
  base::SocketAddress address;
  std::unique_ptr<ReactorSlot[]> slots;
  unsigned reactors;

  // Sum over reactors (any thread; a relaxed snapshot of monotonic counters).
  uint64_t requests_total() const;
};

// Registers ringmaster_target_upstream_duration_seconds{target="host:port"}: one histogram
// per target `targets()` lists at render time, summed over its reactor slots (any thread; the
// list keeps the states alive while they are read).
using TargetStates = std::vector<std::shared_ptr<const TargetState>>;
void register_target_histograms(metrics::Registry& registry, std::function<TargetStates()> targets);

struct Target {
  std::shared_ptr<TargetState> state;
  uint64_t count = 0;         // cumulative requests recorded in ZooKeeper (for display)
  // What least-requests compares, before this reactor's own increments since it adopted the
  // snapshot: the coordinator normalises it so a target that just joined starts level with
  // the others instead of at its (low) cumulative count.
  uint64_t balance_base = 0;
  // Share of requests relative to the other targets (a registry's weight; 1 by default, never
  // 0: a target that must get nothing is left out of the snapshot). Least-requests compares
  // requests per unit of weight.
  uint32_t weight = 1;
};

struct TargetSnapshot {
  uint64_t version = 0;
  std::vector<Target> targets;
};

// The RCU cell between one publisher thread and the reactors. Holds target snapshots, and
// the routing tables of routing.h (which hold target snapshots in turn).
template <typename T>
class RcuCell {
 public:
  explicit RcuCell(unsigned reactors) : epochs_(new Epoch[reactors]), reactors_(reactors) {}
  ~RcuCell() {
    for (Retired& r : retired_) delete r.snapshot;
    delete current_.load();
  }
  RcuCell(const RcuCell&) = delete;
  RcuCell& operator=(const RcuCell&) = delete;

  // Reactor: the current snapshot (never null once something was published).
  const T* load() const { return current_.load(std::memory_order_acquire); }
  // Reactor: called once per loop turn, after it dropped every pointer into snapshots it no
  // longer uses. Single writer per slot.
  void quiescent(unsigned reactor) {
    auto& e = epochs_[reactor].value;
    e.store(e.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  // Reactor: it will never read again (it exited).
  void offline(unsigned reactor) { epochs_[reactor].value.store(kOffline, std::memory_order_release); }

  // Publisher: makes `next` current; the previous one is freed once every reactor has
  // passed two quiescent points (the first may belong to a turn that loaded the old pointer).
  void publish(std::unique_ptr<const T> next) {
    const T* old = current_.exchange(next.release(), std::memory_order_seq_cst);
    if (old != nullptr) {
      Retired r{old, std::vector<uint64_t>(reactors_)};
      for (unsigned i = 0; i < reactors_; ++i) r.epochs[i] = epochs_[i].value.load(std::memory_order_seq_cst);
      retired_.push_back(std::move(r));
    }
    reclaim();
  }
  // Publisher: frees what no reactor can still see. Call periodically; publish() calls it.
  void reclaim() {
    auto safe = [this](const Retired& r) {
      for (unsigned i = 0; i < reactors_; ++i) {
        uint64_t now = epochs_[i].value.load(std::memory_order_acquire);
        if (now != kOffline && now < r.epochs[i] + 2) return false;
      }
      return true;
    };
    size_t keep = 0;
    for (size_t i = 0; i < retired_.size(); ++i) {
      if (safe(retired_[i])) {
        delete retired_[i].snapshot;
      } else {
        if (keep != i) retired_[keep] = std::move(retired_[i]);
        ++keep;
      }
    }
    retired_.resize(keep);
  }
  size_t retired() const { return retired_.size(); }

 private:
  static constexpr uint64_t kOffline = UINT64_MAX;
  struct alignas(64) Epoch {
    std::atomic<uint64_t> value{0};
  };
  struct Retired {
    const T* snapshot;
    std::vector<uint64_t> epochs;
  };
  std::atomic<const T*> current_{nullptr};
  std::unique_ptr<Epoch[]> epochs_;
  unsigned reactors_;
  std::vector<Retired> retired_;  // publisher thread only
};

using SnapshotCell = RcuCell<TargetSnapshot>;

// Attempts one request makes across targets (first try + failovers).
inline constexpr int kAttemptsMax = 8;

// The targets a request has already tried (by state, so it survives a snapshot change).
struct TriedSet {
  const TargetState* states[kAttemptsMax];
  int size = 0;
  bool contains(const TargetState* state) const;
  void add(const TargetState* state);
};

// One per reactor. Not thread-safe; never shared.
class Balancer {
 public:
  // A target that fails to connect is ejected for a backoff that starts here and doubles per
  // consecutive failure up to the max; it is tried again afterwards.
  static constexpr int64_t kEjectBaseMs = 1000;
  static constexpr int64_t kEjectMaxMs = 30000;

  // `seed` varies the random choices between reactors and processes: proxies that drew the
  // same pairs in the same order would crowd the same targets at the same moments.
  explicit Balancer(unsigned reactor, uint64_t seed = 0) : reactor_(reactor), rng_(0x9e3779b97f4a7c15ull ^ seed) {
    if (rng_ == 0) rng_ = 1;
  }
  // Switches to `snapshot` (which may be the same one again: then nothing happens).
  void adopt(const TargetSnapshot* snapshot);
  const TargetSnapshot* snapshot() const { return snapshot_; }
  size_t size() const { return local_.size(); }
  TargetState* state(int index) const { return local_[index].state; }

  // The target with the lowest (balance_base + own picks since adoption) / weight, among those
  // not tried and not ejected (ejected ones only when nothing else is left), preferring targets
  // with a free connection under --upstream-max-conns; among full ones, the shortest queue
  // (queued work counts, not only what was sent). Ties rotate. Over kScanTargetsMax targets:
  // the better of two random usable ones. -1 when every target was tried (or there is none).
  int pick(const TriedSet& tried, int64_t now_ms);
  // The balancer chose `state` for a request (before any connection exists).
  void on_pick(TargetState* state) { ++slot(state).picks; }
  // The request went out to `state` on an established connection.
  void on_request_sent(TargetState* state) { slot(state).count_request(); }
  void on_connect_failure(TargetState* state, int64_t now_ms);
  void on_connect_success(TargetState* state) { slot(state).consecutive_failures = 0; }
  bool ejected(const TargetState* state, int64_t now_ms) const {
    return state->slots[reactor_].ejected_until_ms > now_ms;
  }
  // This reactor's share of --upstream-max-conns per target (0: unlimited).
  void set_conns_max(uint32_t conns_max) { conns_max_ = conns_max; }
  uint32_t conns_max() const { return conns_max_; }
  // Every connection this reactor may hold to `state` is serving a request: a request sent
  // there now has to wait in its queue.
  bool full(const TargetState* state) const { return full(state->slots[reactor_]); }
  // A new connection to `state` stays within the limit.
  bool can_open(const TargetState* state) const {
    return conns_max_ == 0 || state->slots[reactor_].conns_open < conns_max_;
  }

 private:
  // Up to this many targets a pick scans them all; beyond, power of two choices.
  static constexpr int kScanTargetsMax = 8;
  struct Local {
    TargetState* state;
    ReactorSlot* slot;  // this reactor's slot of `state`
    uint64_t balance_base;
    uint64_t picks_at_adopt;
    uint32_t weight;
  };
  uint64_t score(const Local& l) const;
  // a's score per unit of weight is below b's (cross-multiplied: exact, no division).
  bool lighter(const Local& a, const Local& b) const;
  bool full(const ReactorSlot& s) const { return conns_max_ != 0 && s.conns_open - s.conns_idle >= conns_max_; }
  // Lower is better: fullness first, then the queue of a full target, then the score per unit of weight.
  bool better(const Local& a, const Local& b) const;
  bool usable(const Local& l, const TriedSet& tried, int64_t now_ms) const;
  ReactorSlot& slot(TargetState* state) const { return state->slots[reactor_]; }

  uint64_t next_random();
  // Over kScanTargetsMax targets of unequal weights: a random index drawn in proportion to
  // weight (uniform sampling would cap a heavy target at its 2/n chance of being drawn).
  int draw_weighted();

  unsigned reactor_;
  const TargetSnapshot* snapshot_ = nullptr;
  std::vector<Local> local_;
  std::vector<uint64_t> weight_prefix_;  // running sums of weights; empty when all are equal
  uint32_t rotate_ = 0;
  uint64_t rng_;
  uint32_t conns_max_ = 0;
};

}  // namespace ringmaster::upstream
