// The Prometheus text exposition (version 0.0.4), private to the metrics module: only
// Registry::render() writes it (registry.h), so every family has one shape.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "ringmaster/metrics/metrics.h"

namespace ringmaster::metrics {

// Builds Prometheus text exposition (version 0.0.4).
class TextWriter {
 public:
  // Writes "# HELP" and "# TYPE" once per family; call before its samples.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample: name{labels} value. `labels` is preformatted ("target=\"a:1\"") or empty.
  void sample(std::string_view name, std::string_view labels, uint64_t value);
  void sample(std::string_view name, std::string_view labels, int64_t value);
  // A family with one unlabelled sample: family() then sample().
  void counter(std::string_view name, std::string_view help, uint64_t value);
  void gauge(std::string_view name, std::string_view help, int64_t value);
  // A histogram family (name_bucket{le=...}, name_sum in seconds, name_count) summed over
  // `parts` (one per reactor); _count equals the +Inf bucket.
  void histogram(std::string_view name, std::string_view help, std::span<const Histogram* const> parts);
  // The samples alone, with `labels` ("target=\"a:1\"") before le; after family().
  void histogram_samples(std::string_view name, std::string_view labels, std::span<const Histogram* const> parts);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

}  // namespace ringmaster::metrics
