// ZkSession: a small RAII wrapper over one ZooKeeper C client handle (the multi-threaded
// client, libzookeeper_mt), private to the discovery module. Both the agent and the proxy's
// coordinator own exactly one and use it from exactly one thread, the "owning thread".
//
// Threads. The C client runs two threads of its own per handle: an I/O thread (connects,
// heartbeats, reconnects) and a completion thread that calls our watcher. The watcher only
// records what happened — session state changes and watch events — into a bounded queue;
// the owning thread takes them out with wait_event() and does all the work, so no callback
// ever calls back into ZooKeeper (a synchronous call from the completion thread would
// deadlock: its answer is delivered by that very thread).
//
// Operations are the synchronous C calls. They block the owning thread until the server
// answers or the connection drops (then CONNECTIONLOSS: the request may or may not have been
// applied — use versioned writes and check ownership before assuming either). They never
// throw; each returns a ZkCode.
//
// Sessions. open() starts connecting and returns at once; the I/O thread keeps reconnecting
// within the same session on its own. A session that expired (SessionState::expired) is dead
// for good: reopen() closes the handle and opens a new session, and everything tied to the
// old one — ephemeral nodes, watches — has to be re-done by the owner.
//
// If the environment variable RINGMASTER_ZK_SESSION_FILE is set, every newly established
// session writes "<session id hex> <password hex>\n" there (atomically), so that a test can
// expire the session from another client with the same id and password
// (ZkSessionOptions::session_file).
//
// No ZooKeeper header here: callers see plain types (ZkCode mirrors ZooKeeper's numeric
// return codes, ZkStat its Stat).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct _zhandle;  // zhandle_t of <zookeeper/zookeeper.h>

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

// $RINGMASTER_ZK_SESSION_FILE, or empty.
std::string session_file_from_environment();

struct ZkSessionOptions {
  std::string connect;              // "host:port,host:port[/chroot]"
  uint32_t session_timeout_ms = 10000;
  size_t event_queue_max = 4096;    // beyond this, events collapse into one lost_events
  // Where each newly established session writes "<id hex> <password hex>\n"; empty: nowhere.
  // A helper session (not the process's main one) should clear it.
  std::string session_file = session_file_from_environment();
};

// "h1:1,h2:2/app/x" -> {"h1:1,h2:2", "/app/x"}; chroot is empty when there is none.
struct ConnectString {
  std::string hosts;
  std::string chroot;
};
ConnectString split_connect_string(std::string_view connect);

class ZkSession {
 public:
  explicit ZkSession(ZkSessionOptions options);
  ~ZkSession();
  ZkSession(const ZkSession&) = delete;
  ZkSession& operator=(const ZkSession&) = delete;

  // Starts a new session (connecting in the background). Fails only when the C client
  // refuses the connect string or cannot start its threads (errno-style SYSTEMERROR /
  // BADARGUMENTS); the owner retries later.
  ZkCode open();
  // Closes the handle, ending the session on the server when connected (its ephemeral
  // nodes go at once). Blocks until the client's threads are gone; no callback runs after.
  void close();
  // close() then open(): the way out of `expired`. Drops queued events of the old session.
  ZkCode reopen();

  bool is_open() const { return handle_ != nullptr; }
  // The last state the watcher reported (connecting right after open()).
  SessionState state() const { return state_.load(std::memory_order_acquire); }
  bool connected() const { return state() == SessionState::connected; }
  // 0 until the server assigned a session.
  int64_t session_id() const { return session_id_.load(std::memory_order_acquire); }
  // The 16-byte session password (binary), empty until the server assigned a session.
  std::string session_password();
  // The session timeout the server granted (0 before the first connect).
  uint32_t negotiated_timeout_ms() const { return negotiated_timeout_ms_.load(std::memory_order_acquire); }
  const std::string& connect_string() const { return options_.connect; }

  // Takes the oldest event, waiting up to timeout_ms (0: just look). nullopt on timeout or
  // when interrupt() was called. Owning thread only.
  std::optional<ZkEvent> wait_event(int64_t timeout_ms);
  // Wakes a wait_event() in progress (or the next one) without an event. Any thread.
  void interrupt();

  // Synchronous operations (owning thread only). Paths are absolute, relative to the chroot.
  // `created` (when given) receives the path the server created (with its counter for
  // sequential nodes).
  ZkCode create(const std::string& path, std::string_view data, CreateMode mode, std::string* created = nullptr);
  // Creates each missing ancestor of `path` (not `path` itself) as an empty persistent node;
  // NODEEXISTS is success (another client came first).
  ZkCode create_parents(const std::string& path);
  // create_parents(path) plus `path` itself, empty and persistent, NODEEXISTS ignored.
  ZkCode ensure_path(const std::string& path);
  ZkCode get(const std::string& path, std::string* data, ZkStat* stat, bool watch);
  // Versioned write; on ok, *new_stat (when given) is the node's stat after the write.
  ZkCode set(const std::string& path, std::string_view data, int32_t version, ZkStat* new_stat);
  ZkCode remove(const std::string& path, int32_t version);
  // Versioned writes of several nodes in one transaction (one request, one round trip):
  // either all land or none does. The result is the first failing operation's code;
  // (*new_stats)[i] is node i's stat after the write when the result is ok, and
  // *failed_index (when given) the index of the operation that failed (ops.size() when the
  // transaction as a whole did: connection loss, ok).
  struct SetOp {
    std::string path;
    std::string data;
    int32_t version;
  };
  ZkCode multi_set(const std::vector<SetOp>& ops, std::vector<ZkStat>* new_stats, size_t* failed_index = nullptr);
  // Names only (not paths), in the server's order.
  // With `stat`, also the parent's stat (its cversion counts every child created or deleted).
  ZkCode get_children(const std::string& path, std::vector<std::string>* children, bool watch,
                      ZkStat* stat = nullptr);
  // ok when the node exists, NONODE when not (with watch = true the watch is set in both
  // cases: it fires on creation too).
  ZkCode exists(const std::string& path, ZkStat* stat, bool watch);

 private:
  static void on_watch(_zhandle* zh, int type, int state, const char* path, void* context);
  void on_connected(_zhandle* zh);
  void record(ZkEvent event);
  void write_session_file(int64_t id, const std::string& password);

  const ZkSessionOptions options_;
  _zhandle* handle_ = nullptr;
  // Copied from the handle by the watcher on each connect: the C client's own fields are
  // written by its I/O thread without a lock we could take.
  std::atomic<SessionState> state_{SessionState::closed};
  std::atomic<int64_t> session_id_{0};
  std::atomic<uint32_t> negotiated_timeout_ms_{0};

  std::mutex mutex_;  // guards the fields below (the watcher and the owning thread)
  std::condition_variable wakeup_;
  std::deque<ZkEvent> events_;
  bool interrupted_ = false;
  std::string password_;

  int64_t session_file_written_id_ = 0;  // watcher thread only
};

}  // namespace ringmaster::discovery
