#include "ringmaster/metrics/registry.h"

#include <utility>

#include "metrics/text_writer.h"
#include "ringmaster/base/check.h"

namespace ringmaster::metrics {
namespace {

std::string_view type_name(Type type) {
  switch (type) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void Samples::add(std::string_view labels, uint64_t value) { out_.sample(name_, labels, value); }

void Samples::add(std::string_view labels, int64_t value) { out_.sample(name_, labels, value); }

void Samples::add_histogram(std::string_view labels, std::span<const Histogram* const> parts) {
  out_.histogram_samples(name_, labels, parts);
}

void Registry::counter(std::string name, std::string help, std::function<uint64_t()> read) {
  family(std::move(name), Type::counter, std::move(help),
         [read = std::move(read)](Samples& s) { s.add("", read()); });
}

void Registry::gauge(std::string name, std::string help, std::function<int64_t()> read) {
  family(std::move(name), Type::gauge, std::move(help), [read = std::move(read)](Samples& s) { s.add("", read()); });
}

void Registry::histogram(std::string name, std::string help, Parts parts) {
  family(std::move(name), Type::histogram, std::move(help), [parts = std::move(parts)](Samples& s) {
    std::vector<const Histogram*> all;
    parts(all);
    s.add_histogram("", all);
  });
}

void Registry::family(std::string name, Type type, std::string help, Collect collect, std::function<bool()> present) {
  // A name registered twice would be two families in one exposition, which scrapers reject.
  for (const Family& f : families_) RM_CHECK(f.name != name);
  families_.push_back(Family{std::move(name), type, std::move(help), std::move(collect), std::move(present)});
}

std::string Registry::render() const {
  TextWriter out;
  for (const Family& f : families_) {
    if (f.present && !f.present()) continue;
    out.family(f.name, type_name(f.type), f.help);
    Samples samples(out, f.name);
    f.collect(samples);
  }
  return out.text();
}

}  // namespace ringmaster::metrics
