// The upstream exchange's retry and reuse rules (src/proxy/upstream_rules.h), from tables.
#include <gtest/gtest.h>

#include <string>

#include "proxy/upstream_rules.h"

namespace ringmaster::proxy {
namespace {

struct BreakCase {
  std::string name;
  BrokenExchange facts;
  AfterBreak expected;
};

TEST(UpstreamRules, APickedTargetTakesTheRequestNowOrQueuesItFirstComeFirstServed) {
  struct Case {
    bool others_waiting, idle_connection, can_open;
    Placement expected;
  };
  const Case cases[] = {
      {false, true, false, Placement::send_now},       // an idle connection, even at the limit
      {false, false, true, Placement::send_now},       // a new connection, under the limit
      {false, true, true, Placement::send_now},
      {false, false, false, Placement::wait_in_queue},  // at the limit, none idle
      {true, true, true, Placement::wait_in_queue},     // others were first
      {true, false, true, Placement::wait_in_queue},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(place(c.others_waiting, [&] { return c.idle_connection; }, [&] { return c.can_open; }), c.expected)
        << c.others_waiting << c.idle_connection << c.can_open;
  }
}

TEST(UpstreamRules, NoTargetLeftIs503WithoutTargetsAnd502WhenAllFailed) {
  EXPECT_EQ(status_without_target(0), 503);
  EXPECT_EQ(status_without_target(1), 502);
  EXPECT_EQ(status_without_target(7), 502);
}

TEST(UpstreamRules, WhatABrokenConnectionDoesToItsRequest) {
  BrokenExchange get_fresh;  // GET without a body on a new connection to a known target
  get_fresh.idempotent = true;
  get_fresh.target_known = true;
  get_fresh.can_open = true;
  BrokenExchange get_reused = get_fresh;
  get_reused.reused = true;

  auto with = [](BrokenExchange b, auto change) {
    change(b);
    return b;
  };
  const BreakCase cases[] = {
      {"backend died holding a GET: next target", get_fresh, AfterBreak::next_target},
      {"keep-alive race: same target, fresh connection", get_reused, AfterBreak::fresh_connection},
      {"keep-alive race, no connection free: queue for the same target",
       with(get_reused, [](BrokenExchange& b) { b.can_open = false; }), AfterBreak::wait_for_target},
      {"keep-alive race, target left the snapshot: next target",
       with(get_reused, [](BrokenExchange& b) { b.target_known = false; }), AfterBreak::next_target},
      {"a response byte came back: never resent",
       with(get_reused, [](BrokenExchange& b) { b.got_bytes = true; }), AfterBreak::fail},
      {"part of the answer went out: never resent",
       with(get_fresh, [](BrokenExchange& b) { b.response_started = true; }), AfterBreak::fail},
      {"POST: never resent", with(get_reused, [](BrokenExchange& b) { b.idempotent = false; }), AfterBreak::fail},
      {"PUT with a body (idempotent, but the body is gone): never resent",
       with(get_reused, [](BrokenExchange& b) { b.has_body = true; }), AfterBreak::fail},
      {"fresh connection, no connection free: still the next target",
       with(get_fresh, [](BrokenExchange& b) { b.can_open = false; }), AfterBreak::next_target},
  };
  for (const BreakCase& c : cases) {
    EXPECT_EQ(after_break(c.facts), c.expected) << c.name;
  }
}

TEST(UpstreamRules, OnlyACleanlyEndedExchangeGoesBackToThePool) {
  EndedExchange clean;
  clean.backend_keep_alive = true;
  clean.request_complete = true;
  clean.idle_cap = 4;
  EXPECT_TRUE(reusable(clean));
  struct Case {
    const char* name;
    void (*change)(EndedExchange&);
  };
  const Case spoilers[] = {
      {"backend asked to close", [](EndedExchange& e) { e.backend_keep_alive = false; }},
      {"answered before the whole body went out", [](EndedExchange& e) { e.request_complete = false; }},
      {"request bytes still queued", [](EndedExchange& e) { e.request_bytes_left = true; }},
      {"bytes past the end of the response", [](EndedExchange& e) { e.response_bytes_left = true; }},
      {"draining", [](EndedExchange& e) { e.draining = true; }},
      {"no reuse configured", [](EndedExchange& e) { e.idle_cap = 0; }},
  };
  for (const Case& s : spoilers) {
    EndedExchange e = clean;
    s.change(e);
    EXPECT_FALSE(reusable(e)) << s.name;
  }
}

}  // namespace
}  // namespace ringmaster::proxy
