// metrics registry: every Prometheus family the binary exports is registered here once, at
// start (name, type, help, how to read it), and render() is the one function that writes the
// text format (version 0.0.4) for GET /metrics. Families render in registration order, which
// is part of the output: keep it when moving a registration.
//
// Threads: register before the admin listener starts; from then on the registry is only
// read. render() runs on the admin thread; every read function it calls must be safe there
// (relaxed atomics, Counter/Gauge/Histogram, or the owner's own lock).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringmaster/metrics/metrics.h"

namespace ringmaster::metrics {

enum class Type : uint8_t { counter, gauge, histogram };

class TextWriter;  // src/metrics/text_writer.h: the format, written only by Registry::render()

// The samples of one labelled family, given to its collect function at render time.
// `labels` is preformatted: `service="a"` (values through label_value()), or empty.
class Samples {
 public:
  void add(std::string_view labels, uint64_t value);
  void add(std::string_view labels, int64_t value);
  // A histogram's samples (buckets, _sum, _count) summed over `parts`, labels before le.
  void add_histogram(std::string_view labels, std::span<const Histogram* const> parts);

 private:
  friend class Registry;
  Samples(TextWriter& out, std::string_view name) : out_(out), name_(name) {}
  TextWriter& out_;
  std::string_view name_;
};

class Registry {
 public:
  using Collect = std::function<void(Samples&)>;
  using Parts = std::function<void(std::vector<const Histogram*>&)>;

  // One unlabelled sample, read at render time.
  void counter(std::string name, std::string help, std::function<uint64_t()> read);
  void gauge(std::string name, std::string help, std::function<int64_t()> read);
  // One unlabelled histogram summed over the parts `parts` appends (one per reactor).
  void histogram(std::string name, std::string help, Parts parts);
  // A family whose samples `collect` adds (labelled, or several read together). With
  // `present`, the family (HELP and TYPE included) is rendered only while present() holds.
  void family(std::string name, Type type, std::string help, Collect collect, std::function<bool()> present = {});

  std::string render() const;
  size_t size() const { return families_.size(); }

 private:
  struct Family {
    std::string name;
    Type type;
    std::string help;
    Collect collect;
    std::function<bool()> present;
  };
  std::vector<Family> families_;
};

}  // namespace ringmaster::metrics
