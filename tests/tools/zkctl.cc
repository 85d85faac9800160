// zkctl: a tiny ZooKeeper command-line client for the integration tests.
//
//   zkctl --zk HOSTS[/chroot] [--timeout-ms N] CMD ARGS...
//     get PATH                       prints the data (and a newline)
//     stat PATH                      prints JSON: version, ephemeralOwner (hex), dataLength,
//                                    numChildren, mzxid, czxid, cversion
//     set PATH DATA [--version V]    versioned when --version is given
//     create PATH DATA [--ephemeral] [--parents]
//                                    --parents creates missing ancestors (persistent, empty)
//     delete PATH [--version V]
//     ls PATH                        children, one per line, sorted
//     wait-gone PATH                 waits (up to --timeout-ms) until PATH does not exist
//     expire-session ID_HEX PASSWORD_HEX
//                                    attaches to that session and closes it: the server
//                                    ends it, deleting its ephemeral nodes, and its owner
//                                    is told "expired" when it reconnects. Freeze the owner
//                                    (SIGSTOP) meanwhile, or it takes the session back.
//
// Exit codes: 0 ok; 1 ZooKeeper error or timeout (the error's name on stderr, e.g. "NONODE");
// 2 usage. It uses the C client directly: a test tool, not part of the discovery module.
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: zkctl --zk HOSTS[/chroot] [--timeout-ms N] CMD ARGS...\n"
    "  get PATH | stat PATH | set PATH DATA [--version V]\n"
    "  create PATH DATA [--ephemeral] [--parents] | delete PATH [--version V] | ls PATH\n"
    "  recreate PATH DATA (delete and create in one multi)\n"
    "  wait-gone PATH | expire-session ID_HEX PASSWORD_HEX\n";

struct UsageError {
  std::string message;
};

// Session state and "something happened" notifications from the client's completion thread.
struct Watch {
  std::mutex mutex;
  std::condition_variable changed;
  int state = 0;
  bool event = false;
};

void on_watch(zhandle_t*, int type, int state, const char*, void* context) {
  auto* w = static_cast<Watch*>(context);
  {
    std::lock_guard lock(w->mutex);
    if (type == ZOO_SESSION_EVENT) w->state = state;
    w->event = true;
  }
  w->changed.notify_all();
}

int fail_zk(int rc, const std::string& what) {
  std::string name = rc == ZNONODE            ? "NONODE"
                     : rc == ZNODEEXISTS      ? "NODEEXISTS"
                     : rc == ZBADVERSION      ? "BADVERSION"
                     : rc == ZNOTEMPTY        ? "NOTEMPTY"
                     : rc == ZCONNECTIONLOSS  ? "CONNECTIONLOSS"
                     : rc == ZSESSIONEXPIRED  ? "SESSIONEXPIRED"
                     : rc == ZOPERATIONTIMEOUT ? "OPERATIONTIMEOUT"
                     : rc == ZNOAUTH          ? "NOAUTH"
                     : rc == ZBADARGUMENTS    ? "BADARGUMENTS"
                                              : std::string(zerror(rc));
  std::fprintf(stderr, "%s: %s\n", name.c_str(), what.c_str());
  return 1;
}

class Client {
 public:
  Client(const std::string& hosts, int timeout_ms, const clientid_t* id = nullptr) : timeout_ms_(timeout_ms) {
    handle_ = zookeeper_init(hosts.c_str(), on_watch, std::max(timeout_ms, 2000), id, &watch_, 0);
  }
  ~Client() { close(); }
  int close() {
    int rc = ZOK;
    if (handle_ != nullptr) rc = zookeeper_close(handle_);
    handle_ = nullptr;
    return rc;
  }
  zhandle_t* get() const { return handle_; }

  // ZOK once connected; ZSESSIONEXPIRED when the server refused the session; else
  // ZCONNECTIONLOSS after the timeout.
  int connect() {
    if (handle_ == nullptr) return ZSYSTEMERROR;
    std::unique_lock lock(watch_.mutex);
    bool done = watch_.changed.wait_for(lock, std::chrono::milliseconds(timeout_ms_), [this] {
      return watch_.state == ZOO_CONNECTED_STATE || watch_.state == ZOO_EXPIRED_SESSION_STATE ||
             watch_.state == ZOO_AUTH_FAILED_STATE;
    });
    if (!done) return ZCONNECTIONLOSS;
    if (watch_.state == ZOO_CONNECTED_STATE) return ZOK;
    return watch_.state == ZOO_EXPIRED_SESSION_STATE ? ZSESSIONEXPIRED : ZAUTHFAILED;
  }

  // Waits for any watch event until the deadline; false on timeout.
  bool wait_event(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(watch_.mutex);
    bool got = watch_.changed.wait_until(lock, deadline, [this] { return watch_.event; });
    watch_.event = false;
    return got;
  }

 private:
  Watch watch_;
  zhandle_t* handle_ = nullptr;
  int timeout_ms_;
};

std::optional<long long> parse_int(std::string_view text, int base = 10) {
  if (text.empty()) return std::nullopt;
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, base);
  if (errno != 0 || *end != '\0') return std::nullopt;
  return v;
}

std::optional<unsigned long long> parse_hex(std::string_view text) {
  if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
  if (text.empty() || text.size() > 16) return std::nullopt;
  std::string s(text);
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 16);
  if (*end != '\0') return std::nullopt;
  return v;
}

struct Args {
  std::vector<std::string> positional;
  bool ephemeral = false;
  bool parents = false;
  int version = -1;
};

Args split_args(const std::vector<std::string>& argv) {
  Args a;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--ephemeral") {
      a.ephemeral = true;
    } else if (argv[i] == "--parents") {
      a.parents = true;
    } else if (argv[i] == "--version") {
      if (i + 1 >= argv.size()) throw UsageError{"--version needs a value"};
      auto v = parse_int(argv[++i]);
      if (!v) throw UsageError{"--version: not a number"};
      a.version = static_cast<int>(*v);
    } else {
      a.positional.push_back(argv[i]);
    }
  }
  return a;
}

void need(const Args& a, size_t n, const char* cmd) {
  if (a.positional.size() != n) throw UsageError{std::string(cmd) + ": wrong number of arguments"};
}

int cmd_get(zhandle_t* zh, const Args& a) {
  need(a, 1, "get");
  std::vector<char> buffer(1 << 20);
  int length = static_cast<int>(buffer.size());
  Stat stat{};
  int rc = zoo_get(zh, a.positional[0].c_str(), 0, buffer.data(), &length, &stat);
  if (rc != ZOK) return fail_zk(rc, a.positional[0]);
  std::fwrite(buffer.data(), 1, length < 0 ? 0 : static_cast<size_t>(length), stdout);
  std::fputc('\n', stdout);
  return 0;
}

int cmd_stat(zhandle_t* zh, const Args& a) {
  need(a, 1, "stat");
  Stat s{};
  int rc = zoo_exists(zh, a.positional[0].c_str(), 0, &s);
  if (rc != ZOK) return fail_zk(rc, a.positional[0]);
  std::printf(
      "{\"version\": %d, \"ephemeralOwner\": \"0x%llx\", \"dataLength\": %d, \"numChildren\": %d, "
      "\"mzxid\": %lld, \"czxid\": %lld, \"cversion\": %d}\n",
      s.version, static_cast<unsigned long long>(s.ephemeralOwner), s.dataLength, s.numChildren,
      static_cast<long long>(s.mzxid), static_cast<long long>(s.czxid), s.cversion);
  return 0;
}

int cmd_set(zhandle_t* zh, const Args& a) {
  need(a, 2, "set");
  const std::string& data = a.positional[1];
  int rc = zoo_set(zh, a.positional[0].c_str(), data.data(), static_cast<int>(data.size()), a.version);
  return rc == ZOK ? 0 : fail_zk(rc, a.positional[0]);
}

int create_parents(zhandle_t* zh, const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    int rc = zoo_create(zh, path.substr(0, slash).c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) return rc;
  }
  return ZOK;
}

int cmd_create(zhandle_t* zh, const Args& a) {
  need(a, 2, "create");
  const std::string& path = a.positional[0];
  const std::string& data = a.positional[1];
  if (a.parents) {
    int rc = create_parents(zh, path);
    if (rc != ZOK) return fail_zk(rc, path);
  }
  int rc = zoo_create(zh, path.c_str(), data.data(), static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE,
                      a.ephemeral ? ZOO_EPHEMERAL : ZOO_PERSISTENT, nullptr, 0);
  return rc == ZOK ? 0 : fail_zk(rc, path);
}

int cmd_delete(zhandle_t* zh, const Args& a) {
  need(a, 1, "delete");
  int rc = zoo_delete(zh, a.positional[0].c_str(), a.version);
  return rc == ZOK ? 0 : fail_zk(rc, a.positional[0]);
}

// Deletes a node and creates it again with new data in one transaction: watchers see one
// children change and a list with the same names, as when an agent's node is replaced
// between two of a proxy's reads.
int cmd_recreate(zhandle_t* zh, const Args& a) {
  need(a, 2, "recreate");
  const std::string& path = a.positional[0];
  const std::string& data = a.positional[1];
  zoo_op_t ops[2];
  zoo_op_result_t results[2];
  char created[512];
  zoo_delete_op_init(&ops[0], path.c_str(), -1);
  zoo_create_op_init(&ops[1], path.c_str(), data.data(), static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE,
                     a.ephemeral ? ZOO_EPHEMERAL : ZOO_PERSISTENT, created, sizeof created);
  int rc = zoo_multi(zh, 2, ops, results);
  return rc == ZOK ? 0 : fail_zk(rc, path);
}

int cmd_ls(zhandle_t* zh, const Args& a) {
  need(a, 1, "ls");
  String_vector names{};
  int rc = zoo_get_children(zh, a.positional[0].c_str(), 0, &names);
  if (rc != ZOK) return fail_zk(rc, a.positional[0]);
  std::vector<std::string> sorted(names.data, names.data + names.count);
  deallocate_String_vector(&names);
  std::sort(sorted.begin(), sorted.end());
  for (const std::string& name : sorted) std::printf("%s\n", name.c_str());
  return 0;
}

int cmd_wait_gone(Client& client, const Args& a, int timeout_ms) {
  need(a, 1, "wait-gone");
  const std::string& path = a.positional[0];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    Stat s{};
    int rc = zoo_exists(client.get(), path.c_str(), 1, &s);  // the watch wakes us on delete
    if (rc == ZNONODE) return 0;
    if (rc != ZOK) return fail_zk(rc, path);
    if (!client.wait_event(deadline)) {
      std::fprintf(stderr, "TIMEOUT: %s still exists after %d ms\n", path.c_str(), timeout_ms);
      return 1;
    }
  }
}

// Attaches to the session with its id and password, then closes it. The session's owner must
// not run meanwhile (the tests SIGSTOP it): attaching moves the session to our connection
// and drops the owner's, whose client would reconnect within a millisecond and take the
// session back, and our close would then fail with SESSIONMOVED.
int cmd_expire_session(const std::string& hosts, const Args& a, int timeout_ms) {
  need(a, 2, "expire-session");
  auto id = parse_hex(a.positional[0]);
  const std::string& password_hex = a.positional[1];
  clientid_t client_id{};
  if (!id || password_hex.size() != 2 * sizeof client_id.passwd) {
    throw UsageError{"expire-session: want a hex session id and a 32-digit hex password"};
  }
  client_id.client_id = static_cast<int64_t>(*id);
  for (size_t i = 0; i < sizeof client_id.passwd; ++i) {
    auto byte = parse_hex(password_hex.substr(2 * i, 2));
    if (!byte) throw UsageError{"expire-session: password is not hex"};
    client_id.passwd[i] = static_cast<char>(*byte);
  }
  Client client(hosts, timeout_ms, &client_id);
  int rc = client.connect();
  if (rc == ZSESSIONEXPIRED) {
    std::fprintf(stderr, "session 0x%llx had already expired\n", *id);
    return 0;
  }
  if (rc != ZOK) return fail_zk(rc, "cannot attach to session on " + hosts);
  // zookeeper_close() sends closeSession and waits for the answer: when it returns, the
  // server has ended the session and deleted its ephemeral nodes.
  rc = client.close();
  return rc == ZOK ? 0 : fail_zk(rc, "closing session 0x" + a.positional[0]);
}

int run(const std::vector<std::string>& argv) {
  std::string hosts;
  int timeout_ms = 10000;
  size_t i = 0;
  for (; i < argv.size(); ++i) {
    if (argv[i] == "--zk" && i + 1 < argv.size()) {
      hosts = argv[++i];
    } else if (argv[i] == "--timeout-ms" && i + 1 < argv.size()) {
      auto v = parse_int(argv[++i]);
      if (!v || *v <= 0 || *v > 600000) throw UsageError{"--timeout-ms: 1..600000"};
      timeout_ms = static_cast<int>(*v);
    } else {
      break;
    }
  }
  if (hosts.empty()) throw UsageError{"--zk is required"};
  if (i >= argv.size()) throw UsageError{"missing command"};
  std::string cmd = argv[i];
  Args a = split_args(std::vector<std::string>(argv.begin() + static_cast<long>(i) + 1, argv.end()));
  if (cmd == "expire-session") return cmd_expire_session(hosts, a, timeout_ms);
  static const char* const kCommands[] = {"get", "stat", "set", "create", "delete", "recreate", "ls", "wait-gone"};
  if (std::find_if(std::begin(kCommands), std::end(kCommands), [&](const char* c) { return cmd == c; }) ==
      std::end(kCommands)) {
    throw UsageError{"unknown command \"" + cmd + "\""};
  }
  Client client(hosts, timeout_ms);
  int rc = client.connect();
  if (rc != ZOK) return fail_zk(rc, "cannot connect to " + hosts);
  if (cmd == "get") return cmd_get(client.get(), a);
  if (cmd == "stat") return cmd_stat(client.get(), a);
  if (cmd == "set") return cmd_set(client.get(), a);
  if (cmd == "create") return cmd_create(client.get(), a);
  if (cmd == "delete") return cmd_delete(client.get(), a);
  if (cmd == "recreate") return cmd_recreate(client.get(), a);
  if (cmd == "ls") return cmd_ls(client.get(), a);
  return cmd_wait_gone(client, a, timeout_ms);
}

}  // namespace

int main(int argc, char** argv) {
  // Our messages only: the client's own log lines would clutter test failure output.
  zoo_set_debug_level(static_cast<ZooLogLevel>(0));
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "zkctl: %s\n%s", e.message.c_str(), kUsage);
    return 2;
  }
}
