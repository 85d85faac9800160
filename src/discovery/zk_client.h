// ZkClient: the ZooKeeper operations the coordinator's decisions need, as an interface
// (ARCHITECTURE.md §3, "The coordinator's seam"). ZkSession (zk_session.h) implements it over
// the C client; tests/unit/discovery/fake_zk.h implements it over an in-memory node tree with a
// script of injected results, so the flush, settle and re-read decisions (count_writer.h,
// fleet_writer.h) run in unit tests without a server.
//
// Also the plain types every side shares (ZkCode, ZkStat, ZkEvent, ...): no ZooKeeper header
// here either.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster::discovery {

// ZooKeeper's own return codes (ZOK, ZNONODE, ...), by value; zk_session.cc checks each
// against the C header at compile time.
enum class ZkCode : int {
  ok = 0,
  system_error = -1,
  runtime_inconsistency = -2,
  data_inconsistency = -3,
  connection_loss = -4,
  marshalling_error = -5,
  unimplemented = -6,
  operation_timeout = -7,
  bad_arguments = -8,
  invalid_state = -9,
  api_error = -100,
  no_node = -101,
  no_auth = -102,
  bad_version = -103,
  no_children_for_ephemerals = -108,
  node_exists = -110,
  not_empty = -111,
  session_expired = -112,
  invalid_callback = -113,
  invalid_acl = -114,
  auth_failed = -115,
  closing = -116,
  nothing = -117,
  session_moved = -118,
  not_read_only = -119,
  ephemeral_on_local_session = -120,
  no_watcher = -121,
  reconfig_disabled = -123,
  session_closed_require_sasl_auth = -124,
  throttled = -127,
};

// Upper-case short name as ZooKeeper's Java client spells it: "NONODE", "BADVERSION",
// "CONNECTIONLOSS"; "ERROR(<n>)" for codes not listed above.
std::string zk_code_name(ZkCode code);

// True for the codes that say "the connection or the session is gone", not "the request was
// wrong": the owner waits for the next session event and tries again.
bool zk_connection_problem(ZkCode code);

enum class SessionState {
  closed,       // no handle (before open(), after close())
  connecting,   // handle open, not connected: first connect or reconnecting after a loss
  connected,
  expired,      // the server forgot the session: reopen()
  auth_failed,  // likewise unusable: reopen()
};
const char* session_state_name(SessionState state);

struct ZkStat {
  int64_t czxid = 0;
  int64_t mzxid = 0;
  int64_t ctime_ms = 0;
  int64_t mtime_ms = 0;
  int32_t version = 0;
  int32_t cversion = 0;
  int32_t aversion = 0;
  int64_t ephemeral_owner = 0;  // session id owning an ephemeral node, 0 when persistent
  int32_t data_length = 0;
  int32_t num_children = 0;
  int64_t pzxid = 0;
};

// One thing the watcher saw. Session events carry the new state and an empty path; watch
// events carry the path (relative to the chroot, as ZooKeeper reports it). A watch fires once:
// re-arm it by reading again with watch = true.
struct ZkEvent {
  enum class Type {
    session,       // `state` changed
    created,       // exists() watch: the node appeared
    deleted,       // the node went away
    changed,       // its data changed
    child,         // its list of children changed
    not_watching,  // the server dropped a watch
    lost_events,   // the queue overflowed and events were dropped: re-read everything and
                   // re-arm every watch, as after a reconnect
  };
  Type type = Type::session;
  SessionState state = SessionState::closed;
  std::string path;
};
const char* event_type_name(ZkEvent::Type type);

// ephemeral_sequential: ZooKeeper appends a 10-digit, per-parent increasing counter to the
// name (the recipe for elections: the lowest live counter wins).
enum class CreateMode { persistent, ephemeral, ephemeral_sequential };

// A version argument that matches any version (ZooKeeper's -1). Only for nodes the caller
// owns outright; shared nodes get version-checked writes.
inline constexpr int32_t kAnyVersion = -1;

// One versioned write of a multi_set transaction.
struct ZkSetOp {
  std::string path;
  std::string data;
  int32_t version;
};

// Calls are synchronous and never throw; each returns a ZkCode. A CONNECTIONLOSS answer to a
// write says nothing about whether it was applied (see zk_session.h). One thread only, except
// interrupt().
class ZkClient {
 public:
  using SetOp = ZkSetOp;
  virtual ~ZkClient() = default;

  // ---- The session's lifecycle: its owner's (the coordinator's event loop; see zk_session.h).
  // Starts a new session, connecting in the background (a session event says when it is).
  virtual ZkCode open() = 0;
  // Ends the session (its ephemeral nodes go); no event is queued after it.
  virtual void close() = 0;
  // close() then open(): the way out of `expired`. Events of the old session are dropped.
  virtual ZkCode reopen() = 0;
  virtual bool is_open() const = 0;
  // Wakes a wait_event() in progress (or the next one) without an event. Any thread.
  virtual void interrupt() = 0;
  // The session timeout the server granted (0 before the first connect).
  virtual uint32_t negotiated_timeout_ms() const = 0;
  // The session's id (0 until the server assigned one): the owner of its ephemeral nodes
  // (ZkStat::ephemeral_owner), and what tells a new session from a resumed one.
  virtual int64_t session_id() const = 0;

  // The last session state seen (see SessionState).
  virtual SessionState state() const = 0;
  bool connected() const { return state() == SessionState::connected; }
  // Takes the oldest event, waiting up to timeout_ms (0: just look); nullopt when none came.
  virtual std::optional<ZkEvent> wait_event(int64_t timeout_ms) = 0;

  // Paths are absolute, relative to the chroot. `created` (when given) receives the path the
  // server created (with its counter for sequential nodes).
  virtual ZkCode create(const std::string& path, std::string_view data, CreateMode mode,
                        std::string* created = nullptr) = 0;
  // Creates each missing ancestor of `path` (not `path` itself) as an empty persistent node;
  // NODEEXISTS is success (another client came first). One create() per ancestor.
  ZkCode create_parents(const std::string& path);
  // create_parents(path) plus `path` itself, empty and persistent, NODEEXISTS ignored.
  ZkCode ensure_path(const std::string& path);
  virtual ZkCode get(const std::string& path, std::string* data, ZkStat* stat, bool watch) = 0;
  // Versioned write; on ok, *new_stat (when given) is the node's stat after the write.
  virtual ZkCode set(const std::string& path, std::string_view data, int32_t version, ZkStat* new_stat) = 0;
  virtual ZkCode remove(const std::string& path, int32_t version) = 0;
  // Versioned writes of several nodes in one transaction (one request, one round trip):
  // either all land or none does. The result is the first failing operation's code;
  // (*new_stats)[i] is node i's stat after the write when the result is ok, and
  // *failed_index (when given) the index of the operation that failed (ops.size() when the
  // transaction as a whole did: connection loss, ok).
  virtual ZkCode multi_set(const std::vector<SetOp>& ops, std::vector<ZkStat>* new_stats,
                           size_t* failed_index = nullptr) = 0;
  // Names only (not paths), in the server's order.
  // With `stat`, also the parent's stat (its cversion counts every child created or deleted).
  virtual ZkCode get_children(const std::string& path, std::vector<std::string>* children, bool watch,
                              ZkStat* stat = nullptr) = 0;
  // ok when the node exists, NONODE when not (with watch = true the watch is set in both
  // cases: it fires on creation too).
  virtual ZkCode exists(const std::string& path, ZkStat* stat, bool watch) = 0;
};

}  // namespace ringmaster::discovery
