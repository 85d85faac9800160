// The agent's loop (AgentLoop, src/discovery/agent_loop.h) against the scripted FakeZk, with a
// clock the test moves and a health probe it scripts (ARCHITECTURE.md §3, "The agent's seam").
// Each test checks what an operator or a proxy sees in ZooKeeper: whether the backend's node
// is there, which session owns it, and the count it holds. Nothing sleeps.
#include "discovery/agent_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fake_zk.h"

namespace ringmaster::discovery {
namespace {

constexpr int64_t kTurnMs = 50;          // the agent's loop turns at least this often
constexpr int64_t kOtherSession = 777;  // another agent's (or a crashed run's) session
const std::string kNode = "/targets/127.0.0.1:8080";

struct AgentRig {
  AgentRig() : zk(/*open=*/false) {
    options.zk = "fake:2181";
    options.target = base::HostPort{"127.0.0.1", 8080};
    options.session_timeout_ms = 4000;
  }
  // Health checks through the scripted probe (`up`), every interval.
  void with_health(uint32_t rise, uint32_t fall) {
    options.health_path = "/healthz";
    options.health_interval_ms = 1000;
    options.health_rise = rise;
    options.health_fall = fall;
  }
  AgentLoop& agent() {
    if (!loop) {
      loop = std::make_unique<AgentLoop>(
          options, zk, [this] { return now; }, [this] { return up ? std::string() : std::string("status 503"); },
          [] { return ZkCode::no_node; }, stop);
      loop->begin();
    }
    return *loop;
  }
  // One turn of the loop, `advance_ms` later. A connection lost meanwhile is back first (the
  // real client reconnects within the session by itself).
  void turn(int64_t advance_ms = kTurnMs) {
    now += advance_ms;
    if (zk.state() == SessionState::connecting && reachable) zk.reconnect();
    agent().run_once();
  }
  void turns(int n) {
    for (int i = 0; i < n; ++i) turn();
  }
  bool registered() const { return zk.has(kNode); }
  // Ours: the node is there, owned by the agent's current session.
  bool ours() const { return registered() && zk.stat(kNode).ephemeral_owner == zk.session_id(); }

  int64_t now = 1'000'000;
  FakeZk zk;
  AgentOptions options;
  std::atomic<bool> stop{false};
  bool up = true;
  bool reachable = true;  // turn() reconnects a lost connection
  std::unique_ptr<AgentLoop> loop;
};

using Names = std::vector<std::string>;

TEST(AgentLoop, RegistersItsNodeAndReCreatesItAfterAnExpiryWithTheLastCount) {
  AgentRig rig;
  testing::internal::CaptureStderr();
  rig.turns(2);
  std::string logged = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(rig.ours()) << rig.zk.log_text();
  EXPECT_EQ(rig.zk.data(kNode), "0");
  // No step before the session's "connected" is handled (the setup comes first).
  EXPECT_EQ(logged.find("step failed"), std::string::npos) << logged;
  EXPECT_EQ(rig.zk.log().front(), "0 create /targets -> OK");
  rig.zk.put(kNode, "42");  // a proxy's flush; the agent reads it back within a second
  rig.turns(25);
  rig.zk.expire_session();
  rig.turns(2);
  EXPECT_EQ(rig.zk.sessions_opened(), 2);
  EXPECT_TRUE(rig.ours()) << rig.zk.log_text();
  EXPECT_EQ(rig.zk.data(kNode), "42") << "a re-created node starts from the last count";
}

TEST(AgentLoop, RemovesACrashedRunsLeftoverAndCarriesItsCountOver) {
  AgentRig rig;
  rig.zk.put(kNode, "17", kOtherSession);  // the last run's node, its session not timed out yet
  rig.turns(2);
  EXPECT_TRUE(rig.ours()) << rig.zk.log_text();
  EXPECT_EQ(rig.zk.data(kNode), "17");
}

TEST(AgentLoop, WaitsForAnotherLiveAgentsNodeInsteadOfFightingOverIt) {
  AgentRig rig;
  rig.turns(2);
  ASSERT_TRUE(rig.ours());
  rig.zk.put(kNode, "5");
  rig.zk.recreate(kNode, "9", kOtherSession);  // another agent for this target took it
  rig.turns(40);
  EXPECT_EQ(rig.zk.stat(kNode).ephemeral_owner, kOtherSession) << rig.zk.log_text();
  EXPECT_EQ(rig.zk.data(kNode), "9");
  rig.zk.erase(kNode);  // it went
  rig.turns(2);
  EXPECT_TRUE(rig.ours()) << rig.zk.log_text();
}

TEST(AgentLoop, HealthChecksRegisterAndDeregisterAndTheCountSurvivesAFlap) {
  AgentRig rig;
  rig.with_health(/*rise=*/2, /*fall=*/3);
  rig.turns(2);
  EXPECT_FALSE(rig.registered()) << "starts unhealthy: one good check of two";
  rig.turn(1000);
  ASSERT_TRUE(rig.ours()) << rig.zk.log_text();
  rig.zk.put(kNode, "30");
  rig.turns(25);
  rig.up = false;
  rig.turn(1000);
  rig.turn(1000);
  EXPECT_TRUE(rig.registered()) << "two failures of three";
  rig.turn(1000);
  EXPECT_FALSE(rig.registered()) << rig.zk.log_text();
  rig.up = true;
  rig.turn(1000);
  EXPECT_FALSE(rig.registered());
  rig.turn(1000);
  EXPECT_TRUE(rig.ours()) << rig.zk.log_text();
  EXPECT_EQ(rig.zk.data(kNode), "30") << "re-registered from the last count";
}

// No server answers: each handle gets a connect window (2/3 of the session timeout per host,
// here 2,666 ms, so closed on the first turn at 2,700 ms), then the agent backs off 250 ms
// doubling to 4 s before it opens another, forever; once one connects it registers.
TEST(AgentLoop, AnUnreachableEnsembleIsRetriedWithABackoffThatDoublesTo4s) {
  AgentRig rig;
  rig.zk.set_reachable(false);
  rig.reachable = false;
  std::vector<int64_t> opened_ms;
  for (int i = 0; i < 30'000 / kTurnMs; ++i) {
    int before = rig.zk.sessions_opened();
    rig.turn();
    if (rig.zk.sessions_opened() != before) opened_ms.push_back(rig.now);
  }
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < opened_ms.size(); ++i) gaps.push_back(opened_ms[i] - opened_ms[i - 1] - 2700);
  EXPECT_EQ(gaps, (std::vector<int64_t>{250, 500, 1000, 2000, 4000, 4000}));
  EXPECT_FALSE(rig.registered());
  rig.zk.set_reachable(true);
  rig.reachable = true;
  rig.turns(140);  // the 4 s backoff, then a connect
  EXPECT_TRUE(rig.ours()) << rig.zk.log_text();
}

// Once connected, a lost connection is the client's to repair within the session: the agent
// keeps the handle (no new session, however long), and its node is still ours after.
TEST(AgentLoop, ALostConnectionKeepsTheSessionAndTheNode) {
  AgentRig rig;
  rig.turns(2);
  ASSERT_TRUE(rig.ours());
  int64_t session = rig.zk.session_id();
  rig.zk.disconnect();
  rig.reachable = false;
  rig.turns(200);  // 10 s
  EXPECT_EQ(rig.zk.sessions_opened(), 1);
  rig.reachable = true;
  rig.turns(2);
  EXPECT_EQ(rig.zk.session_id(), session);
  EXPECT_TRUE(rig.ours()) << rig.zk.log_text();
}

TEST(AgentLoop, StoppingDeletesTheNodeAndClosesTheSession) {
  AgentRig rig;
  rig.turns(2);
  ASSERT_TRUE(rig.ours());
  rig.stop = true;
  rig.agent().run_final();
  EXPECT_FALSE(rig.registered());
  EXPECT_FALSE(rig.zk.is_open());
}

// Tables: one operation of a scenario meets a session expiry, a connection loss (applied or
// not; the connection drops and comes back on the next turn) or an operation timeout
// (applied or not; the connection stays). At the end the node is there once, owned by the
// agent's current session, holding the count. One exception, by design (agent.h): an expiry
// between a proxy's write and the agent's read of it re-creates the node from the count the
// agent had read (0); the proxies write it back up from their floor (TargetBook), not the
// agent.
struct Fault {
  FakeZk::Fault fault;
  const char* what;
};
const std::vector<Fault> kFaults = {
    {{ZkCode::session_expired}, "session expired"},
    {{ZkCode::connection_loss, false, true}, "connection loss, not applied"},
    {{ZkCode::connection_loss, true, true}, "connection loss, applied"},
    {{ZkCode::operation_timeout, false, false}, "operation timeout, not applied"},
    {{ZkCode::operation_timeout, true, false}, "operation timeout, applied"},
};

// A scenario: turns of the loop with what others do meanwhile. It sets *written to the
// operations done when a proxy writes the count (when it does; left as is otherwise).
using Scenario = std::function<void(AgentRig& rig, size_t* written)>;

// Runs `scenario` with each fault at each of its steps and checks the node ends with `count`.
void each_fault_at_each_step(const Scenario& scenario, const std::string& count) {
  // Without a fault: how many steps, and between which the count is written and read back.
  size_t steps = 0;
  size_t written = SIZE_MAX;
  size_t read = 0;
  {
    AgentRig dry;
    scenario(dry, &written);
    ASSERT_TRUE(dry.ours()) << dry.zk.log_text();
    ASSERT_EQ(dry.zk.data(kNode), count);
    steps = dry.zk.steps();
    const std::vector<std::string>& log = dry.zk.log();
    for (read = std::min(written, log.size()); read < log.size(); ++read) {
      if (log[read] == std::to_string(read) + " get " + kNode + " -> OK") break;
    }
  }
  ASSERT_GT(steps, 4u);
  for (const Fault& f : kFaults) {
    for (size_t step = 0; step < steps; ++step) {
      SCOPED_TRACE(std::string(f.what) + " at step " + std::to_string(step));
      AgentRig rig;
      rig.zk.fail_at(step, f.fault);
      size_t ignored = 0;
      scenario(rig, &ignored);
      EXPECT_TRUE(rig.ours()) << rig.zk.log_text();
      EXPECT_EQ(rig.zk.children("/targets"), Names{"127.0.0.1:8080"});
      bool unread = f.fault.code == ZkCode::session_expired && step >= written && step <= read;
      EXPECT_EQ(rig.zk.data(kNode), unread ? "0" : count) << rig.zk.log_text();
    }
  }
}

// Registers; a proxy writes 42; the agent reads it back; the session expires; the node is
// re-created from 42.
TEST(AgentLoop, AFaultAtEachStepOfItsLifeLeavesItsNodeOnceWithTheCount) {
  each_fault_at_each_step(
      [](AgentRig& rig, size_t* written) {
        rig.turns(20);
        ASSERT_TRUE(rig.registered()) << rig.zk.log_text();
        *written = rig.zk.steps();
        rig.zk.put(kNode, "42");
        rig.turns(50);
        rig.zk.expire_session();
        rig.turns(70);
      },
      "42");
}

// A crashed run's leftover (count 17) taken over.
TEST(AgentLoop, AFaultAtEachStepOfATakeoverKeepsTheLeftoversCount) {
  each_fault_at_each_step(
      [](AgentRig& rig, size_t*) {
        rig.zk.put(kNode, "17", kOtherSession);
        rig.turns(40);
      },
      "17");
}

// A proxy writes 30, then a health flap (rise 1, fall 1): up, down, up.
TEST(AgentLoop, AFaultAtEachStepOfAHealthFlapKeepsTheCount) {
  each_fault_at_each_step(
      [](AgentRig& rig, size_t* written) {
        rig.with_health(1, 1);
        rig.turns(20);
        ASSERT_TRUE(rig.registered()) << rig.zk.log_text();
        *written = rig.zk.steps();
        rig.zk.put(kNode, "30");
        rig.turns(30);
        rig.up = false;
        rig.turn(1000);
        rig.turns(20);
        rig.up = true;
        rig.turn(1000);
        rig.turns(20);
      },
      "30");
}

// Another tool's layout (nerve: ephemeral sequential <name>_<seq>, README "Other
// registries"): whatever fault meets one step of registering and re-registering after an
// expiry, the agent ends with exactly one registration, its current session's; a create
// whose answer was lost is found again by its owner, not made twice.
TEST(AgentLoop, AFaultAtEachStepOfANerveRegistrationLeavesExactlyOne) {
  auto life = [](AgentRig& rig) {
    rig.options.format = "nerve";
    rig.turns(20);
    rig.zk.expire_session();
    rig.turns(40);
  };
  auto one_of_ours = [](AgentRig& rig) {
    std::vector<std::string> children = rig.zk.children("/targets");
    ASSERT_EQ(children.size(), 1u) << rig.zk.log_text();
    EXPECT_TRUE(children[0].starts_with("127.0.0.1_")) << children[0];
    EXPECT_EQ(rig.zk.stat("/targets/" + children[0]).ephemeral_owner, rig.zk.session_id()) << rig.zk.log_text();
    EXPECT_NE(rig.zk.data("/targets/" + children[0]).find("\"port\":8080"), std::string::npos);
  };
  size_t steps = 0;
  {
    AgentRig dry;
    life(dry);
    one_of_ours(dry);
    steps = dry.zk.steps();
  }
  for (const Fault& f : kFaults) {
    for (size_t step = 0; step < steps; ++step) {
      SCOPED_TRACE(std::string(f.what) + " at step " + std::to_string(step));
      AgentRig rig;
      rig.zk.fail_at(step, f.fault);
      life(rig);
      one_of_ours(rig);
    }
  }
}

}  // namespace
}  // namespace ringmaster::discovery
