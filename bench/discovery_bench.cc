// discovery micro-benchmarks: the coordinator's bookkeeping per flush interval, without
// ZooKeeper I/O — TargetBook::plan_flush (sum the reactor-local counters, one planned write
// per target with pending requests) followed by on_written for each write, for a batch of
// 2, 16 and 256 targets; and build_snapshot (the routing view published to the reactors).
// This runs once per flush interval (100 ms by default), never per request; the figures say
// how many targets one coordinator can keep flushing.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "discovery/target_book.h"
#include "ringmaster/upstream/targets.h"

namespace {

using namespace ringmaster;

constexpr unsigned kReactors = 4;

struct Book {
  discovery::TargetBook book{kReactors, [](const base::HostPort&) { return std::optional(base::SocketAddress{}); }};
  std::vector<upstream::TargetState*> states;
};

std::unique_ptr<Book> make_book(int targets) {
  auto b = std::make_unique<Book>();
  std::vector<std::string> names;
  for (int i = 0; i < targets; ++i) names.push_back("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":8080");
  b->book.set_members(names, 0);
  for (const std::string& name : names) b->book.on_read(name, "1000", 1);
  auto snapshot = b->book.build_snapshot(1);
  for (const upstream::Target& t : snapshot->targets) b->states.push_back(t.state.get());
  return b;
}

// Every reactor counted a request for every target since the last flush; the coordinator
// plans the batch and records each write as landed. The counter bumps (targets × reactors
// relaxed stores) are part of the loop: they stand in for the reactors' traffic.
void BM_FlushBatch(benchmark::State& state) {
  const int targets = static_cast<int>(state.range(0));
  auto b = make_book(targets);
  int32_t version = 1;
  for (auto _ : state) {
    for (upstream::TargetState* s : b->states) {
      for (unsigned r = 0; r < kReactors; ++r) s->slots[r].count_request();
    }
    std::vector<discovery::CountWrite> writes = b->book.plan_flush();
    ++version;
    for (const discovery::CountWrite& w : writes) b->book.on_written(w, version);
    benchmark::DoNotOptimize(writes.data());
  }
  state.SetItemsProcessed(state.iterations() * targets);
  state.counters["writes_per_flush"] = static_cast<double>(targets);
}
BENCHMARK(BM_FlushBatch)->Arg(2)->Arg(16)->Arg(256);

// A flush interval in which nothing happened: plan_flush finds nothing to write.
void BM_FlushIdle(benchmark::State& state) {
  const int targets = static_cast<int>(state.range(0));
  auto b = make_book(targets);
  for (auto _ : state) {
    std::vector<discovery::CountWrite> writes = b->book.plan_flush();
    benchmark::DoNotOptimize(writes.data());
  }
  state.SetItemsProcessed(state.iterations() * targets);
}
BENCHMARK(BM_FlushIdle)->Arg(2)->Arg(16)->Arg(256);

// The routing view the coordinator publishes after a membership or count change.
void BM_BuildSnapshot(benchmark::State& state) {
  const int targets = static_cast<int>(state.range(0));
  auto b = make_book(targets);
  uint64_t version = 1;
  for (auto _ : state) {
    auto snapshot = b->book.build_snapshot(++version);
    benchmark::DoNotOptimize(snapshot.get());
  }
  state.SetItemsProcessed(state.iterations() * targets);
}
BENCHMARK(BM_BuildSnapshot)->Arg(2)->Arg(16)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
