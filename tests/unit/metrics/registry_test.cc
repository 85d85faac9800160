// The registry's text: exact bytes for each kind of family, registration order, presence.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "metrics/text_writer.h"
#include "ringmaster/metrics/metrics.h"
#include "ringmaster/metrics/registry.h"

namespace ringmaster::metrics {
namespace {

TEST(Registry, CounterAndGaugeAreReadAtRenderTime) {
  Registry r;
  Counter c;
  Gauge g;
  r.counter("x_total", "Xs.", [&c] { return c.get(); });
  r.gauge("y", "Ys now.", [&g] { return g.get(); });
  c.add(3);
  g.set(-2);
  EXPECT_EQ(r.render(),
            "# HELP x_total Xs.\n# TYPE x_total counter\nx_total 3\n"
            "# HELP y Ys now.\n# TYPE y gauge\ny -2\n");
}

TEST(Registry, LabelledFamilyKeepsItsSamplesInOrder) {
  Registry r;
  r.family("z_total", Type::counter, "Zs by kind.", [](Samples& s) {
    s.add("kind=\"a\"", uint64_t{1});
    s.add("kind=\"" + label_value("b\"c") + "\"", uint64_t{2});
  });
  EXPECT_EQ(r.render(),
            "# HELP z_total Zs by kind.\n# TYPE z_total counter\n"
            "z_total{kind=\"a\"} 1\nz_total{kind=\"b\\\"c\"} 2\n");
}

TEST(Registry, HistogramSumsItsPartsLikeTheTextWriter) {
  Histogram a;
  Histogram b;
  a.observe_us(150);
  b.observe_us(20'000'000);
  const Histogram* parts[] = {&a, &b};
  TextWriter expected;
  expected.histogram("h_seconds", "Hs.", parts);
  Registry r;
  r.histogram("h_seconds", "Hs.", [&](std::vector<const Histogram*>& out) { out.assign({&a, &b}); });
  EXPECT_EQ(r.render(), expected.text());
  EXPECT_NE(r.render().find("h_seconds_count 2\n"), std::string::npos);
}

TEST(Registry, AbsentFamilyWritesNothingNotEvenItsHelp) {
  Registry r;
  bool present = false;
  r.family("maybe", Type::gauge, "Sometimes.", [](Samples& s) { s.add("", int64_t{1}); },
           [&present] { return present; });
  EXPECT_EQ(r.render(), "");
  present = true;
  EXPECT_EQ(r.render(), "# HELP maybe Sometimes.\n# TYPE maybe gauge\nmaybe 1\n");
}

TEST(Registry, FamiliesRenderInRegistrationOrder) {
  Registry r;
  for (const char* name : {"b", "a", "c"}) r.gauge(name, "h", [] { return int64_t{0}; });
  std::string text = r.render();
  EXPECT_LT(text.find("\nb 0"), text.find("\na 0"));
  EXPECT_LT(text.find("\na 0"), text.find("\nc 0"));
}

TEST(RegistryDeathTest, ANameRegisteredTwiceIsABug) {
  Registry r;
  r.counter("dup_total", "h", [] { return uint64_t{0}; });
  EXPECT_DEATH(r.counter("dup_total", "h", [] { return uint64_t{0}; }), "");
}

}  // namespace
}  // namespace ringmaster::metrics
