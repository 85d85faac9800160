#include "ringmaster/metrics/metrics.h"

#include "metrics/text_writer.h"

#include <cstdio>

namespace ringmaster::metrics {

void TextWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void TextWriter::sample(std::string_view name, std::string_view labels, uint64_t value) {
  out_.append(name);
  if (!labels.empty()) out_.append("{").append(labels).append("}");
  out_.append(" ").append(std::to_string(value)).append("\n");
}

void TextWriter::sample(std::string_view name, std::string_view labels, int64_t value) {
  out_.append(name);
  if (!labels.empty()) out_.append("{").append(labels).append("}");
  out_.append(" ").append(std::to_string(value)).append("\n");
}

void TextWriter::histogram(std::string_view name, std::string_view help, std::span<const Histogram* const> parts) {
  family(name, "histogram", help);
  histogram_samples(name, "", parts);
}

void TextWriter::histogram_samples(std::string_view name, std::string_view labels,
                                   std::span<const Histogram* const> parts) {
  std::string bucket = std::string(name) + "_bucket";
  std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  uint64_t cumulative = 0;
  uint64_t sum_us = 0;
  char le[32];
  for (size_t i = 0; i <= Histogram::kBoundsUs.size(); ++i) {
    for (const Histogram* h : parts) cumulative += h->bucket(i);
    if (i < Histogram::kBoundsUs.size()) {
      std::snprintf(le, sizeof le, "le=\"%g\"", static_cast<double>(Histogram::kBoundsUs[i]) / 1e6);
    } else {
      std::snprintf(le, sizeof le, "le=\"+Inf\"");
    }
    sample(bucket, prefix + le, cumulative);
  }
  for (const Histogram* h : parts) sum_us += h->sum_us();
  char sum[48];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sum_us) / 1e6);
  out_.append(name).append("_sum");
  if (!labels.empty()) out_.append("{").append(labels).append("}");
  out_.append(" ").append(sum).append("\n");
  sample(std::string(name) + "_count", labels, cumulative);
}

std::string label_value(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (char c : raw) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void TextWriter::counter(std::string_view name, std::string_view help, uint64_t value) {
  family(name, "counter", help);
  sample(name, "", value);
}

void TextWriter::gauge(std::string_view name, std::string_view help, int64_t value) {
  family(name, "gauge", help);
  sample(name, "", value);
}

}  // namespace ringmaster::metrics
