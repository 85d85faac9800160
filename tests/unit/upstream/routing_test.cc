// Routing: Host (exact, then the most specific wildcard, then host-less rules), then the
// longest path prefix, then the default; and the RouteBoard joining configuration and targets.
#include "ringmaster/upstream/routing.h"

#include <gtest/gtest.h>

namespace ringmaster::upstream {
namespace {

enum : int { kApi, kApiV2, kWww, kAnyApi, kStatic, kDeepWild };

Matcher sample(int default_service = -1) {
  return Matcher({{{"api.example.com"}, "/", kApi},
                  {{"api.example.com"}, "/v2/", kApiV2},
                  {{"www.example.com", "example.com"}, "/", kWww},
                  {{"*.example.com"}, "/", kAnyApi},
                  {{"*.deep.example.com"}, "/", kDeepWild},
                  {{}, "/static/", kStatic}},
                 default_service);
}

TEST(Matcher, ExactHostThenLongestPrefix) {
  Matcher m = sample();
  EXPECT_EQ(m.match("api.example.com", "/users"), kApi);
  EXPECT_EQ(m.match("api.example.com", "/v2/users"), kApiV2);
  EXPECT_EQ(m.match("api.example.com", "/v2"), kApi);  // a plain byte prefix: "/v2/" not in "/v2"
  EXPECT_EQ(m.match("example.com", "/"), kWww);
}

TEST(Matcher, HostIsCaseAndPortNormalised) {
  Matcher m = sample();
  EXPECT_EQ(m.match("API.Example.COM:8080", "/x"), kApi);
  EXPECT_EQ(m.match("www.example.com.", "/x"), kWww);
  char buffer[Matcher::kHostBytesMax + 1];
  EXPECT_EQ(Matcher::normalise_host("[::1]:80", buffer), "[::1]");
  EXPECT_EQ(Matcher::normalise_host("Example.com:443", buffer), "example.com");
}

TEST(Matcher, WildcardsMatchSubdomainsMostSpecificFirst) {
  Matcher m = sample();
  EXPECT_EQ(m.match("other.example.com", "/"), kAnyApi);
  EXPECT_EQ(m.match("a.b.example.com", "/"), kAnyApi);
  EXPECT_EQ(m.match("x.deep.example.com", "/"), kDeepWild);
  EXPECT_EQ(m.match("example.org", "/"), -1);
}

TEST(Matcher, HostlessRulesThenDefaultThenNothing) {
  EXPECT_EQ(sample().match("unknown.org", "/static/a.css"), kStatic);
  EXPECT_EQ(sample().match("", "/static/a.css"), kStatic);
  EXPECT_EQ(sample().match("unknown.org", "/other"), -1);
  EXPECT_EQ(sample(kWww).match("unknown.org", "/other"), kWww);
  // A known host whose prefixes do not match falls through to the host-less rules.
  Matcher m({{{"a.com"}, "/api/", 0}, {{}, "/", 1}}, -1);
  EXPECT_EQ(m.match("a.com", "/web"), 1);
}

TEST(Matcher, OverlongHostMatchesNoHostRule) {
  std::string host(300, 'a');
  EXPECT_EQ(sample().match(host, "/static/x"), kStatic);
  EXPECT_EQ(sample().match(host, "/x"), -1);
}

std::shared_ptr<const TargetSnapshot> snapshot_of(uint64_t version) {
  auto s = std::make_shared<TargetSnapshot>();
  s->version = version;
  return s;
}

TEST(RouteBoard, PublishesEachServiceWithItsSourcesTargets) {
  RouteBoard board(1);
  auto a = std::make_shared<ServiceRuntime>("a", "zk:/a", 1);
  auto b = std::make_shared<ServiceRuntime>("b", "zk:/b", 1);
  board.set_services({{a, {"a.com"}, "/"}, {b, {}, "/"}}, -1);
  const RoutingTable* t = board.cell()->load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->route("a.com", "/")->runtime.get(), a.get());
  EXPECT_EQ(t->route("b.com", "/")->runtime.get(), b.get());
  EXPECT_TRUE(t->route("a.com", "/")->targets->targets.empty());
  auto sa = snapshot_of(7);
  board.set_targets("zk:/a", sa);
  t = board.cell()->load();
  EXPECT_EQ(t->route("a.com", "/")->targets.get(), sa.get());
  // A reload keeping "a" keeps its targets; the unchanged snapshot is the same object.
  board.set_services({{a, {"a.com"}, "/x"}}, 0);
  t = board.cell()->load();
  EXPECT_EQ(t->services.size(), 1u);
  EXPECT_EQ(t->route("zzz", "/")->targets.get(), sa.get());
}

// A reload in its two steps (the coordinator's sources, then main's configuration) never
// empties a service: a gone source's targets stay while the configuration reads it, and a
// service whose new source has no targets yet keeps the ones it had until they come.
TEST(RouteBoard, AReloadMovingAServiceToAnotherSourceNeverEmptiesIt) {
  RouteBoard board(1);
  auto a = std::make_shared<ServiceRuntime>("a", "zk:/old", 1);
  board.set_services({{a, {"a.com"}, "/"}}, -1);
  auto old_targets = snapshot_of(1);
  board.set_targets("zk:/old", old_targets);
  board.set_targets("zk:/old", nullptr);  // the coordinator stops reading it
  EXPECT_EQ(board.cell()->load()->route("a.com", "/")->targets.get(), old_targets.get());
  EXPECT_TRUE(board.routes_to("zk:/old"));
  auto moved = std::make_shared<ServiceRuntime>("a", "zk:/new", 1);
  board.set_services({{moved, {"a.com"}, "/"}}, -1);  // zk:/new not read yet
  EXPECT_EQ(board.cell()->load()->route("a.com", "/")->targets.get(), old_targets.get());
  EXPECT_FALSE(board.targets("zk:/old"));
  EXPECT_TRUE(board.routes_to("zk:/old"));
  auto new_targets = snapshot_of(2);
  board.set_targets("zk:/new", new_targets);
  EXPECT_EQ(board.cell()->load()->route("a.com", "/")->targets.get(), new_targets.get());
  EXPECT_FALSE(board.routes_to("zk:/old"));
  // A source nothing reads is dropped at once; a new service starts empty.
  board.set_targets("zk:/other", snapshot_of(3));
  board.set_targets("zk:/other", nullptr);
  EXPECT_FALSE(board.targets("zk:/other"));
  auto b = std::make_shared<ServiceRuntime>("b", "zk:/b", 1);
  board.set_services({{moved, {"a.com"}, "/"}, {b, {"b.com"}, "/"}}, -1);
  EXPECT_TRUE(board.cell()->load()->route("b.com", "/")->targets->targets.empty());
}

TEST(RouteBoard, PublishesEachServicesLimits) {
  RouteBoard board(1);
  auto a = std::make_shared<ServiceRuntime>("a", "static:a", 1);
  auto b = std::make_shared<ServiceRuntime>("b", "static:b", 1);
  ServiceLimits slow;
  slow.upstream_timeout_ms = 9000;
  slow.upstream_max_conns = 0;
  board.set_services({{a, {"a.com"}, "/", true, slow}, {b, {}, "/"}}, -1);
  const RoutingTable* t = board.cell()->load();
  EXPECT_EQ(t->route("a.com", "/")->limits, slow);
  EXPECT_EQ(t->route("b.com", "/")->limits, ServiceLimits{});
  // A reload changing only a limit keeps the runtime (counters, cache) and publishes the limit.
  slow.upstream_timeout_ms = 10;
  board.set_services({{a, {"a.com"}, "/", true, slow}}, -1);
  t = board.cell()->load();
  EXPECT_EQ(t->route("a.com", "/")->runtime.get(), a.get());
  EXPECT_EQ(t->route("a.com", "/")->limits.upstream_timeout_ms, 10u);
}

}  // namespace
}  // namespace ringmaster::upstream
