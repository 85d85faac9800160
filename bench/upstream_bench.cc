// upstream micro-benchmarks: what a reactor pays per proxied request to choose a backend —
// one acquire load of the SnapshotCell, Balancer::adopt (a pointer compare when nothing was
// published), Balancer::pick (a linear least-requests scan) and the per-request counter
// increment — with 2, 16 and 256 targets. Also the counter increment alone, and adopt of a
// freshly published snapshot (what a reactor pays once per ZooKeeper change, not per request).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "ringmaster/upstream/routing.h"
#include "ringmaster/upstream/targets.h"

namespace {

using namespace ringmaster;

std::unique_ptr<upstream::TargetSnapshot> make_snapshot(int targets, unsigned reactors, uint64_t version) {
  auto snapshot = std::make_unique<upstream::TargetSnapshot>();
  snapshot->version = version;
  for (int i = 0; i < targets; ++i) {
    upstream::Target t;
    // The address is never used here: only identity and slots matter to the balancer.
    t.state = std::make_shared<upstream::TargetState>("10.0.0." + std::to_string(i % 250) + ":" +
                                                          std::to_string(8000 + i),
                                                      base::SocketAddress{}, reactors);
    t.balance_base = static_cast<uint64_t>(i % 3);  // uneven bases, as after a normalisation
    snapshot->targets.push_back(std::move(t));
  }
  return snapshot;
}

// The full per-request sequence on reactor 0 of 4.
void BM_LoadAdoptPickCount(benchmark::State& state) {
  const int targets = static_cast<int>(state.range(0));
  constexpr unsigned kReactors = 4;
  upstream::SnapshotCell cell(kReactors);
  cell.publish(make_snapshot(targets, kReactors, 1));
  upstream::Balancer balancer(0);
  balancer.adopt(cell.load());
  const int64_t now_ms = 1'000'000;
  for (auto _ : state) {
    const upstream::TargetSnapshot* snapshot = cell.load();
    balancer.adopt(snapshot);  // unchanged: a pointer compare
    upstream::TriedSet tried;
    int index = balancer.pick(tried, now_ms);
    balancer.on_pick(balancer.state(index));
    benchmark::DoNotOptimize(index);
  }
  cell.quiescent(0);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LoadAdoptPickCount)->Arg(2)->Arg(16)->Arg(256);

// pick alone (the scan), without load/adopt/count.
void BM_Pick(benchmark::State& state) {
  const int targets = static_cast<int>(state.range(0));
  auto snapshot = make_snapshot(targets, 1, 1);
  upstream::Balancer balancer(0);
  balancer.adopt(snapshot.get());
  for (auto _ : state) {
    upstream::TriedSet tried;
    int index = balancer.pick(tried, 1'000'000);
    benchmark::DoNotOptimize(index);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pick)->Arg(2)->Arg(16)->Arg(256);

// A failover pick: two targets already tried (TriedSet::contains on every candidate).
void BM_PickAfterTwoFailures(benchmark::State& state) {
  const int targets = static_cast<int>(state.range(0));
  auto snapshot = make_snapshot(targets, 1, 1);
  upstream::Balancer balancer(0);
  balancer.adopt(snapshot.get());
  upstream::TriedSet tried;
  tried.add(balancer.state(0));
  tried.add(balancer.state(1));
  for (auto _ : state) {
    int index = balancer.pick(tried, 1'000'000);
    benchmark::DoNotOptimize(index);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PickAfterTwoFailures)->Arg(2)->Arg(16)->Arg(256);

// The per-request counter increment alone (single writer: relaxed load + store).
void BM_CountRequest(benchmark::State& state) {
  upstream::ReactorSlot slot;
  for (auto _ : state) {
    slot.count_request();
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(slot.requests.load(std::memory_order_relaxed));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CountRequest);

// Adopting a different snapshot (after a publish): rebuilds the reactor-local view.
void BM_AdoptChanged(benchmark::State& state) {
  const int targets = static_cast<int>(state.range(0));
  auto a = make_snapshot(targets, 1, 1);
  auto b = make_snapshot(targets, 1, 2);
  upstream::Balancer balancer(0);
  bool flip = false;
  for (auto _ : state) {
    balancer.adopt(flip ? a.get() : b.get());
    flip = !flip;
    benchmark::DoNotOptimize(balancer.size());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AdoptChanged)->Arg(2)->Arg(16)->Arg(256);

// Routing one request among N services (README "Services"): the same mix perf/services uses
// — exact hosts, wildcards, host-less prefixes — the request's Host given with a port and in
// mixed case, its service an exact host with three longer prefixes to walk past. What the
// reactor adds per request to pick a service; compare with its CPU per proxied request.
void BM_Route(benchmark::State& state) {
  const int services = static_cast<int>(state.range(0));
  std::vector<upstream::Matcher::Rule> rules;
  for (int i = 0; i < services; ++i) {
    std::string name = "svc-" + std::to_string(i) + ".example.test";
    if (i % 3 == 0) rules.push_back({{name}, "/", i});
    if (i % 3 == 1) rules.push_back({{"*." + name}, "/", i});
    if (i % 3 == 2) rules.push_back({{}, "/svc-" + std::to_string(i) + "/", i});
  }
  if (services > 1) {
    for (int j = 0; j < 3; ++j) rules.push_back({{"svc-0.example.test"}, "/p" + std::to_string(j) + "/deeper/", services + j});
  }
  upstream::Matcher matcher(rules, -1);
  for (auto _ : state) {
    int s = matcher.match("SVC-0.example.test:8080", "/p0/x");
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Route)->Arg(1)->Arg(50)->Arg(500);

}  // namespace

BENCHMARK_MAIN();
