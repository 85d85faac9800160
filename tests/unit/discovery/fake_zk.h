// FakeZk: a scripted, in-memory ZkClient for unit tests of the coordinator's decisions
// (ARCHITECTURE.md §3, "The coordinator's seam"). It holds a node tree with ZooKeeper's
// versions (version, cversion, czxid, mzxid, ephemeral owners), one-shot data and child
// watches that queue events, and a script:
//   * fail_at(step, fault): the step-th operation (0-based, counted over every call) answers
//     fault.code instead (fail_next(op, path, fault): the next `op` on `path`, once). For a write, fault.applied says whether the server applied it
//     before the answer was lost (CONNECTIONLOSS after the fact); a session_expired fault also
//     expires the session (its ephemeral nodes go, state() says expired, an event is queued);
//     fault.disconnects drops the connection with it (see disconnect()).
//   * before_each(hook): runs before every operation with its step, kind and path: another
//     actor (a proxy winning the version race, an agent re-creating its node) acts there.
// The session: open from the start and connected (FakeZk(false): closed until open(), which
// connects at once). disconnect() and reconnect() lose and regain the connection within the
// session (watches kept; every operation answers CONNECTIONLOSS meanwhile); expire_session()
// ends it; close() ends it too (its ephemeral nodes go), and open() after either, or
// reopen(), starts a new one (watches and queued events gone). Each change queues a session
// event, as the real client does.
// Several clients (sessions: proxies of one fleet) can share one FakeZkTree: FakeZk(other.tree())
// has its own session, script and log; a change by any of them fires every client's watches.
// Every operation is logged ("set /targets/a:1 v3 -> BADVERSION") for failure messages.
// Single-threaded, like the coordinator.
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "discovery/zk_client.h"

namespace ringmaster::discovery {

class FakeZk;

// The server's side: one node tree that several clients (FakeZk sessions, e.g. two proxies of
// a fleet) share. Each change fires the matching watches of every client.
struct FakeZkTree {
  struct Node {
    std::string data;
    ZkStat stat;
  };
  FakeZkTree() { nodes["/"] = Node{}; }
  std::map<std::string, Node> nodes;
  int64_t zxid = 0;
  int64_t sessions = 0;  // session ids handed out
  std::vector<FakeZk*> clients;
};

class FakeZk final : public ZkClient {
 public:
  enum class Op { create, get, set, remove, multi, get_children, exists };
  static const char* op_name(Op op) {
    switch (op) {
      case Op::create: return "create";
      case Op::get: return "get";
      case Op::set: return "set";
      case Op::remove: return "remove";
      case Op::multi: return "multi";
      case Op::get_children: return "get_children";
      case Op::exists: return "exists";
    }
    return "?";
  }
  struct Fault {
    ZkCode code = ZkCode::connection_loss;
    bool applied = false;  // writes only: applied by the server before the answer was lost
    bool disconnects = false;  // the connection drops with it (state connecting, until reconnect())
  };
  using Hook = std::function<void(FakeZk& zk, size_t step, Op op, const std::string& path)>;

  explicit FakeZk(bool open = true) : FakeZk(std::make_shared<FakeZkTree>(), open) {}
  // Another client of `tree` (tree() of an existing one): its own session, script and log.
  explicit FakeZk(std::shared_ptr<FakeZkTree> tree, bool open = true)
      : tree_(std::move(tree)), session_id_(++tree_->sessions), session_used_(open), open_(open),
        state_(open ? SessionState::connected : SessionState::closed) {
    tree_->clients.push_back(this);
  }
  ~FakeZk() override { std::erase(tree_->clients, this); }
  FakeZk(const FakeZk&) = delete;
  FakeZk& operator=(const FakeZk&) = delete;
  const std::shared_ptr<FakeZkTree>& tree() const { return tree_; }

  // ---- The script.
  void fail_at(size_t step, Fault fault) { faults_[step] = fault; }
  // The next `op` on `path` (whatever its step) answers the fault, once.
  void fail_next(Op op, const std::string& path, Fault fault) { path_faults_[{op, path}] = fault; }
  void before_each(Hook hook) { hook_ = std::move(hook); }
  size_t steps() const { return step_; }
  const std::vector<std::string>& log() const { return log_; }
  std::string log_text() const {
    std::string out;
    for (const std::string& line : log_) out += line + "\n";
    return out;
  }

  // ---- Direct access for the test (no step, no fault, no log): what other clients do.
  // Creates the node (and its parents) or sets it (any version), as another client would.
  void put(const std::string& path, const std::string& data, int64_t owner = 0) {
    if (Node* n = find(path)) {
      write(*n, data);
      return;
    }
    std::string parent = parent_of(path);
    if (parent != "/" && !find(parent)) put(parent, "");
    make(path, data, owner);
  }
  // Deletes the node (and its subtree): an agent leaving, a session expiring.
  void erase(const std::string& path) {
    if (!find(path)) return;
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      if (it->first == path || it->first.starts_with(path + "/")) {
        it = nodes_.erase(it);
      } else {
        ++it;
      }
    }
    if (Node* p = find(parent_of(path))) {
      ++p->stat.cversion;
      --p->stat.num_children;
    }
    fire_all(false, path, ZkEvent::Type::deleted);
    fire_all(true, parent_of(path), ZkEvent::Type::child);
  }
  // Deleted and created again with `data`: a new incarnation (new czxid, version 0).
  void recreate(const std::string& path, const std::string& data, int64_t owner = 0) {
    erase(path);
    put(path, data, owner);
  }
  bool has(const std::string& path) const { return nodes_.contains(path); }
  std::string data(const std::string& path) const {
    auto it = nodes_.find(path);
    return it == nodes_.end() ? std::string() : it->second.data;
  }
  // The children's names, sorted.
  std::vector<std::string> children(const std::string& path) const {
    std::vector<std::string> out;
    std::string prefix = path == "/" ? "/" : path + "/";
    for (auto it = nodes_.lower_bound(prefix); it != nodes_.end() && it->first.starts_with(prefix); ++it) {
      if (it->first.find('/', prefix.size()) == std::string::npos) out.push_back(it->first.substr(prefix.size()));
    }
    return out;
  }
  ZkStat stat(const std::string& path) const {
    auto it = nodes_.find(path);
    return it == nodes_.end() ? ZkStat{} : it->second.stat;
  }
  // Expires this client's session: its ephemeral nodes go, state() says expired.
  void expire_session() {
    // The dead session's watches fire for no one (other clients see its ephemerals go).
    data_watches_.clear();
    child_watches_.clear();
    std::vector<std::string> mine;
    for (const auto& [path, n] : nodes_) {
      if (n.stat.ephemeral_owner == session_id_) mine.push_back(path);
    }
    for (const std::string& path : mine) erase(path);
    set_state(SessionState::expired);
  }
  // The connection drops (the session lives on): operations answer CONNECTIONLOSS.
  void disconnect() { set_state(SessionState::connecting); }
  // Connected again within the same session: its watches and ephemeral nodes are intact.
  void reconnect() { set_state(SessionState::connected); }
  int64_t session_id() const override { return session_id_; }
  int sessions_opened() const { return sessions_opened_; }
  // The waits asked for, in ms (wait_event never blocks: the test's clock stands still).
  const std::vector<int64_t>& waits() const { return waits_; }

  // ---- ZkClient: the lifecycle.
  // A session, connected at once: the one made with the client if it has not been used yet,
  // else a new one (as the real client: a closed session never comes back).
  ZkCode open() override {
    if (session_used_) session_id_ = ++tree_->sessions;
    session_used_ = true;
    open_ = true;
    ++sessions_opened_;
    if (reachable_) {
      set_state(SessionState::connected);
    } else {
      state_ = SessionState::connecting;  // the real client: no event until it connects
    }
    return ZkCode::ok;
  }
  // An ensemble nobody reaches: open() leaves the session connecting (reconnect() connects
  // it, as the server answering at last).
  void set_reachable(bool reachable) { reachable_ = reachable; }
  // Ends the session: its ephemeral nodes go (others' watches fire), its watches and queued
  // events are dropped.
  void close() override {
    data_watches_.clear();
    child_watches_.clear();
    if (open_ && state_ != SessionState::expired) {
      std::vector<std::string> mine;
      for (const auto& [path, n] : nodes_) {
        if (n.stat.ephemeral_owner == session_id_) mine.push_back(path);
      }
      for (const std::string& path : mine) erase(path);
    }
    open_ = false;
    state_ = SessionState::closed;
    events_.clear();
  }
  // A new session (what ZkSession::reopen does), connected at once; watches are gone.
  ZkCode reopen() override {
    close();
    return open();
  }
  bool is_open() const override { return open_; }
  void interrupt() override {}
  uint32_t negotiated_timeout_ms() const override { return open_ ? 10000 : 0; }

  // ---- ZkClient: the operations.
  SessionState state() const override { return state_; }
  std::optional<ZkEvent> wait_event(int64_t timeout_ms) override {
    waits_.push_back(timeout_ms);
    if (events_.empty()) return std::nullopt;
    ZkEvent e = events_.front();
    events_.pop_front();
    return e;
  }

  ZkCode create(const std::string& path, std::string_view data, CreateMode mode, std::string* created) override {
    return step(Op::create, path, [&] {
      if (find(path)) return ZkCode::node_exists;
      Node* parent = find(parent_of(path));
      if (!parent) return ZkCode::no_node;
      std::string name = path;
      if (mode == CreateMode::ephemeral_sequential) {
        char counter[16];
        std::snprintf(counter, sizeof counter, "%010d", parent->stat.cversion);
        name += counter;
      }
      make(name, std::string(data), mode == CreateMode::persistent ? 0 : session_id_);
      if (created) *created = name;
      return ZkCode::ok;
    });
  }
  ZkCode get(const std::string& path, std::string* data, ZkStat* stat, bool watch) override {
    return step(Op::get, path, [&] {
      Node* n = find(path);
      if (!n) return ZkCode::no_node;
      if (data) *data = n->data;
      if (stat) *stat = n->stat;
      if (watch) data_watches_.insert(path);
      return ZkCode::ok;
    });
  }
  ZkCode set(const std::string& path, std::string_view data, int32_t version, ZkStat* new_stat) override {
    return step(Op::set, path, [&] {
      ZkCode rc = check_set(path, version);
      if (rc != ZkCode::ok) return rc;
      Node& n = *find(path);
      write(n, std::string(data));
      if (new_stat) *new_stat = n.stat;
      return ZkCode::ok;
    });
  }
  ZkCode remove(const std::string& path, int32_t version) override {
    return step(Op::remove, path, [&] {
      ZkCode rc = check_set(path, version);
      if (rc != ZkCode::ok) return rc;
      if (find(path)->stat.num_children > 0) return ZkCode::not_empty;
      erase(path);
      return ZkCode::ok;
    });
  }
  ZkCode multi_set(const std::vector<SetOp>& ops, std::vector<ZkStat>* new_stats, size_t* failed_index) override {
    if (failed_index) *failed_index = ops.size();
    return step(Op::multi, ops.empty() ? std::string() : ops[0].path, [&] {
      for (size_t i = 0; i < ops.size(); ++i) {
        ZkCode rc = check_set(ops[i].path, ops[i].version);
        if (rc != ZkCode::ok) {
          if (failed_index) *failed_index = i;
          return rc;
        }
      }
      if (new_stats) new_stats->clear();
      for (const SetOp& op : ops) {
        Node& n = *find(op.path);
        write(n, op.data);
        if (new_stats) new_stats->push_back(n.stat);
      }
      return ZkCode::ok;
    });
  }
  ZkCode get_children(const std::string& path, std::vector<std::string>* children, bool watch,
                      ZkStat* stat) override {
    return step(Op::get_children, path, [&] {
      Node* n = find(path);
      if (!n) return ZkCode::no_node;
      if (children) *children = this->children(path);
      if (stat) *stat = n->stat;
      if (watch) child_watches_.insert(path);
      return ZkCode::ok;
    });
  }
  ZkCode exists(const std::string& path, ZkStat* stat, bool watch) override {
    return step(Op::exists, path, [&] {
      Node* n = find(path);
      if (watch) data_watches_.insert(path);
      if (!n) return ZkCode::no_node;
      if (stat) *stat = n->stat;
      return ZkCode::ok;
    });
  }

 private:
  using Node = FakeZkTree::Node;

  // One operation: the hook, then the scripted fault or the real thing, then the log line.
  template <typename Apply>
  ZkCode step(Op op, const std::string& path, Apply apply) {
    size_t n = step_++;
    if (hook_) hook_(*this, n, op, path);
    ZkCode rc;
    auto by_path = path_faults_.find({op, path});
    if (by_path != path_faults_.end() && !faults_.contains(n)) {
      faults_[n] = by_path->second;
      path_faults_.erase(by_path);
    }
    auto fault = faults_.find(n);
    if (state_ == SessionState::expired) {
      rc = ZkCode::session_expired;
    } else if (state_ != SessionState::connected) {
      rc = ZkCode::connection_loss;
    } else if (fault != faults_.end()) {
      bool write = op == Op::create || op == Op::set || op == Op::remove || op == Op::multi;
      if (write && fault->second.applied) apply();  // its own answer is lost
      rc = fault->second.code;
      if (rc == ZkCode::session_expired) expire_session();
      if (fault->second.disconnects) disconnect();
    } else {
      rc = apply();
    }
    log_.push_back(std::to_string(n) + " " + op_name(op) + " " + path + " -> " + zk_code_name(rc) +
                   (fault != faults_.end() && fault->second.applied ? " (applied)" : ""));
    return rc;
  }

  ZkCode check_set(const std::string& path, int32_t version) {
    Node* n = find(path);
    if (!n) return ZkCode::no_node;
    if (version != kAnyVersion && version != n->stat.version) return ZkCode::bad_version;
    return ZkCode::ok;
  }
  Node* find(const std::string& path) {
    auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  static std::string parent_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
  }
  void make(const std::string& path, const std::string& data, int64_t owner) {
    Node n;
    n.data = data;
    n.stat.czxid = n.stat.mzxid = ++tree_->zxid;
    n.stat.data_length = static_cast<int32_t>(data.size());
    n.stat.ephemeral_owner = owner;
    nodes_[path] = n;
    if (Node* p = find(parent_of(path))) {
      ++p->stat.cversion;
      ++p->stat.num_children;
    }
    fire_all(false, path, ZkEvent::Type::created);
    fire_all(true, parent_of(path), ZkEvent::Type::child);
  }
  void write(Node& n, const std::string& data) {
    n.data = data;
    n.stat.data_length = static_cast<int32_t>(data.size());
    ++n.stat.version;
    n.stat.mzxid = ++tree_->zxid;
    for (auto& [path, node] : nodes_) {
      if (&node == &n) fire_all(false, path, ZkEvent::Type::changed);
    }
  }
  // A data (child = false) or children watch on `path` fires, for every client that set one.
  void fire_all(bool child, const std::string& path, ZkEvent::Type type) {
    for (FakeZk* c : tree_->clients) c->fire(child ? c->child_watches_ : c->data_watches_, path, type);
  }
  void fire(std::set<std::string>& watches, const std::string& path, ZkEvent::Type type) {
    if (watches.erase(path) == 0) return;
    events_.push_back(ZkEvent{type, state_, path});
  }
  void set_state(SessionState s) {
    state_ = s;
    events_.push_back(ZkEvent{ZkEvent::Type::session, s, ""});
  }

  std::shared_ptr<FakeZkTree> tree_;
  std::map<std::string, Node>& nodes_ = tree_->nodes;
  int64_t session_id_;
  int sessions_opened_ = 0;
  bool session_used_;  // open() makes a new session
  bool reachable_ = true;
  bool open_;
  SessionState state_;
  std::vector<int64_t> waits_;
  std::deque<ZkEvent> events_;
  std::set<std::string> data_watches_;
  std::set<std::string> child_watches_;
  std::map<size_t, Fault> faults_;
  std::map<std::pair<Op, std::string>, Fault> path_faults_;
  Hook hook_;
  size_t step_ = 0;
  std::vector<std::string> log_;
};

}  // namespace ringmaster::discovery
