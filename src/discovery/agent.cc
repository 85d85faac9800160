// The agent's loop. One thread; every step is a small function over explicit state:
//
//   session:  closed ──open──► connecting ──► connected ◄──► connecting (same session, the
//             C client reconnects by itself)
//             no connect within a window (every host tried once): unreachable →
//             close, back off (250 ms doubling to 4 s), open again — forever.
//             expired / auth failed: open a new session at once; everything below is redone.
//   setup:    once per connection: create <targets_path> (and a missing chroot), then write
//             the content version if it differs.
//   node:     unknown ──get──► absent | ours | foreign
//             absent  + healthy   → create (ephemeral, data = last known count) → ours
//             ours    + unhealthy → delete (version-checked) → absent
//             foreign (ephemeralOwner is another session): the first one seen in a session is
//               a leftover of a crashed run → delete it (version-checked) and carry its count
//               over; any later one means another live agent serves this target → wait for
//               it to go (a watch), never fight over the node.
//   health:   every interval, GET http://target<path>; `rise` 2xx in a row → healthy,
//             `fall` failures in a row → unhealthy. Starts unhealthy; no path → always healthy.
//   stop:     delete our node, close the session, return 0.
//
// Nothing here throws or exits on a ZooKeeper error: a failed step is retried on the next
// session event or after a short delay.
#include "ringmaster/discovery/agent.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <random>
#include <cstring>

#include <nlohmann/json.hpp>

#include "agent_loop.h"
#include "discovery/zk_session.h"
#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"
#include "ringmaster/http/message.h"

namespace ringmaster::discovery {
namespace {

constexpr int64_t kStopPollMs = 50;          // how quickly a stop request is noticed
constexpr int64_t kBackoffFirstMs = 250;
constexpr int64_t kBackoffMaxMs = 4000;
constexpr int64_t kRetryDelayMs = 500;       // after a failed ZooKeeper step
constexpr int kVersionedRetriesMax = 8;      // BADVERSION / NODEEXISTS races before giving up
// Proxies write the node's count every flush interval; re-reading it at once on every write
// (to re-arm the watch) would double ZooKeeper's load per flush. At most this often instead.
constexpr int64_t kCountReadIntervalMs = 1000;
                                             // until the next turn
constexpr size_t kHealthResponseBytesMax = 512;  // enough for the status line

unsigned long long hex_id(int64_t session_id) { return static_cast<unsigned long long>(session_id); }

std::optional<uint64_t> parse_count(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// ---------------------------------------------------------------------------------------
// Health probe: one blocking HTTP/1.1 GET with a deadline. The agent is not the data plane,
// so a plain socket with SO_RCVTIMEO/SO_SNDTIMEO (which also bound connect() on Linux) is
// the simplest thing that is correct.

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool set_socket_timeout(int fd, int64_t ms) {
  if (ms < 1) ms = 1;
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
         setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0;
}

std::string errno_text(int err) { return err == EAGAIN || err == EINPROGRESS ? "timed out" : std::strerror(err); }

// Empty string: healthy (2xx). Otherwise why not.
std::string probe_http(const base::HostPort& target, const std::string& path, int64_t timeout_ms) {
  const int64_t deadline = base::now_ms() + timeout_ms;
  auto address = base::resolve(target);
  if (!address) return "cannot resolve " + target.host;
  Fd fd(::socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return std::string("socket: ") + std::strerror(errno);
  if (!set_socket_timeout(fd.get(), timeout_ms)) return std::string("setsockopt: ") + std::strerror(errno);
  if (::connect(fd.get(), address->get(), address->length) != 0) return "connect: " + errno_text(errno);

  const std::string host = target.to_string();
  const http::LocalRequest probe{"GET", path, host, "ringmaster-agent", /*content_type=*/{}, /*body=*/{},
                                 /*close=*/true};
  base::ByteBuffer bytes;
  http::write_request(probe, bytes);
  std::string_view request = bytes.view();
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "send: " + errno_text(errno);
    sent += static_cast<size_t>(n);
  }

  char response[kHealthResponseBytesMax];
  size_t got = 0;
  while (got < sizeof response && std::memchr(response, '\n', got) == nullptr) {
    int64_t left = deadline - base::now_ms();
    if (left <= 0) return "recv: timed out";
    set_socket_timeout(fd.get(), left);
    ssize_t n = ::recv(fd.get(), response + got, sizeof response - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "recv: " + errno_text(errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  // "HTTP/1.1 200 OK": the status code is the three digits after the first space.
  std::string_view line(response, got);
  line = line.substr(0, line.find('\n'));
  if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ') {
    return got == 0 ? "connection closed without a response" : "not an HTTP response";
  }
  std::string_view code = line.substr(9, 3);
  if (code[0] == '2' && parse_count(code)) return {};
  return "status " + std::string(code);
}

ZkSessionOptions session_options(const AgentOptions& options) {
  ZkSessionOptions o;
  o.connect = options.zk;
  o.session_timeout_ms = options.session_timeout_ms;
  return o;
}

// How long a new handle may try before the agent calls ZooKeeper unreachable, closes it and
// backs off. The C client gives each host up to 2/3 of the session timeout to answer (a
// black-holed host costs that much) and retries refused ones every 1/60 of it, so the window
// lets it try every host of the ensemble once.
// A random (version 4) UUID, Curator's instance id.
std::string random_uuid() {
  std::random_device random;
  auto draw64 = [&random] { return (static_cast<uint64_t>(random()) << 32) | random(); };
  uint64_t hi = draw64();
  uint64_t lo = draw64();
  hi = (hi & ~0xf000ull) | 0x4000ull;                                    // version 4
  lo = (lo & ~(3ull << 62)) | (2ull << 62);                               // RFC 4122 variant
  char text[37];
  std::snprintf(text, sizeof text, "%08llx-%04llx-%04llx-%04llx-%012llx", static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xffff), static_cast<unsigned long long>(hi & 0xffff),
                static_cast<unsigned long long>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return text;
}

std::optional<AgentRegistration> foreign_registration(const AgentOptions& o) {
  using json = nlohmann::json;
  const std::string& host = o.target.host;
  AgentRegistration r;
  if (o.format == "nerve") {
    // nerve's reporter: zk_path + "/" + instance_id + "_", ephemeral sequential.
    std::string name = o.name.empty() ? host : o.name;
    json data = {{"host", host}, {"port", o.target.port}, {"name", name}};
    if (o.weight) data["weight"] = *o.weight;
    r.path = o.targets_path + "/" + name + "_";
    r.mode = CreateMode::ephemeral_sequential;
    r.data = data.dump();
  } else if (o.format == "serverset") {
    json endpoint = {{"host", host}, {"port", o.target.port}};
    json data = {{"serviceEndpoint", endpoint}, {"additionalEndpoints", json::object()}, {"status", "ALIVE"}};
    r.path = o.targets_path + "/member_";
    r.mode = CreateMode::ephemeral_sequential;
    r.data = data.dump();
  } else if (o.format == "curator") {
    // ServiceDiscoveryImpl.registerService: <base>/<name>/<id>, EPHEMERAL for DYNAMIC.
    std::string name = o.name.empty() ? o.targets_path.substr(o.targets_path.rfind('/') + 1) : o.name;
    std::string id = random_uuid();
    json data = {{"name", name},           {"id", id},
                 {"address", host},        {"port", o.target.port},
                 {"sslPort", nullptr},     {"payload", nullptr},
                 {"registrationTimeUTC", std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch()).count()},
                 {"serviceType", "DYNAMIC"}, {"uriSpec", nullptr},
                 {"enabled", true}};
    r.path = o.targets_path + "/" + id;
    r.mode = CreateMode::ephemeral;
    r.data = data.dump();
  } else {
    return std::nullopt;
  }
  return r;
}

int64_t connect_window_ms(const AgentOptions& options) {
  std::string hosts = split_connect_string(options.zk).hosts;
  int64_t host_count = 1 + std::count(hosts.begin(), hosts.end(), ',');
  return std::max<int64_t>(1000, host_count * options.session_timeout_ms * 2 / 3);
}

// ---------------------------------------------------------------------------------------

}  // namespace

AgentLoop::AgentLoop(const AgentOptions& options, ZkClient& session, Clock clock_ms, Probe probe,
                     CreateChroot create_chroot, const std::atomic<bool>& stop)
    : options_(options),
      session_(session),
      clock_ms_(std::move(clock_ms)),
      probe_(std::move(probe)),
      create_chroot_(std::move(create_chroot)),
      stop_(stop),
      node_name_(options.target.to_string()),
      registration_(foreign_registration(options)),
      sequential_(registration_ && registration_->mode == CreateMode::ephemeral_sequential),
      node_path_(registration_ ? (sequential_ ? std::string() : registration_->path)
                               : options.targets_path + "/" + node_name_),
      connect_window_ms_(connect_window_ms(options)),
      backoff_ms_(kBackoffFirstMs),
      healthy_(!options.health_path) {}

void AgentLoop::begin() {
  std::string where = registration_ ? options_.format + " node " + registration_->path + (sequential_ ? "<sequence>" : "")
                                    : "node " + node_path_;
  RM_LOG_INFO("agent for %s: ZooKeeper %s, %s, %s", node_name_.c_str(), options_.zk.c_str(), where.c_str(),
              options_.health_path ? ("health check GET " + *options_.health_path).c_str() : "no health check");
}

void AgentLoop::run_once() {
  int64_t now = clock_ms_();
  if (auto event = session_.wait_event(next_wakeup_ms(now) - now)) {
    handle_event(*event);
    while ((event = session_.wait_event(0))) handle_event(*event);
  }
  if (stop_.load(std::memory_order_acquire)) return;
  now = clock_ms_();
  if (count_read_at_ms_ != 0 && now >= count_read_at_ms_) {
    count_read_at_ms_ = 0;
    if (node_state_ == NodeState::ours) node_state_ = NodeState::unknown;
  }
  maintain_session(now);
  check_health(now);
  // Only once this session's "connected" was handled (on_session_established): the state can
  // say connected a moment before its event arrives, and the per-session bookkeeping (the
  // setup, whose node is ours) is reset by that event.
  if (session_.connected() && established_session_ == session_.session_id()) reconcile(clock_ms_());
}

int64_t AgentLoop::next_wakeup_ms(int64_t now) const {
  int64_t wake = now + kStopPollMs;
  if (options_.health_path) wake = std::min(wake, next_check_ms_);
  if (!session_.is_open()) wake = std::min(wake, reopen_at_ms_);
  return std::max(wake, now);
}

void AgentLoop::handle_event(const ZkEvent& event) {
  RM_LOG_DEBUG("zookeeper event %s state %s path %s", event_type_name(event.type), session_state_name(event.state),
               event.path.c_str());
  switch (event.type) {
    case ZkEvent::Type::session:
      handle_session_event(event.state);
      return;
    case ZkEvent::Type::lost_events:
      setup_pending_ = true;
      node_state_ = NodeState::unknown;
      return;
    case ZkEvent::Type::created:
    case ZkEvent::Type::deleted:
    case ZkEvent::Type::changed:
    case ZkEvent::Type::not_watching:
      // Whatever happened to our node, re-read it (and re-arm the watch) before acting —
      // except a proxy's count write to a node that is ours: that re-read waits (see
      // kCountReadIntervalMs), so a deletion by another client in between is seen at most
      // that much later.
      if (event.path == node_path_ && event.type == ZkEvent::Type::changed && node_state_ == NodeState::ours) {
        if (count_read_at_ms_ == 0) count_read_at_ms_ = clock_ms_() + kCountReadIntervalMs;
        return;
      }
      if (event.path == node_path_) {
        if (event.type == ZkEvent::Type::deleted && node_state_ == NodeState::ours) {
          RM_LOG_WARN("node %s was deleted by another client; checking it again", node_path_.c_str());
        }
        node_state_ = NodeState::unknown;
      }
      return;
    case ZkEvent::Type::child:
      return;
  }
}

void AgentLoop::handle_session_event(SessionState state) {
  switch (state) {
    case SessionState::connected:
      handle_connected_once_ = true;
      backoff_ms_ = kBackoffFirstMs;
      retry_at_ms_ = 0;
      if (session_.session_id() != established_session_) {
        on_session_established();
      } else {
        RM_LOG_INFO("reconnected to ZooKeeper, session 0x%llx resumed", hex_id(established_session_));
        // Watches survive a reconnect (the client re-registers them), but check anyway: the
        // node could have changed hands while we were away.
        setup_pending_ = true;
        node_state_ = NodeState::unknown;
      }
      connection_lost_logged_ = false;
      return;
    case SessionState::connecting:
      if (handle_connected_once_ && !connection_lost_logged_) {
        RM_LOG_WARN("lost the ZooKeeper connection; reconnecting within session 0x%llx (timeout %u ms)",
                    hex_id(established_session_), session_.negotiated_timeout_ms());
        connection_lost_logged_ = true;
      }
      return;
    case SessionState::expired:
    case SessionState::auth_failed:
      RM_LOG_WARN("ZooKeeper session 0x%llx %s; opening a new session (node %s will be re-created)",
                  hex_id(established_session_), state == SessionState::expired ? "expired" : "failed authentication",
                  node_path_.c_str());
      // The server dropped the session's ephemeral node and watches; nothing of it is reusable.
      session_.close();
      node_state_ = NodeState::unknown;
      if (sequential_) node_path_.clear();
      reopen_at_ms_ = state == SessionState::expired ? 0 : clock_ms_() + backoff_ms_;
      return;
    case SessionState::closed:
      return;
  }
}

void AgentLoop::on_session_established() {
  int64_t id = session_.session_id();
  if (established_session_ == 0) {
    RM_LOG_INFO("connected to ZooKeeper, session 0x%llx (timeout %u ms)", hex_id(id), session_.negotiated_timeout_ms());
  } else {
    RM_LOG_INFO("connected to ZooKeeper with new session 0x%llx (timeout %u ms), replacing 0x%llx", hex_id(id),
                session_.negotiated_timeout_ms(), hex_id(established_session_));
  }
  established_session_ = id;
  if (sequential_) node_path_.clear();  // the old session's node went with it
  setup_pending_ = true;
  node_state_ = NodeState::unknown;
  owned_in_session_ = false;
  stale_removed_in_session_ = false;
  waiting_logged_ = false;
}

void AgentLoop::maintain_session(int64_t now) {
  if (!session_.is_open()) {
    if (now < reopen_at_ms_) return;
    ZkCode rc = session_.open();
    if (rc != ZkCode::ok) {
      RM_LOG_ERROR("cannot start a ZooKeeper client for \"%s\": %s; retrying in %lld ms", options_.zk.c_str(),
                   zk_code_name(rc).c_str(), static_cast<long long>(backoff_ms_));
      reopen_at_ms_ = now + backoff_ms_;
      backoff_ms_ = std::min(backoff_ms_ * 2, kBackoffMaxMs);
      return;
    }
    handle_opened_ms_ = now;
    handle_connected_once_ = false;
    return;
  }
  // The C client retries a lost connection by itself, and once a session exists that is what
  // we want (the session, and our node, survive a short outage). Before the first connect
  // there is nothing to keep: close and back off, so an absent ensemble costs little.
  if (!handle_connected_once_ && !session_.connected() && now - handle_opened_ms_ >= connect_window_ms_) {
    RM_LOG_WARN("ZooKeeper %s unreachable; retrying in %lld ms", options_.zk.c_str(),
                static_cast<long long>(backoff_ms_));
    session_.close();
    reopen_at_ms_ = now + backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, kBackoffMaxMs);
  }
}

void AgentLoop::check_health(int64_t now) {
  if (!options_.health_path || now < next_check_ms_) return;
  std::string problem = probe_();
  next_check_ms_ = clock_ms_() + options_.health_interval_ms;
  if (problem.empty()) {
    fail_streak_ = 0;
    ++ok_streak_;
    if (!healthy_ && ok_streak_ >= options_.health_rise) {
      healthy_ = true;
      RM_LOG_INFO("health up: %u successful checks of %s%s", ok_streak_, node_name_.c_str(),
                  options_.health_path->c_str());
    }
  } else {
    ok_streak_ = 0;
    ++fail_streak_;
    RM_LOG_DEBUG("health check failed: %s", problem.c_str());
    if (healthy_ && fail_streak_ >= options_.health_fall) {
      healthy_ = false;
      RM_LOG_WARN("health down: %u failed checks of %s%s (last: %s)", fail_streak_, node_name_.c_str(),
                  options_.health_path->c_str(), problem.c_str());
    }
  }
}

void AgentLoop::reconcile(int64_t now) {
  if (now < retry_at_ms_) return;
  ZkCode rc = ZkCode::ok;
  if (setup_pending_) {
    rc = setup();
    if (rc == ZkCode::ok) setup_pending_ = false;
  }
  if (rc == ZkCode::ok) rc = sync_node();
  if (rc == ZkCode::ok) return;
  // A connection problem is followed by a session event that drives the retry; anything
  // else (an ACL, a parent someone deleted) is retried after a pause, never in a hot loop.
  if (!zk_connection_problem(rc)) {
    RM_LOG_WARN("ZooKeeper step failed: %s; retrying in %lld ms", zk_code_name(rc).c_str(),
                static_cast<long long>(kRetryDelayMs));
  }
  retry_at_ms_ = now + kRetryDelayMs;
}

// ---- setup: targets path, chroot, content version -----------------------------------

ZkCode AgentLoop::setup() {
  ZkCode rc = ensure_targets_path();
  if (rc != ZkCode::ok) return rc;
  if (options_.content_version) rc = write_content_version(*options_.content_version);
  return rc;
}

ZkCode AgentLoop::ensure_targets_path() {
  ZkCode rc = session_.ensure_path(options_.targets_path);
  if (rc != ZkCode::no_node) return rc;
  // NONODE while creating from the root: the chroot itself is missing. ZooKeeper does not
  // create it; the agent, being the first writer anyway, does.
  ConnectString connect = split_connect_string(options_.zk);
  if (connect.chroot.empty()) return rc;
  rc = create_chroot_();
  if (rc != ZkCode::ok) return rc;
  return session_.ensure_path(options_.targets_path);
}

ZkCode AgentLoop::write_content_version(const std::string& version) {
  const std::string& path = options_.cache_version_path;
  for (int attempt = 0; attempt < kVersionedRetriesMax; ++attempt) {
    std::string stored;
    ZkStat stat;
    ZkCode rc = session_.get(path, &stored, &stat, false);
    if (rc == ZkCode::ok) {
      if (stored == version) {
        RM_LOG_INFO("content version at %s is already \"%s\"", path.c_str(), version.c_str());
        return ZkCode::ok;
      }
      rc = session_.set(path, version, stat.version, nullptr);
      if (rc == ZkCode::ok) {
        RM_LOG_INFO("content version at %s set to \"%s\" (was \"%s\")", path.c_str(), version.c_str(), stored.c_str());
        return rc;
      }
      if (rc != ZkCode::bad_version && rc != ZkCode::no_node) return rc;
      continue;  // someone wrote or deleted it meanwhile: look again
    }
    if (rc != ZkCode::no_node) return rc;
    rc = session_.create_parents(path);
    if (rc == ZkCode::ok) rc = session_.create(path, version, CreateMode::persistent);
    if (rc == ZkCode::ok) {
      RM_LOG_INFO("content version at %s created as \"%s\"", path.c_str(), version.c_str());
      return rc;
    }
    if (rc != ZkCode::node_exists) return rc;
  }
  return ZkCode::bad_version;
}

// ---- the node -------------------------------------------------------------------------

ZkCode AgentLoop::sync_node() {
  // A few passes: each step changes node_state_ and the next one acts on it (read, then
  // remove a stale node, then create ours). Races send it back to `unknown`.
  for (int pass = 0; pass < kVersionedRetriesMax; ++pass) {
    ZkCode rc = ZkCode::ok;
    switch (node_state_) {
      case NodeState::unknown:
        rc = refresh_node();
        break;
      case NodeState::absent:
        if (!healthy_) return ZkCode::ok;
        rc = create_node();
        break;
      case NodeState::ours: {
        if (healthy_) return ZkCode::ok;
        bool removed = false;
        rc = delete_own_node(&removed);
        if (removed) RM_LOG_INFO("removed node %s while the backend is unhealthy", node_path_.c_str());
        break;
      }
      case NodeState::foreign:
        if (owned_in_session_ || stale_removed_in_session_) {
          if (!waiting_logged_) {
            RM_LOG_WARN("node %s belongs to session 0x%llx, another live agent for this target? waiting for it to go",
                        node_path_.c_str(), hex_id(node_stat_.ephemeral_owner));
            waiting_logged_ = true;
          }
          return ZkCode::ok;  // refresh_node() left a watch on it
        }
        rc = remove_stale_node();
        break;
    }
    if (rc != ZkCode::ok) return rc;
  }
  return ZkCode::ok;
}

// Reads the node with a watch (data changes and deletion wake us up) and classifies it.
ZkCode AgentLoop::refresh_node() {
  if (sequential_ && node_path_.empty()) {
    ZkCode rc = find_own_sequential_node();
    if (rc != ZkCode::ok || node_path_.empty()) return rc;
  }
  std::string data;
  ZkStat stat;
  ZkCode rc = session_.get(node_path_, &data, &stat, true);
  if (rc == ZkCode::no_node) {
    node_state_ = NodeState::absent;
    if (sequential_) node_path_.clear();
    return ZkCode::ok;
  }
  if (rc != ZkCode::ok) return rc;
  node_stat_ = stat;
  std::optional<uint64_t> count = parse_count(data);
  if (stat.ephemeral_owner == session_.session_id()) {
    node_state_ = NodeState::ours;
    owned_in_session_ = true;
    if (count) last_count_ = *count;  // proxies wrote it: the count to carry over later
    RM_LOG_DEBUG("node %s is ours, count %llu", node_path_.c_str(), static_cast<unsigned long long>(last_count_));
  } else {
    node_state_ = NodeState::foreign;
    foreign_count_valid_ = count.has_value();
    foreign_count_ = count.value_or(0);
  }
  return ZkCode::ok;
}

ZkCode AgentLoop::create_node() {
  ZkCode rc = ZkCode::ok;
  if (registration_) {
    std::string created;
    rc = session_.create(registration_->path, registration_->data, registration_->mode, &created);
    if (rc == ZkCode::ok) {
      node_path_ = created;
      RM_LOG_INFO("registered %s as %s node %s (session 0x%llx)", node_name_.c_str(), options_.format.c_str(),
                  node_path_.c_str(), hex_id(session_.session_id()));
      owned_in_session_ = true;
      node_state_ = NodeState::unknown;
      return ZkCode::ok;
    }
    node_state_ = NodeState::unknown;  // a sequential create cut off is found by its owner
    if (rc == ZkCode::node_exists) return ZkCode::ok;
    if (rc == ZkCode::no_node) setup_pending_ = true;
    return rc;
  }
  rc = session_.create(node_path_, std::to_string(last_count_), CreateMode::ephemeral);
  if (rc == ZkCode::ok) {
    RM_LOG_INFO("%s node %s (count %llu, session 0x%llx)", created_once_ ? "re-created" : "created", node_path_.c_str(),
                static_cast<unsigned long long>(last_count_), hex_id(session_.session_id()));
    created_once_ = true;
    owned_in_session_ = true;
    node_state_ = NodeState::unknown;  // read it back: arms the data watch
    return ZkCode::ok;
  }
  // NODEEXISTS: someone was quicker, or our own create applied before a CONNECTIONLOSS
  // reached us; reading the owner tells which. NONODE: the targets path went away.
  node_state_ = NodeState::unknown;
  if (rc == ZkCode::node_exists) return ZkCode::ok;
  if (rc == ZkCode::no_node) setup_pending_ = true;
  return rc;
}

// A sequential create whose answer was lost (CONNECTIONLOSS) may have made a node nobody knows
// the name of; within the same session it is ours: the one child with our prefix whose
// ephemeral owner is this session. Bounded by the children of the targets path.
ZkCode AgentLoop::find_own_sequential_node() {
  std::vector<std::string> children;
  ZkCode rc = session_.get_children(options_.targets_path, &children, false);
  if (rc == ZkCode::no_node) {
    node_state_ = NodeState::absent;
    return ZkCode::ok;
  }
  if (rc != ZkCode::ok) return rc;
  std::string prefix = registration_->path.substr(options_.targets_path.size() + 1);
  for (const std::string& child : children) {
    if (!child.starts_with(prefix)) continue;
    ZkStat stat;
    std::string path = options_.targets_path + "/" + child;
    rc = session_.exists(path, &stat, false);
    if (rc == ZkCode::ok && stat.ephemeral_owner == session_.session_id()) {
      node_path_ = path;
      return ZkCode::ok;
    }
  }
  node_state_ = NodeState::absent;
  return ZkCode::ok;
}

ZkCode AgentLoop::remove_stale_node() {
  if (registration_) {
    // Another session's registration at our path: never ours to remove (a foreign format's
    // names are random or sequential, so this is someone else's); wait for it to go.
    stale_removed_in_session_ = true;
    return ZkCode::ok;
  }
  // Its count is carried over before the delete is sent: a delete applied but answered
  // CONNECTIONLOSS leaves the node gone and the answer lost, and the count must survive that.
  if (foreign_count_valid_) last_count_ = foreign_count_;
  ZkCode rc = session_.remove(node_path_, node_stat_.version);
  if (rc == ZkCode::bad_version) {  // a proxy just counted into it: read again, retry
    node_state_ = NodeState::unknown;
    return ZkCode::ok;
  }
  if (rc != ZkCode::ok && rc != ZkCode::no_node) return rc;
  stale_removed_in_session_ = true;
  RM_LOG_WARN("removed stale node %s owned by session 0x%llx (left by a previous run; count %llu carried over)",
              node_path_.c_str(), hex_id(node_stat_.ephemeral_owner), static_cast<unsigned long long>(last_count_));
  node_state_ = NodeState::absent;
  return ZkCode::ok;
}

// Version-checked delete of the node if, and only if, it is ours. *removed says whether
// this call deleted it.
ZkCode AgentLoop::delete_own_node(bool* removed) {
  if (removed != nullptr) *removed = false;
  for (int attempt = 0; attempt < kVersionedRetriesMax; ++attempt) {
    ZkCode rc = refresh_node();
    if (rc != ZkCode::ok) return rc;
    if (node_state_ != NodeState::ours) return ZkCode::ok;
    rc = session_.remove(node_path_, node_stat_.version);
    if (rc == ZkCode::ok || rc == ZkCode::no_node) {
      node_state_ = NodeState::absent;
      if (sequential_) node_path_.clear();
      if (removed != nullptr) *removed = rc == ZkCode::ok;
      return ZkCode::ok;
    }
    if (rc != ZkCode::bad_version) return rc;
  }
  return ZkCode::bad_version;
}

void AgentLoop::run_final() {
  RM_LOG_INFO("stopping");
  if (session_.connected()) {
    bool removed = false;
    ZkCode rc = delete_own_node(&removed);
    if (removed) {
      RM_LOG_INFO("removed node %s (count %llu)", node_path_.c_str(), static_cast<unsigned long long>(last_count_));
    } else if (rc != ZkCode::ok) {
      RM_LOG_WARN("could not remove node %s: %s; it goes when the session closes", node_path_.c_str(),
                  zk_code_name(rc).c_str());
    }
  } else if (session_.is_open() && established_session_ != 0) {
    RM_LOG_WARN("not connected to ZooKeeper: node %s, if any, goes when session 0x%llx times out", node_path_.c_str(),
                hex_id(established_session_));
  }
  session_.close();
  RM_LOG_INFO("stopped");
}

namespace {

// A missing chroot: ZooKeeper does not create it; the agent, being the first writer anyway,
// does, through a helper session at the root (bounded by one session timeout, and by stop).
ZkCode create_chroot(const AgentOptions& options, const std::atomic<bool>& stop) {
  ConnectString connect = split_connect_string(options.zk);
  ZkSessionOptions root_options;
  root_options.connect = connect.hosts;
  root_options.session_timeout_ms = options.session_timeout_ms;
  root_options.session_file.clear();  // a helper: the session file names the agent's session
  ZkSession root(root_options);
  if (root.open() != ZkCode::ok) return ZkCode::system_error;
  const int64_t deadline = base::now_ms() + options.session_timeout_ms;
  while (!root.connected()) {
    if (base::now_ms() >= deadline || stop.load(std::memory_order_acquire)) return ZkCode::connection_loss;
    root.wait_event(kStopPollMs);
  }
  ZkCode rc = root.ensure_path(connect.chroot);
  if (rc == ZkCode::ok) RM_LOG_INFO("created the chroot %s", connect.chroot.c_str());
  return rc;
}

}  // namespace

int run_agent(const AgentOptions& options, const std::atomic<bool>& stop) {
  base::set_thread_name("agent");
  ZkSession session(session_options(options));
  AgentLoop agent(
      options, session, base::now_ms,
      [&options] {
        return options.health_path ? probe_http(options.target, *options.health_path, options.health_timeout_ms)
                                   : std::string();
      },
      [&options, &stop] { return create_chroot(options, stop); }, stop);
  agent.begin();
  while (!stop.load(std::memory_order_acquire)) agent.run_once();
  agent.run_final();
  return 0;
}

}  // namespace ringmaster::discovery
