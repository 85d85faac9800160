// Fleet mode of the coordinator: announce, elect, lead or follow (the protocol is in fleet.h).
//
// Per flush interval:
//   leader:   one multi = the ledger + every target with new requests (its own and the
//             followers' batches it holds). No reads: it is the only writer, so its cached
//             versions stay right; a BADVERSION (an agent re-created a node, an old proxy in a
//             mixed fleet wrote, a follower wrote directly) re-reads just that node.
//   follower: one POST to the leader with the batches it has not acknowledged yet. No
//             ZooKeeper operation at all. If no leader answers for kFallbackMs it writes
//             directly (ledger + targets read first, then the same kind of multi), paced.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>

#include "count_writer.h"
#include "fleet_link.h"
#include "fleet_state.h"
#include "fleet_writer.h"
#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"
#include "ringmaster/discovery/coordinator.h"
#include "target_book.h"
#include "zk_session.h"

namespace ringmaster::discovery {
namespace {

// A follower that hears nothing from a leader this long writes its counts itself.
constexpr int64_t kFallbackMs = 1000;
// Direct writes (no leader) are paced: at most one per proxy this often, with jitter, so a
// leaderless fleet does not hammer one ledger node.
constexpr int64_t kDirectIntervalMs = 1000;
// Unacknowledged batches a follower keeps before it stops making new ones.
constexpr size_t kOutboxBatchesMax = 64;
// On shutdown, how long a follower waits for the leader to acknowledge its last batch.
constexpr int64_t kFinalAckWaitMs = 3000;

// The address peers can reach us at when we bind a wildcard: the local address the kernel
// would use towards the first ZooKeeper host (a UDP connect sends nothing).
std::string routable_host(const std::string& zk) {
  std::string first = split_connect_string(zk).hosts;
  first = first.substr(0, first.find(','));
  auto hp = base::parse_host_port(first);
  auto addr = hp ? base::resolve(*hp) : std::nullopt;
  if (!addr) return "127.0.0.1";
  int fd = ::socket(addr->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "127.0.0.1";
  std::string out = "127.0.0.1";
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  if (::connect(fd, addr->get(), addr->length) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
    std::string ip = base::ip_string(reinterpret_cast<sockaddr*>(&local));
    out = local.ss_family == AF_INET6 ? "[" + ip + "]" : ip;
  }
  ::close(fd);
  return out;
}

}  // namespace

void Coordinator::fleet_start() {
  fleet_ = std::make_unique<FleetState>();
  FleetState& f = *fleet_;
  f.instance = fleet::random_id();
  f.token = fleet::random_id();
  f.proxies_path = options_.fleet_path + "/proxies";
  f.ledger_path = options_.fleet_path + "/ledger";
  book_->set_balance_on_own_requests(true);
  fleet_writer_ = std::make_unique<FleetWriter>(
      *session_, *book_, f, *counts_, [this](const std::string& key) { return target_path(key); }, zk_counters(),
      wall_ms_);
  fleet_client_ = std::make_unique<FleetClient>();
  if (!options_.fleet_listen) return;
  auto address = base::resolve(*options_.fleet_listen);
  if (!address) throw std::runtime_error("--fleet-listen: cannot resolve " + options_.fleet_listen->to_string());
  fleet_server_ = std::make_unique<FleetServer>(
      [this](std::string_view body, std::string* answer) { return answer_report(body, answer); });
  std::string error;
  if (!fleet_server_->listen(*address, &error)) throw std::runtime_error("--fleet-listen: " + error);
  std::string host = options_.fleet_listen->host;
  if (host == "0.0.0.0" || host == "::" || host == "[::]") host = routable_host(options_.zk);
  f.announce_address = base::HostPort{host, fleet_server_->port()}.to_string();
  fleet_server_->start();
  RM_LOG_INFO("fleet: instance %s, listening for followers on %s", f.instance.c_str(), f.announce_address.c_str());
}

void Coordinator::fleet_reset_session() {
  // A new session: our node and our leadership went with the old one.
  FleetState& f = *fleet_;
  f.self_node.clear();
  f.create_uncertain = false;
  if (f.is_leader) step_down();
  f.leader_node.clear();
}

bool Coordinator::read_fleet() {
  FleetState& f = *fleet_;
  std::vector<std::string> names;
  ZkCode rc = session_->get_children(f.proxies_path, &names, true);
  zk_children_reads_.add();
  if (rc == ZkCode::no_node) {
    session_->ensure_path(f.proxies_path);
    zk_other_ops_.add();
    rc = session_->get_children(f.proxies_path, &names, true);
    zk_children_reads_.add();
  }
  if (rc != ZkCode::ok) {
    zk_errors_.add();
    if (zk_connection_problem(rc)) need_full_read_ = true;
    return false;
  }
  fleet::Election e = fleet::elect(names, f.instance);
  f.members = e.members;
  f.live_instances.clear();
  for (const std::string& n : names) {
    if (auto m = fleet::parse_member(n)) f.live_instances.push_back(m->instance);
  }
  f.self_node = e.self ? e.self->name : "";
  f.create_uncertain = false;  // this list, read after the create, says whether it landed
  if (f.self_node.empty()) fleet_register();
  std::string leader = e.leader ? e.leader->name : "";
  if (leader == f.leader_node) return true;
  f.leader_node = leader;
  f.leader_changes.add();
  bool me = e.leader && e.self && e.leader->name == e.self->name;
  if (me) {
    become_leader();
    return true;
  }
  if (f.is_leader) step_down();
  f.leader = {};
  f.leader_received = 0;
  f.leader_unreachable = false;
  f.last_report_ok_ms = clock_ms_();  // a grace period before falling back to direct writes
  fleet_client_->close();
  if (leader.empty()) {
    RM_LOG_INFO("fleet: %zu proxies, no leader", f.members);
    return true;
  }
  std::string data;
  ZkStat stat;
  rc = session_->get(f.proxies_path + "/" + leader, &data, &stat, false);
  zk_reads_.add();
  if (rc == ZkCode::ok) {
    if (auto a = fleet::decode_announcement(data)) f.leader = *a;
  } else if (rc != ZkCode::no_node) {
    zk_errors_.add();
    f.leader_node.clear();  // read it again with the next list
    if (zk_connection_problem(rc)) need_full_read_ = true;
  }
  RM_LOG_INFO("fleet: %zu proxies, leader %s at %s", f.members, f.leader.instance.c_str(), f.leader.address.c_str());
  return true;
}

void Coordinator::fleet_register() {
  FleetState& f = *fleet_;
  if (f.create_uncertain || !session_->connected()) return;
  fleet::Announcement a{f.instance, f.announce_address, f.token};
  std::string created;
  ZkCode rc = session_->create(f.proxies_path + "/" + fleet::member_prefix(!f.announce_address.empty(), f.instance),
                               fleet::encode_announcement(a), CreateMode::ephemeral_sequential, &created);
  zk_other_ops_.add();
  if (rc == ZkCode::ok) {
    f.self_node = created.substr(created.rfind('/') + 1);
    RM_LOG_INFO("fleet: joined as %s", f.self_node.c_str());
    return;  // the children watch brings the list with us in it
  }
  zk_errors_.add();
  // Cut off: it may exist. The next list (our instance is in the name) tells; the full read
  // after the reconnect (or the next flush interval) brings it.
  if (zk_connection_problem(rc)) f.create_uncertain = true;
  need_full_read_ = true;
}

void Coordinator::become_leader() {
  FleetState& f = *fleet_;
  RM_LOG_INFO("fleet: leading %zu proxies", f.members);
  f.is_leader = true;
  f.leader_ready = false;
  f.leader = {f.instance, f.announce_address, f.token};
}

void Coordinator::step_down() {
  FleetState& f = *fleet_;
  RM_LOG_INFO("fleet: no longer leading");
  f.is_leader = false;
  f.leader_ready = false;
  // Our own announcement is no one's leader now. Kept, a former leader whose session expired
  // would report its batches to its own listener (409: not leading) until a children list
  // names the next leader. A follower's leader is not cleared by its own expiry: that
  // proxy's session, and its leadership, are another's (fleet_reset_session).
  f.leader = {};
  f.leader_unreachable = false;
  std::lock_guard lock(f.mutex);
  f.shared.serving = false;
  f.shared.inbox.clear();  // followers send what is not applied to the next leader
}

void Coordinator::fleet_tick(int64_t now) {
  FleetState& f = *fleet_;
  if (f.is_leader) {
    if (!session_->connected()) return;
    if (!f.leader_ready) {
      // Taking over: the ledger and every count, once. From then on this proxy writes alone.
      if (!fleet_writer_->load_ledger()) return;
      counts_->refresh_counts();
      f.leader_ready = true;
      publish_fleet_view();
    }
    // Paced by credit: each tick earns interval / leader interval of a write, so a leader
    // interval of 1.1 ticks writes on 10 ticks out of 11, not on every second one.
    f.write_credit = std::min(2.0, f.write_credit + static_cast<double>(options_.flush_interval_ms) /
                                                        static_cast<double>(leader_interval_ms()));
    if (f.write_credit >= 0.999) {
      f.write_credit -= 1.0;
      fleet_writer_->write(true);
    }
    return;
  }
  follow(now);
}

int64_t Coordinator::leader_interval_ms() const {
  // The fleet spends on ZooKeeper what one proxy alone would: one write per flush interval.
  // Followers send ZooKeeper nothing but their sessions' pings (every third of the session
  // timeout when idle), so the leader leaves room for those; never slower than 2 intervals.
  const FleetState& f = *fleet_;
  double budget = 1000.0 / options_.flush_interval_ms;  // requests/s
  uint32_t timeout = session_->negotiated_timeout_ms();
  if (timeout == 0) timeout = options_.session_timeout_ms;
  double pings = f.members > 1 ? static_cast<double>(f.members - 1) * 3000.0 / timeout : 0.0;
  double left = std::max(budget - pings, budget / 2);
  return std::max<int64_t>(options_.flush_interval_ms, static_cast<int64_t>(1000.0 / left));
}

void Coordinator::follow(int64_t now) {
  FleetState& f = *fleet_;
  if (f.uncertain) {
    // Nothing new is batched or sent until our cut-off write is settled.
    if (session_->connected()) fleet_writer_->write(false);
    return;
  }
  // While the leader applies nothing (it lost ZooKeeper), batches pile up unacknowledged;
  // past a bound, new requests wait unbatched and go out later as one batch.
  if (f.outbox.size() < kOutboxBatchesMax) {
    fleet::Deltas deltas = book_->take_batch();
    if (!deltas.empty()) f.outbox.push(fleet::Batch{++f.next_seq, std::move(deltas)});
  }
  bool want_counts = now - f.last_counts_ms >= options_.refresh_interval_ms;
  if (!f.leader.address.empty() && (!f.outbox.empty() || want_counts) && report_to_leader(now, want_counts)) return;
  if (f.outbox.empty()) return;
  bool leader_silent = f.leader.address.empty() || now - f.last_report_ok_ms >= kFallbackMs;
  if (!leader_silent || !session_->connected() || now < f.next_direct_ms) return;
  f.direct_flushes.add();
  fleet_writer_->write(false);
  static thread_local std::minstd_rand jitter(static_cast<unsigned>(now));
  f.next_direct_ms = now + kDirectIntervalMs + static_cast<int64_t>(jitter() % (kDirectIntervalMs / 2));
}

bool Coordinator::report_to_leader(int64_t now, bool want_counts) {
  FleetState& f = *fleet_;
  fleet::Report report{f.instance, f.leader.token, f.outbox.after(f.leader_received), want_counts};
  std::string error;
  int64_t timeout = std::clamp<int64_t>(options_.flush_interval_ms, 50, 1000);
  auto reply = fleet_client_->post(f.leader.address, fleet::encode_report(report), timeout, &error);
  std::optional<fleet::Answer> answer;
  if (reply && reply->status == 200) answer = fleet::decode_answer(reply->body);
  if (!answer || answer->leader != f.leader.instance) {
    f.reports_failed.add();
    f.leader_received = 0;  // whoever answers next gets everything again
    std::string why = reply ? "status " + std::to_string(reply->status) : error;
    if (!f.leader_unreachable) {
      RM_LOG_WARN("fleet: leader %s at %s does not answer (%s); counts are written directly "
                  "after %lld ms", f.leader.instance.c_str(), f.leader.address.c_str(), why.c_str(),
                  static_cast<long long>(kFallbackMs));
      f.leader_unreachable = true;
    }
    return false;
  }
  if (f.leader_unreachable) RM_LOG_INFO("fleet: leader %s answers again", f.leader.instance.c_str());
  f.leader_unreachable = false;
  f.reports_ok.add();
  f.last_report_ok_ms = now;
  fleet::Deltas acked = f.outbox.ack_through(answer->applied);
  uint64_t n = 0;
  for (const auto& [name, k] : acked) n += k;
  flushed_requests_.add(n);
  book_->on_acked(acked);
  f.leader_received = answer->received;
  if (answer->counts) {
    for (const auto& [name, count] : *answer->counts) book_->on_count(name, count);
    f.last_counts_ms = now;
  }
  return true;
}

void Coordinator::publish_fleet_view() {
  FleetState& f = *fleet_;
  std::map<std::string, uint64_t> counts;
  for (const TargetBook::Row& row : book_->rows()) {
    if (row.member && row.readable) counts[row.name] = row.count;
  }
  std::lock_guard lock(f.mutex);
  f.shared.serving = f.is_leader && f.leader_ready;
  f.shared.counts = std::move(counts);
}

int Coordinator::answer_report(std::string_view body, std::string* answer) {
  // Fleet listener thread.
  FleetState& f = *fleet_;
  std::optional<fleet::Report> report = fleet::decode_report(body);
  std::lock_guard lock(f.mutex);
  if (!report) {
    f.reports_refused.add();
    return 400;
  }
  if (!f.shared.serving) return 409;  // not (yet) the leader: the follower looks again
  if (report->token != f.token) {
    f.reports_refused.add();
    return 403;
  }
  uint64_t applied = f.shared.committed.seq(report->instance);
  if (!f.shared.inbox.accept(report->instance, report->batches, applied)) {
    f.reports_refused.add();
    return 503;
  }
  f.batches_received.add(report->batches.size());
  fleet::Answer a;
  a.leader = f.instance;
  a.applied = applied;
  a.received = f.shared.inbox.received(report->instance, applied);
  if (report->want_counts) a.counts = f.shared.counts;
  *answer = fleet::encode_answer(a);
  return 200;
}

void Coordinator::fleet_final() {
  // The reactors have stopped: everything they counted is in the book.
  FleetState& f = *fleet_;
  if (f.is_leader) {
    if (session_->connected()) fleet_writer_->write(true);
    return;
  }
  // Waits for the leader's acknowledgements on the loop's clock and pause (the system's, or
  // a test's): at most kFinalAckWaitMs on that clock, and as many rounds as fit in it, so a
  // clock that does not move ends the wait too.
  const int64_t step_ms = std::max<uint32_t>(options_.flush_interval_ms / 4, 5);
  const int64_t deadline = clock_ms_() + kFinalAckWaitMs;
  fleet::Deltas deltas = book_->take_batch();
  if (!deltas.empty()) f.outbox.push(fleet::Batch{++f.next_seq, std::move(deltas)});
  for (int64_t round = 0; round * step_ms < kFinalAckWaitMs; ++round) {
    if (f.outbox.empty() || f.uncertain || f.leader.address.empty() || clock_ms_() >= deadline) break;
    if (!report_to_leader(clock_ms_(), false) || f.outbox.empty()) break;
    pause_ms_(step_ms);
  }
  if ((!f.outbox.empty() || f.uncertain) && session_->connected()) fleet_writer_->write(false);
}

// Rendered only in fleet mode (fleet_ is made before the admin listener starts).
void Coordinator::register_fleet_metrics(metrics::Registry& r) const {
  auto in_fleet = [this] { return fleet_ != nullptr; };
  auto counter = [this, &r, in_fleet](const char* name, const char* help, metrics::Counter FleetState::*member) {
    r.family(name, metrics::Type::counter, help,
             [this, member](metrics::Samples& out) { out.add("", ((*fleet_).*member).get()); }, in_fleet);
  };
  auto gauge = [this, &r, in_fleet](const char* name, const char* help, metrics::Gauge FleetState::*member) {
    r.family(name, metrics::Type::gauge, help,
             [this, member](metrics::Samples& out) { out.add("", ((*fleet_).*member).get()); }, in_fleet);
  };
  gauge("ringmaster_fleet_leader", "1 while this proxy leads the fleet (writes every count).", &FleetState::leader_gauge);
  gauge("ringmaster_fleet_proxies", "Proxies announced under the fleet path.", &FleetState::members_gauge);
  r.family("ringmaster_fleet_reports_total", metrics::Type::counter, "Reports sent to the fleet leader, by result.",
           [this](metrics::Samples& out) {
             out.add("result=\"ok\"", fleet_->reports_ok.get());
             out.add("result=\"error\"", fleet_->reports_failed.get());
           },
           in_fleet);
  counter("ringmaster_fleet_direct_flushes_total", "Flushes written directly because no leader answered.",
          &FleetState::direct_flushes);
  counter("ringmaster_fleet_relayed_requests_total", "Other proxies' requests this proxy wrote as leader.",
          &FleetState::relayed_requests);
  counter("ringmaster_fleet_leader_changes_total", "Leader changes seen.", &FleetState::leader_changes);
  counter("ringmaster_fleet_batches_received_total", "Batches received from followers.", &FleetState::batches_received);
  counter("ringmaster_fleet_reports_refused_total", "Follower reports refused (malformed, wrong token, over bounds).",
          &FleetState::reports_refused);
  counter("ringmaster_fleet_lost_requests_total",
          "Followers' requests for targets whose name no longer resolves (could not be kept).",
          &FleetState::lost_requests);
  counter("ringmaster_fleet_ledger_unreadable_total", "Reads of a ledger node that did not parse.",
          &FleetState::ledger_unreadable);
}

}  // namespace ringmaster::discovery
