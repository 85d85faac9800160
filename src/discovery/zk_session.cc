#include "discovery/zk_session.h"

#include <unistd.h>

// The synchronous calls are only declared for the multi-threaded client we link
// (libzookeeper_mt); the header keys them on THREADED.
#ifndef THREADED
#define THREADED 1
#endif
#include <zookeeper/zookeeper.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"

namespace ringmaster::discovery {

// ZkCode spells ZooKeeper's codes by value so that callers need no ZooKeeper header.
static_assert(static_cast<int>(ZkCode::ok) == ZOK);
static_assert(static_cast<int>(ZkCode::system_error) == ZSYSTEMERROR);
static_assert(static_cast<int>(ZkCode::runtime_inconsistency) == ZRUNTIMEINCONSISTENCY);
static_assert(static_cast<int>(ZkCode::data_inconsistency) == ZDATAINCONSISTENCY);
static_assert(static_cast<int>(ZkCode::connection_loss) == ZCONNECTIONLOSS);
static_assert(static_cast<int>(ZkCode::marshalling_error) == ZMARSHALLINGERROR);
static_assert(static_cast<int>(ZkCode::unimplemented) == ZUNIMPLEMENTED);
static_assert(static_cast<int>(ZkCode::operation_timeout) == ZOPERATIONTIMEOUT);
static_assert(static_cast<int>(ZkCode::bad_arguments) == ZBADARGUMENTS);
static_assert(static_cast<int>(ZkCode::invalid_state) == ZINVALIDSTATE);
static_assert(static_cast<int>(ZkCode::api_error) == ZAPIERROR);
static_assert(static_cast<int>(ZkCode::no_node) == ZNONODE);
static_assert(static_cast<int>(ZkCode::no_auth) == ZNOAUTH);
static_assert(static_cast<int>(ZkCode::bad_version) == ZBADVERSION);
static_assert(static_cast<int>(ZkCode::no_children_for_ephemerals) == ZNOCHILDRENFOREPHEMERALS);
static_assert(static_cast<int>(ZkCode::node_exists) == ZNODEEXISTS);
static_assert(static_cast<int>(ZkCode::not_empty) == ZNOTEMPTY);
static_assert(static_cast<int>(ZkCode::session_expired) == ZSESSIONEXPIRED);
static_assert(static_cast<int>(ZkCode::invalid_callback) == ZINVALIDCALLBACK);
static_assert(static_cast<int>(ZkCode::invalid_acl) == ZINVALIDACL);
static_assert(static_cast<int>(ZkCode::auth_failed) == ZAUTHFAILED);
static_assert(static_cast<int>(ZkCode::closing) == ZCLOSING);
static_assert(static_cast<int>(ZkCode::nothing) == ZNOTHING);
static_assert(static_cast<int>(ZkCode::session_moved) == ZSESSIONMOVED);
static_assert(static_cast<int>(ZkCode::not_read_only) == ZNOTREADONLY);
static_assert(static_cast<int>(ZkCode::ephemeral_on_local_session) == ZEPHEMERALONLOCALSESSION);
static_assert(static_cast<int>(ZkCode::no_watcher) == ZNOWATCHER);
static_assert(static_cast<int>(ZkCode::reconfig_disabled) == ZRECONFIGDISABLED);
static_assert(static_cast<int>(ZkCode::session_closed_require_sasl_auth) == ZSESSIONCLOSEDREQUIRESASLAUTH);
static_assert(static_cast<int>(ZkCode::throttled) == ZTHROTTLEDOP);

namespace {

// Node data read in one go up to this; bigger data (ZooKeeper allows ~1 MiB) takes a second
// read sized from the Stat. Our nodes hold a decimal count or a version string.
constexpr int kGetBufferBytes = 1024;
constexpr int32_t kDataBytesMax = 1 << 20;  // ZooKeeper's default jute.maxbuffer

ZkCode to_code(int rc) { return static_cast<ZkCode>(rc); }

// The C client logs through this (its WARN and ERROR lines only: see open()), so its
// complaints land in our log. It retries a refused connect every 1/60 of the session timeout
// and logs each attempt, so a line seen in the last minute is counted, not repeated.
constexpr int64_t kRepeatLogWindowMs = 60000;
constexpr size_t kRepeatLogKeysMax = 64;

struct RepeatedLine {
  int64_t last_logged_ms = 0;
  uint64_t suppressed = 0;
};

void zk_log_line(const char* message) {
  std::string_view text(message);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  // "2026-01-01 10:00:00,123:4242(0x7f..):ZOO_ERROR@fn@123: ..." -> "ZOO_ERROR@fn@123: ...":
  // our log line has its own time, and without them repeats compare equal.
  if (size_t zoo = text.find("ZOO_"); zoo != std::string_view::npos) text.remove_prefix(zoo);

  static std::mutex mutex;  // the client logs from its own threads and from ours
  static std::unordered_map<std::string, RepeatedLine> recent;
  std::lock_guard lock(mutex);
  int64_t now = base::now_ms();
  if (recent.size() >= kRepeatLogKeysMax) recent.clear();
  RepeatedLine& line = recent[std::string(text)];
  if (line.last_logged_ms != 0 && now - line.last_logged_ms < kRepeatLogWindowMs) {
    ++line.suppressed;
    return;
  }
  if (line.suppressed > 0) {
    RM_LOG_WARN("zookeeper client: %.*s (and %llu times in the last minute)", static_cast<int>(text.size()),
                text.data(), static_cast<unsigned long long>(line.suppressed));
  } else {
    RM_LOG_WARN("zookeeper client: %.*s", static_cast<int>(text.size()), text.data());
  }
  line.last_logged_ms = now;
  line.suppressed = 0;
}

void quiet_client_logging_once() {
  static std::once_flag once;
  std::call_once(once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_WARN); });
}

SessionState state_from_zk(int state) {
  if (state == ZOO_CONNECTED_STATE || state == ZOO_READONLY_STATE) return SessionState::connected;
  if (state == ZOO_EXPIRED_SESSION_STATE) return SessionState::expired;
  if (state == ZOO_AUTH_FAILED_STATE) return SessionState::auth_failed;
  return SessionState::connecting;  // CONNECTING, ASSOCIATING, NOTCONNECTED
}

ZkEvent::Type event_type_from_zk(int type) {
  if (type == ZOO_CREATED_EVENT) return ZkEvent::Type::created;
  if (type == ZOO_DELETED_EVENT) return ZkEvent::Type::deleted;
  if (type == ZOO_CHANGED_EVENT) return ZkEvent::Type::changed;
  if (type == ZOO_CHILD_EVENT) return ZkEvent::Type::child;
  if (type == ZOO_SESSION_EVENT) return ZkEvent::Type::session;
  return ZkEvent::Type::not_watching;
}

ZkStat to_stat(const Stat& s) {
  ZkStat out;
  out.czxid = s.czxid;
  out.mzxid = s.mzxid;
  out.ctime_ms = s.ctime;
  out.mtime_ms = s.mtime;
  out.version = s.version;
  out.cversion = s.cversion;
  out.aversion = s.aversion;
  out.ephemeral_owner = s.ephemeralOwner;
  out.data_length = s.dataLength;
  out.num_children = s.numChildren;
  out.pzxid = s.pzxid;
  return out;
}

std::string hex(const unsigned char* bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 15]);
  }
  return out;
}

// write temp + rename, so a reader never sees half a line.
bool write_file_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (std::fclose(f) == 0) && ok;
  if (ok && std::rename(tmp.c_str(), path.c_str()) == 0) return true;
  std::remove(tmp.c_str());
  return false;
}

}  // namespace

ConnectString split_connect_string(std::string_view connect) {
  ConnectString out;
  size_t slash = connect.find('/');
  out.hosts = std::string(connect.substr(0, slash));
  if (slash != std::string_view::npos) out.chroot = std::string(connect.substr(slash));
  if (out.chroot == "/") out.chroot.clear();  // ZooKeeper reads a bare "/" as no chroot
  return out;
}

std::string session_file_from_environment() {
  const char* file = std::getenv("RINGMASTER_ZK_SESSION_FILE");
  return file == nullptr ? std::string() : std::string(file);
}

ZkSession::ZkSession(ZkSessionOptions options) : options_(std::move(options)) {}

ZkSession::~ZkSession() { close(); }

ZkCode ZkSession::open() {
  if (handle_ != nullptr) return ZkCode::ok;
  quiet_client_logging_once();
  state_.store(SessionState::connecting, std::memory_order_release);
  errno = 0;
  handle_ = zookeeper_init2(options_.connect.c_str(), &ZkSession::on_watch,
                            static_cast<int>(options_.session_timeout_ms), nullptr, this, 0, &zk_log_line);
  if (handle_ == nullptr) {
    state_.store(SessionState::closed, std::memory_order_release);
    return errno == EINVAL ? ZkCode::bad_arguments : ZkCode::system_error;
  }
  return ZkCode::ok;
}

void ZkSession::close() {
  if (handle_ != nullptr) {
    // In the multi-threaded client this joins the I/O and completion threads: once it
    // returns, on_watch() cannot run for this handle any more.
    zookeeper_close(handle_);
    handle_ = nullptr;
  }
  state_.store(SessionState::closed, std::memory_order_release);
  session_id_.store(0, std::memory_order_release);
  negotiated_timeout_ms_.store(0, std::memory_order_release);
  std::lock_guard lock(mutex_);
  events_.clear();
  password_.clear();
}

ZkCode ZkSession::reopen() {
  close();
  return open();
}

std::string ZkSession::session_password() {
  std::lock_guard lock(mutex_);
  return password_;
}

void ZkSession::on_watch(_zhandle* zh, int type, int state, const char* path, void* context) {
  auto* self = static_cast<ZkSession*>(context);
  ZkEvent event;
  event.type = event_type_from_zk(type);
  event.state = state_from_zk(state);
  if (event.type == ZkEvent::Type::session) {
    if (event.state == SessionState::connected) self->on_connected(zh);
    self->state_.store(event.state, std::memory_order_release);
  } else if (path != nullptr) {
    event.path = path;
  }
  self->record(std::move(event));
}

// Completion thread. `zh`, not handle_: this can run before zookeeper_init2() has returned
// the handle to open().
void ZkSession::on_connected(_zhandle* zh) {
  const clientid_t* id = zoo_client_id(zh);
  std::string password(id->passwd, sizeof id->passwd);
  int timeout = zoo_recv_timeout(zh);
  negotiated_timeout_ms_.store(timeout > 0 ? static_cast<uint32_t>(timeout) : 0, std::memory_order_release);
  {
    std::lock_guard lock(mutex_);
    password_ = password;
  }
  session_id_.store(id->client_id, std::memory_order_release);
  // Written before the owner hears "connected", so a test that waits for the agent's
  // "connected" log line finds the file already there.
  if (id->client_id != session_file_written_id_) write_session_file(id->client_id, password);
}

void ZkSession::write_session_file(int64_t id, const std::string& password) {
  if (options_.session_file.empty()) return;
  const char* file = options_.session_file.c_str();
  char id_hex[32];
  std::snprintf(id_hex, sizeof id_hex, "%llx", static_cast<unsigned long long>(id));
  std::string line = std::string(id_hex) + " " +
                     hex(reinterpret_cast<const unsigned char*>(password.data()), password.size()) + "\n";
  if (write_file_atomically(file, line)) {
    session_file_written_id_ = id;
  } else {
    RM_LOG_WARN("cannot write RINGMASTER_ZK_SESSION_FILE %s: %s", file, std::strerror(errno));
  }
}

void ZkSession::record(ZkEvent event) {
  {
    std::lock_guard lock(mutex_);
    if (events_.size() >= options_.event_queue_max) {
      // Bounded: rather than grow, forget the backlog and tell the owner to re-read all.
      events_.clear();
      ZkEvent lost;
      lost.type = ZkEvent::Type::lost_events;
      lost.state = state();
      events_.push_back(std::move(lost));
    }
    events_.push_back(std::move(event));
  }
  wakeup_.notify_one();
}

std::optional<ZkEvent> ZkSession::wait_event(int64_t timeout_ms) {
  std::unique_lock lock(mutex_);
  wakeup_.wait_for(lock, std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms),
                   [this] { return !events_.empty() || interrupted_; });
  if (events_.empty()) {
    interrupted_ = false;
    return std::nullopt;
  }
  ZkEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

void ZkSession::interrupt() {
  {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
  }
  wakeup_.notify_one();
}

ZkCode ZkSession::create(const std::string& path, std::string_view data, CreateMode mode, std::string* created) {
  if (handle_ == nullptr) return ZkCode::invalid_state;
  int flags = mode == CreateMode::persistent ? ZOO_PERSISTENT
              : mode == CreateMode::ephemeral ? ZOO_EPHEMERAL
                                              : ZOO_EPHEMERAL | ZOO_SEQUENCE;
  std::string name(path.size() + 16, '\0');  // room for the 10-digit counter
  int rc = zoo_create(handle_, path.c_str(), data.data() == nullptr ? "" : data.data(), static_cast<int>(data.size()),
                      &ZOO_OPEN_ACL_UNSAFE, flags, name.data(), static_cast<int>(name.size()));
  if (rc == ZOK && created != nullptr) *created = name.c_str();
  return to_code(rc);
}

ZkCode ZkSession::get(const std::string& path, std::string* data, ZkStat* stat, bool watch) {
  if (handle_ == nullptr) return ZkCode::invalid_state;
  std::string buffer(kGetBufferBytes, '\0');
  Stat s{};
  // The data can grow between the two reads; a third try is the last (ZooKeeper caps it).
  for (int attempt = 0; attempt < 3; ++attempt) {
    int length = static_cast<int>(buffer.size());
    int rc = zoo_get(handle_, path.c_str(), watch ? 1 : 0, buffer.data(), &length, &s);
    if (rc != ZOK) return to_code(rc);
    if (s.dataLength <= length || s.dataLength > kDataBytesMax) {
      buffer.resize(length < 0 ? 0 : static_cast<size_t>(length));  // -1: null data
      break;
    }
    buffer.assign(static_cast<size_t>(s.dataLength), '\0');
  }
  if (data != nullptr) *data = std::move(buffer);
  if (stat != nullptr) *stat = to_stat(s);
  return ZkCode::ok;
}

ZkCode ZkSession::set(const std::string& path, std::string_view data, int32_t version, ZkStat* new_stat) {
  if (handle_ == nullptr) return ZkCode::invalid_state;
  Stat s{};
  int rc = zoo_set2(handle_, path.c_str(), data.data() == nullptr ? "" : data.data(), static_cast<int>(data.size()),
                    version, &s);
  if (rc == ZOK && new_stat != nullptr) *new_stat = to_stat(s);
  return to_code(rc);
}

ZkCode ZkSession::multi_set(const std::vector<SetOp>& ops, std::vector<ZkStat>* new_stats, size_t* failed_index) {
  if (failed_index != nullptr) *failed_index = ops.size();
  if (handle_ == nullptr) return ZkCode::invalid_state;
  if (ops.empty()) return ZkCode::ok;
  std::vector<zoo_op_t> zops(ops.size());
  std::vector<zoo_op_result_t> results(ops.size());
  std::vector<Stat> stats(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    zoo_set_op_init(&zops[i], ops[i].path.c_str(), ops[i].data.data(), static_cast<int>(ops[i].data.size()),
                    ops[i].version, &stats[i]);
  }
  int rc = zoo_multi(handle_, static_cast<int>(ops.size()), zops.data(), results.data());
  if (rc != ZOK && failed_index != nullptr) {
    // The failing operation carries its own code; the others say they were rolled back.
    for (size_t i = 0; i < ops.size(); ++i) {
      if (results[i].err != ZOK && results[i].err != ZRUNTIMEINCONSISTENCY) {
        *failed_index = i;
        break;
      }
    }
  }
  if (rc == ZOK && new_stats != nullptr) {
    new_stats->clear();
    for (const Stat& s : stats) new_stats->push_back(to_stat(s));
  }
  return to_code(rc);
}

ZkCode ZkSession::remove(const std::string& path, int32_t version) {
  if (handle_ == nullptr) return ZkCode::invalid_state;
  return to_code(zoo_delete(handle_, path.c_str(), version));
}

ZkCode ZkSession::get_children(const std::string& path, std::vector<std::string>* children, bool watch,
                               ZkStat* stat) {
  if (handle_ == nullptr) return ZkCode::invalid_state;
  String_vector names{};
  Stat s{};
  int rc = zoo_get_children2(handle_, path.c_str(), watch ? 1 : 0, &names, &s);
  if (rc == ZOK && stat != nullptr) *stat = to_stat(s);
  if (rc == ZOK && children != nullptr) {
    children->clear();
    children->reserve(static_cast<size_t>(names.count));
    for (int32_t i = 0; i < names.count; ++i) children->emplace_back(names.data[i]);
  }
  deallocate_String_vector(&names);
  return to_code(rc);
}

ZkCode ZkSession::exists(const std::string& path, ZkStat* stat, bool watch) {
  if (handle_ == nullptr) return ZkCode::invalid_state;
  Stat s{};
  int rc = zoo_exists(handle_, path.c_str(), watch ? 1 : 0, &s);
  if (rc == ZOK && stat != nullptr) *stat = to_stat(s);
  return to_code(rc);
}

}  // namespace ringmaster::discovery
