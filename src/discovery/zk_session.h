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
// return codes, ZkStat its Stat), declared with the ZkClient interface in zk_client.h.
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

#include "zk_client.h"

struct _zhandle;  // zhandle_t of <zookeeper/zookeeper.h>

namespace ringmaster::discovery {


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

class ZkSession final : public ZkClient {
 public:
  explicit ZkSession(ZkSessionOptions options);
  ~ZkSession();
  ZkSession(const ZkSession&) = delete;
  ZkSession& operator=(const ZkSession&) = delete;

  // Starts a new session (connecting in the background). Fails only when the C client
  // refuses the connect string or cannot start its threads (errno-style SYSTEMERROR /
  // BADARGUMENTS); the owner retries later.
  ZkCode open() override;
  // Closes the handle, ending the session on the server when connected (its ephemeral
  // nodes go at once). Blocks until the client's threads are gone; no callback runs after.
  void close() override;
  // close() then open(): the way out of `expired`. Drops queued events of the old session.
  ZkCode reopen() override;

  bool is_open() const override { return handle_ != nullptr; }
  // The last state the watcher reported (connecting right after open()).
  SessionState state() const override { return state_.load(std::memory_order_acquire); }
  // 0 until the server assigned a session.
  int64_t session_id() const override { return session_id_.load(std::memory_order_acquire); }
  // The 16-byte session password (binary), empty until the server assigned a session.
  std::string session_password();
  // The session timeout the server granted (0 before the first connect).
  uint32_t negotiated_timeout_ms() const override { return negotiated_timeout_ms_.load(std::memory_order_acquire); }
  const std::string& connect_string() const { return options_.connect; }

  // Takes the oldest event, waiting up to timeout_ms (0: just look). nullopt on timeout or
  // when interrupt() was called. Owning thread only.
  std::optional<ZkEvent> wait_event(int64_t timeout_ms) override;
  // Wakes a wait_event() in progress (or the next one) without an event. Any thread.
  void interrupt() override;

  // The operations (owning thread only): see ZkClient.
  ZkCode create(const std::string& path, std::string_view data, CreateMode mode,
                std::string* created = nullptr) override;
  ZkCode get(const std::string& path, std::string* data, ZkStat* stat, bool watch) override;
  ZkCode set(const std::string& path, std::string_view data, int32_t version, ZkStat* new_stat) override;
  ZkCode remove(const std::string& path, int32_t version) override;
  ZkCode multi_set(const std::vector<SetOp>& ops, std::vector<ZkStat>* new_stats,
                   size_t* failed_index = nullptr) override;
  ZkCode get_children(const std::string& path, std::vector<std::string>* children, bool watch,
                      ZkStat* stat = nullptr) override;
  ZkCode exists(const std::string& path, ZkStat* stat, bool watch) override;

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
