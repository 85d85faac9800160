#include "ringmaster/discovery/coordinator.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "ringmaster/base/check.h"
#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"
#include "count_writer.h"
#include "fleet_link.h"
#include "fleet_state.h"
#include "fleet_writer.h"
#include "registry_format.h"
#include "target_book.h"
#include "zk_session.h"

namespace ringmaster::discovery {
namespace {

// Delay before reopening a session that could not even be opened.
constexpr int64_t kReopenDelayMs = 500;
// A target that left is forgotten this long after its last count was written.
constexpr int64_t kLeftTargetLingerMs = 5000;

// Two source options that read their targets path the same way: one Source (README "Other
// registries": a reload that changes the format replaces the source).
bool same_reader(const SourceOptions& a, const SourceOptions& b) {
  return a.targets_path == b.targets_path && a.format == b.format && a.serverset_endpoint == b.serverset_endpoint &&
         a.counts_path == b.counts_path;
}

template <typename Sources>
bool source_for_in(const Sources& sources, const SourceOptions& o) {
  for (const auto& s : sources) {
    if (same_reader(s.options, o)) return true;
  }
  return false;
}

}  // namespace

// A foreign registry's children, as last read (README "Other registries").
struct RegistryState {
  RegistryFormat format = RegistryFormat::ringmaster;
  std::map<std::string, RegistryEntry> nodes;  // child name -> what its node says
  std::vector<RegistryMember> members;         // what they route to, one per endpoint
  RegistryTally tally;
  metrics::Counter malformed_reads;            // reads of a node that did not parse
};

Coordinator::Coordinator(const CoordinatorOptions& options, upstream::RouteBoard* board)
    : Coordinator(options, board,
                  std::make_unique<ZkSession>(ZkSessionOptions{options.zk, options.session_timeout_ms, 4096}),
                  nullptr, base::now_ms, FleetWriter::system_wall_ms,
                  [](int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }) {}

Coordinator::Coordinator(const CoordinatorOptions& options, upstream::RouteBoard* board, ZkClient& session,
                         std::function<int64_t()> clock_ms, std::function<void(int64_t)> pause_ms)
    : Coordinator(options, board, nullptr, &session, clock_ms, clock_ms,
                  pause_ms ? std::move(pause_ms) : [](int64_t) {}) {}

Coordinator::Coordinator(const CoordinatorOptions& options, upstream::RouteBoard* board,
                         std::unique_ptr<ZkClient> owned, ZkClient* session, std::function<int64_t()> clock_ms,
                         std::function<int64_t()> wall_ms, std::function<void(int64_t)> pause_ms)
    : options_(options),
      board_(board),
      clock_ms_(std::move(clock_ms)),
      wall_ms_(std::move(wall_ms)),
      pause_ms_(std::move(pause_ms)),
      owned_session_(std::move(owned)),
      session_(owned_session_ ? owned_session_.get() : session),
      book_(std::make_unique<TargetBook>(options.reactors, [](const base::HostPort& hp) { return base::resolve(hp); })),
      counts_(std::make_unique<CountWriter>(
          *session_, *book_, [this](const std::string& key) { return target_path(key); },
          [this](const std::string& key) { return foreign_key(key); }, zk_counters())) {
  std::optional<RegistryFormat> format = parse_registry_format(options.targets_format);
  RM_CHECK(format.has_value());  // config validated it
  flags_foreign_ = *format != RegistryFormat::ringmaster;
  std::vector<SourceOptions> sources = options_.sources;
  if (sources.empty()) {
    sources.push_back({options_.targets_path, options_.cache_version_path, options_.targets_format,
                       options_.serverset_endpoint, options_.counts_path});
  }
  pending_sources_ = std::move(sources);
  apply_pending_sources();
}

void Coordinator::set_sources(std::vector<SourceOptions> sources) {
  std::lock_guard lock(pending_mutex_);
  pending_sources_ = std::move(sources);
  session_->interrupt();  // wakes the thread's wait; the session itself is untouched
}

Coordinator::Source* Coordinator::source_for(const std::string& targets_path) {
  for (Source& s : sources_) {
    if (s.options.targets_path == targets_path && !s.removed) return &s;
  }
  return nullptr;
}

void Coordinator::forget_drained_sources() {
  int64_t now = clock_ms_();
  std::erase_if(sources_, [this, now](const Source& s) {
    // (Not while the table in use still routes to its targets: the reload that removed it
    // has not published its configuration yet, or a service carries them until its new
    // source is read, RouteBoard::set_targets.)
    if (!s.removed || book_->unflushed_members(s.group) > 0) return false;
    const std::string& path = s.options.targets_path;
    if (source_for(path) == nullptr && board_->routes_to(source_key(path))) return false;
    book_->set_members({}, now, false, s.group);  // pruned by the book once they linger out
    RM_LOG_INFO("%s: counts written; forgotten", s.options.targets_path.c_str());
    return true;
  });
}

void Coordinator::apply_pending_sources() {
  std::optional<std::vector<SourceOptions>> next;
  {
    std::lock_guard lock(pending_mutex_);
    next.swap(pending_sources_);
  }
  if (!next) return;
  std::vector<Source> kept;
  bool added = false;  // a source or version node not watched yet
  for (SourceOptions o : *next) {
    if (o.targets_path == options_.targets_path) {
      // The flags' source is read as the flags say (the config checked that services on
      // its path agree).
      o.format = options_.targets_format;
      o.serverset_endpoint = options_.serverset_endpoint;
      o.counts_path = flags_foreign_ ? options_.counts_path : "";
    }
    std::optional<RegistryFormat> format = parse_registry_format(o.format);
    RM_CHECK(format.has_value());  // config validated it
    // A source removed by an earlier reload and added back before it drained: read and
    // watched again (its watch may have fired, ignored, meanwhile).
    for (Source& s : sources_) {
      if (s.removed && same_reader(s.options, o) && source_for(o.targets_path) == nullptr) {
        s.removed = false;
        added = true;
      }
    }
    if (std::any_of(kept.begin(), kept.end(), [&o](const Source& s) { return s.options.targets_path == o.targets_path; })) {
      continue;  // two services on one targets path share its source
    }
    bool foreign = *format != RegistryFormat::ringmaster;
    // Book keys (TargetBook groups): the flags' source's are bare names. Another source's
    // are full paths of their count nodes: "<targets path>/<host:port>" in our layout, and
    // "<counts path>/<host:port>" for a foreign one, so target_path() lands on the count
    // node and a fleet's followers can send the keys as they are.
    std::string group = o.targets_path == options_.targets_path ? "" : (foreign ? o.counts_path : o.targets_path) + "/";
    Source* old = source_for(o.targets_path);
    // Another format with other count nodes is another source: the old one drains below, as
    // a removed one does. Same count nodes, another reader (a ServerSet endpoint, nerve ->
    // curator on one counts path): the source is kept and its registrations read again.
    if (old != nullptr && old->group != group) old = nullptr;
    bool reread = old != nullptr && !same_reader(old->options, o);
    added = added || old == nullptr || reread;
    Source s = old != nullptr ? std::move(*old) : Source{};
    if (old != nullptr) old->options.targets_path.clear();  // moved from: dropped below
    if (reread) {
      s.registry = nullptr;
      s.applied_names.clear();
      s.applied_cversion = -1;
    }
    s.options = o;
    s.group = group;
    if (foreign && s.registry == nullptr) {
      s.registry = std::make_shared<RegistryState>();
      s.registry->format = *format;
      book_->set_write_left_members(s.group, true);
      any_registry_.store(true);
    }
    kept.push_back(std::move(s));
  }
  for (Source& gone : sources_) {
    if (gone.options.targets_path.empty() || source_for_in(kept, gone.options)) continue;
    // Its targets stop routing with the configuration that no longer reads it (the board
    // keeps them until then); they stay members of the book (not read) until what they
    // counted is written and nothing routes to them, then the source is forgotten.
    if (!gone.removed && !std::any_of(kept.begin(), kept.end(), [&gone](const Source& s) {
          return s.options.targets_path == gone.options.targets_path;
        })) {
      board_->set_targets(source_key(gone.options.targets_path), nullptr);
      RM_LOG_INFO("%s removed: no longer read; its last counts are written next", gone.options.targets_path.c_str());
    }
    gone.removed = true;
    kept.push_back(std::move(gone));
  }
  sources_ = std::move(kept);
  std::map<std::string, VersionNode> versions;
  for (const Source& s : sources_) {
    const std::string& path = s.options.cache_version_path;
    if (path.empty() || s.removed) continue;
    auto it = versions_.find(path);
    added = added || it == versions_.end();
    versions[path] = it != versions_.end() ? it->second : VersionNode{};
  }
  versions_ = std::move(versions);
  // New sources are read (and watched) by a full read; ZooKeeper has no way to remove a
  // watch, so a removed source's events are ignored. A reload that adds nothing reads nothing.
  if (added) need_full_read_ = true;
}

Coordinator::~Coordinator() { stop(); }

ZkOpCounters Coordinator::zk_counters() {
  return {&zk_reads_,   &zk_writes_,     &zk_multis_,        &zk_other_ops_,   &zk_bad_version_,
          &zk_errors_, &flush_batches_, &flushed_requests_, &ambiguous_writes_};
}

void Coordinator::start() {
  if (options_.fleet) fleet_start();
  thread_ = std::thread([this] {
    base::set_thread_name("coordinator");
    while (!stop_.load()) run_once();
    run_final();
  });
}

void Coordinator::stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    session_->interrupt();
    thread_.join();
  }
  if (fleet_server_) fleet_server_->stop();
}

bool Coordinator::wait_ready(int64_t timeout_ms) {
  std::unique_lock lock(view_mutex_);
  return ready_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return ready_; });
}

bool Coordinator::source_read(const Source& source) const {
  // Its children list, and the count of every target in it: a target whose count read got
  // no answer is not routed yet (read_unread).
  return source.removed || (source.read_once && std::none_of(unread_.begin(), unread_.end(), [&](const std::string& key) {
           return TargetBook::group_of(key) == source.group && book_->is_member(key);
         }));
}

void Coordinator::check_ready(int64_t now) {
  {
    std::lock_guard lock(view_mutex_);
    if (ready_) return;
  }
  bool all = std::all_of(sources_.begin(), sources_.end(), [this](const Source& s) { return source_read(s); });
  if (!all && now - loop_started_ms_ < options_.session_timeout_ms) return;
  if (!all) {
    std::string unread;
    for (const Source& s : sources_) {
      if (!source_read(s)) unread += " " + s.options.targets_path;
    }
    RM_LOG_WARN("ready without a first read of%s after %u ms (session timeout): their services answer 503 until "
                "they are read",
                unread.c_str(), options_.session_timeout_ms);
  }
  std::lock_guard lock(view_mutex_);
  ready_ = true;
  ready_cv_.notify_all();
}

// A book key: a bare name (the flags' source) or already the node's full path. A bare name's
// count lives in its own node in our layout; in a foreign one, in a node of ours, since the
// registration belongs to another tool (and may be re-created by it at will).
std::string Coordinator::target_path(const std::string& name) const {
  if (name.starts_with('/')) return name;
  return (flags_foreign_ ? options_.counts_path : options_.targets_path) + "/" + name;
}

bool Coordinator::foreign_key(const std::string& name) const {
  if (!name.starts_with('/')) return flags_foreign_;
  std::string_view group = TargetBook::group_of(name);
  return std::any_of(sources_.begin(), sources_.end(),
                     [group](const Source& s) { return s.registry != nullptr && s.group == group; });
}

void Coordinator::begin_loop() {
  // start() binds the fleet listener on the caller's thread (its failure is a startup
  // error); a caller turning the loop itself gets it here.
  if (options_.fleet && !fleet_) fleet_start();
  int64_t now = clock_ms_();
  next_flush_ms_ = now + options_.flush_interval_ms;
  next_refresh_ms_ = now + options_.refresh_interval_ms;
  next_open_ms_ = now;
  loop_started_ms_ = now;
  loop_started_ = true;
}

void Coordinator::run_once() {
  if (!loop_started_) begin_loop();
  apply_pending_sources();
  if (!session_->is_open() && clock_ms_() >= next_open_ms_) {
    if (session_->open() == ZkCode::ok) {
      sessions_started_.add();
    } else {
      next_open_ms_ = clock_ms_() + kReopenDelayMs;
    }
  }
  // Before the wait: the last turn's failed reads are tried again on this one, not at once.
  if (!unread_.empty() && session_->connected()) read_unread();
  int64_t wait_ms = std::max<int64_t>(0, next_flush_ms_ - clock_ms_());
  while (auto event = session_->wait_event(wait_ms)) {
    wait_ms = 0;
    switch (event->type) {
      case ZkEvent::Type::session:
        handle_session_change();
        break;
      case ZkEvent::Type::child:
        if (Source* source = source_for(event->path)) read_members(*source);
        if (fleet_ && event->path == fleet_->proxies_path) read_fleet();
        break;
      case ZkEvent::Type::created:
      case ZkEvent::Type::deleted:
      case ZkEvent::Type::changed:
        if (versions_.contains(event->path)) read_cache_version(event->path);
        on_registry_node_event(event->path, event->type == ZkEvent::Type::deleted);
        break;
      case ZkEvent::Type::not_watching:
      case ZkEvent::Type::lost_events:
        need_full_read_ = true;
        break;
    }
  }
  if (need_full_read_ && session_->connected()) full_read();
  int64_t now = clock_ms_();
  check_ready(now);
  for (Source& s : sources_) {
    if (!s.removed && s.empty_since_ms != 0 && now - s.empty_since_ms >= options_.session_timeout_ms) read_members(s);
  }
  if (now >= next_flush_ms_) {
    flush_intervals_.add();
    if (fleet_) {
      fleet_tick(now);
    } else if (session_->connected()) {
      if (now >= next_refresh_ms_) {
        counts_->refresh_counts();
        next_refresh_ms_ = now + options_.refresh_interval_ms;
      }
      counts_->flush();
    }
    book_->prune(now, kLeftTargetLingerMs);
    forget_drained_sources();
    publish();
    next_flush_ms_ = now + options_.flush_interval_ms;
  }
}

void Coordinator::run_final() {
  if (!loop_started_) begin_loop();
  // Final flush: the reactors have stopped, so this writes every request they counted.
  if (fleet_) {
    fleet_final();
  } else if (session_->connected()) {
    counts_->flush();
  }
  if (book_->unflushed_total() > 0) {
    RM_LOG_WARN("stopping with %llu requests not written to ZooKeeper",
                static_cast<unsigned long long>(book_->unflushed_total()));
  }
  session_->close();
}

void Coordinator::handle_session_change() {
  SessionState state = session_->state();
  session_connected_.set(state == SessionState::connected);
  RM_LOG_INFO("zookeeper session %s", session_state_name(state));
  switch (state) {
    case SessionState::connected:
      // Re-read everything on every (re)connect: watches may have fired while away.
      need_full_read_ = true;
      break;
    case SessionState::expired:
    case SessionState::auth_failed:
      if (fleet_) fleet_reset_session();
      // The session is gone for good: a new one, new watches, everything read again. The
      // reactors keep routing with the last snapshot and keep counting meanwhile.
      if (session_->reopen() == ZkCode::ok) sessions_started_.add();
      need_full_read_ = true;
      break;
    default:
      break;
  }
}

void Coordinator::full_read() {
  bool complete = true;
  for (Source& s : sources_) {
    if (s.removed) continue;
    ZkCode rc = session_->ensure_path(s.options.targets_path);
    zk_other_ops_.add();
    if (rc == ZkCode::ok && s.registry != nullptr) {
      // A new session lost the data watches: every registration is read again.
      s.registry->nodes.clear();
      rc = session_->ensure_path(s.options.counts_path);
      zk_other_ops_.add();
    }
    if (rc != ZkCode::ok) {
      zk_errors_.add();
    } else {
      rc = read_members(s);
    }
    if (rc != ZkCode::ok) {
      // The connection: everything again after the reconnect. This source only (an ACL,
      // say): the others are read all the same, this one again on the next turn.
      if (zk_connection_problem(rc)) return;
      complete = false;
    }
  }
  if (fleet_ && !read_fleet()) return;
  for (const auto& [path, node] : versions_) read_cache_version(path);
  need_full_read_ = !complete;
}

ZkCode Coordinator::read_members(Source& source) {
  const std::string& targets_path = source.options.targets_path;
  std::vector<std::string> names;
  ZkStat parent;
  ZkCode rc = session_->get_children(targets_path, &names, true, &parent);
  zk_children_reads_.add();
  if (rc == ZkCode::no_node) {
    // Someone removed the targets path: recreate it (whoever comes first) and watch again.
    session_->ensure_path(targets_path);
    rc = session_->get_children(targets_path, &names, true, &parent);
    zk_children_reads_.add();
  }
  if (rc != ZkCode::ok) {
    // A fault never wipes the routing table: keep the last snapshot.
    zk_errors_.add();
    if (zk_connection_problem(rc)) need_full_read_ = true;
    return rc;
  }
  // A foreign registry: the children are registrations; what routes is their endpoints. The
  // guard below is for registrations vanishing, not for ones saying "do not route" (status
  // DEAD, enabled false): those are believed at once.
  bool vanished = names.empty();
  // (Each source in its own format: README "Other registries".)
  bool foreign = source.registry != nullptr;
  if (foreign) names = read_registry(source, names);
  int64_t now = clock_ms_();
  source.read_once = true;
  if (vanished && source.published_nonempty) {
    // Every target vanished at once: after a ZooKeeper outage the agents' sessions may
    // expire together and come back seconds later. Keep routing to the last targets for one
    // session timeout; only then believe the empty list.
    if (source.empty_since_ms == 0) {
      source.empty_since_ms = now;
      RM_LOG_WARN("every target left %s; keeping the last ones for up to %u ms", targets_path.c_str(),
                  options_.session_timeout_ms);
      return ZkCode::ok;
    }
    if (now - source.empty_since_ms < options_.session_timeout_ms) return ZkCode::ok;
  }
  source.empty_since_ms = 0;
  // A list that hides a node deleted and re-created since the last one: every member is
  // read again (children_churn, target_book.h).
  std::sort(names.begin(), names.end());
  ChildrenChurn churn = children_churn(source.applied_names, source.applied_cversion, names, parent.cversion);
  // (A foreign registry's count nodes are ours and persistent: its churn does not touch them.)
  bool hidden_churn = !foreign && churn.hidden;
  if (hidden_churn) {
    RM_LOG_INFO("%s: %lld child changes for %zu visible ones; reading every member again",
                targets_path.c_str(), static_cast<long long>(churn.changes), churn.visible);
    hidden_churn_.add();
  }
  source.applied_cversion = parent.cversion;
  source.applied_names = names;
  std::vector<std::string> to_read = book_->set_members(names, now, hidden_churn, source.group);
  if (foreign) {
    for (const RegistryMember& m : source.registry->members) book_->set_weight(source.group + m.endpoint, m.weight);
  }
  for (const std::string& name : to_read) {
    if (counts_->read_target(name)) {
      unread_.erase(name);
    } else {
      unread_.insert(name);
    }
  }
  publish();
  return ZkCode::ok;
}

void Coordinator::read_unread() {
  // A member whose count read got no answer is not routed (its count is unknown). A
  // connection problem brings a full read with the reconnect, but a plain timeout brings
  // nothing: without this the target would wait for the next count refresh (fleet off) or
  // the next children list (fleet mode, none may come). One read per member per turn.
  bool answered = false;
  std::set<std::string> again;
  for (const std::string& key : unread_) {
    if (!book_->is_member(key)) continue;  // it left meanwhile
    if (counts_->read_target(key)) {
      answered = true;
    } else {
      again.insert(key);
    }
  }
  unread_ = std::move(again);
  if (answered) publish();
}

std::vector<std::string> Coordinator::read_registry(Source& source, const std::vector<std::string>& children) {
  // Registrations are read once, when they appear, with a data watch: ServerSet status and
  // Curator's "enabled" change in place (setData), nerve rewrites its node on a weight change.
  RegistryState& registry = *source.registry;
  std::map<std::string, RegistryEntry>& nodes = registry.nodes;
  std::set<std::string> present(children.begin(), children.end());
  std::erase_if(nodes, [&present](const auto& node) { return !present.contains(node.first); });
  for (const std::string& child : children) {
    if (!nodes.contains(child)) read_registry_node(source, child);
  }
  registry.members = merge_registry(nodes, &registry.tally);
  std::vector<std::string> endpoints;
  endpoints.reserve(registry.members.size());
  for (const RegistryMember& m : registry.members) endpoints.push_back(m.endpoint);
  return endpoints;
}

void Coordinator::read_registry_node(Source& source, const std::string& child) {
  RegistryState& registry = *source.registry;
  const std::string& targets_path = source.options.targets_path;
  std::string data;
  ZkStat stat;
  ZkCode rc = session_->get(targets_path + "/" + child, &data, &stat, true);
  zk_reads_.add();
  if (rc == ZkCode::no_node) {
    registry.nodes.erase(child);  // gone already: the next children list agrees
    return;
  }
  if (rc != ZkCode::ok) {
    // Unknown for now: not routed until read (a connection problem re-reads everything).
    zk_errors_.add();
    if (zk_connection_problem(rc)) need_full_read_ = true;
    return;
  }
  RegistryEntry entry = parse_registry_node(registry.format, child, data, source.options.serverset_endpoint);
  if (entry.kind == RegistryEntry::Kind::malformed) {
    registry.malformed_reads.add();
    registry_malformed_reads_.add();
    RM_LOG_WARN("%s/%s: not a %s registration (%s); skipped", targets_path.c_str(), child.c_str(),
                registry_format_name(registry.format), entry.why.c_str());
  } else if (entry.kind == RegistryEntry::Kind::not_routed) {
    RM_LOG_INFO("%s/%s: %s not routed (%s)", targets_path.c_str(), child.c_str(), entry.endpoint.c_str(),
                entry.why.c_str());
  }
  registry.nodes[child] = std::move(entry);
}

void Coordinator::on_registry_node_event(const std::string& path, bool deleted) {
  // A data watch of one registration: routed to the (watched) foreign source it is a child of.
  for (Source& source : sources_) {
    const std::string& targets_path = source.options.targets_path;
    if (source.removed || source.registry == nullptr || !path.starts_with(targets_path + "/")) continue;
    std::string child = path.substr(targets_path.size() + 1);
    if (child.find('/') != std::string::npos) continue;
    if (deleted) {
      source.registry->nodes.erase(child);
    } else {
      read_registry_node(source, child);  // re-arms the watch
    }
    read_members(source);
    return;
  }
}

void Coordinator::read_cache_version(const std::string& path) {
  VersionNode& node = versions_[path];
  std::string data;
  ZkStat stat;
  ZkCode rc = session_->get(path, &data, &stat, true);
  zk_reads_.add();
  if (rc == ZkCode::no_node) {
    // Watch for its creation instead. "No version" is a value too: the first deploy that
    // creates the node changes it.
    session_->exists(path, nullptr, true);
    zk_other_ops_.add();
    if (!node.have) {
      node.have = true;
      node.absent = true;
    }
    return;
  }
  if (rc != ZkCode::ok) {
    zk_errors_.add();
    return;
  }
  if (node.have && (node.absent || data != node.value)) {
    RM_LOG_INFO("%s: content version changed to \"%s\": cache invalidated", path.c_str(), data.c_str());
    cache_invalidations_.add();
    if (options_.on_content_version_change) options_.on_content_version_change(path);
  }
  node.value = data;
  node.absent = false;
  node.have = true;
}

static bool same_routing(const upstream::TargetSnapshot* a, const upstream::TargetSnapshot& b) {
  if (a == nullptr || a->targets.size() != b.targets.size()) return false;
  for (size_t i = 0; i < b.targets.size(); ++i) {
    const upstream::Target& x = a->targets[i];
    const upstream::Target& y = b.targets[i];
    if (x.state != y.state || x.balance_base != y.balance_base || x.count != y.count) return false;
  }
  return true;
}

// One row of /targets, named without its group.
static nlohmann::ordered_json row_view(const TargetBook::Row& row) {
  std::string_view name = std::string_view(row.name).substr(TargetBook::group_of(row.name).size());
  return {{"name", name},
          {"state", !row.member ? "left" : !row.readable ? "unreadable" : "routing"},
          {"node_present", row.node_present},
          {"count", row.count},
          {"unflushed", row.unflushed},
          {"version", row.version},
          {"weight", row.weight}};
}

void Coordinator::publish() {
  size_t targets = 0;
  std::vector<std::shared_ptr<const upstream::TargetState>> states;
  for (Source& source : sources_) {
    if (source.removed) continue;
    auto snapshot = book_->build_snapshot(snapshot_version_ + 1, source.group);
    size_t n = snapshot->targets.size();
    targets += n;
    for (const upstream::Target& t : snapshot->targets) states.push_back(t.state);
    if (n > 0) source.published_nonempty = true;
    if (n == 0 && source.empty_since_ms == 0) source.published_nonempty = false;
    // An unchanged view is not republished: idle proxies cause no snapshot churn. Nor is a
    // source's before its first read: an added source publishes nothing (a reload waits for
    // it), and one replacing another on the same path (another format) leaves the old one's
    // targets routing until then.
    std::string key = source_key(source.options.targets_path);
    std::shared_ptr<const upstream::TargetSnapshot> current = board_->targets(key);
    if (source.read_once && !same_routing(current.get(), *snapshot)) {
      ++snapshot_version_;
      board_->set_targets(key, std::move(snapshot));
    }
  }
  board_->reclaim();
  snapshot_version_gauge_.set(static_cast<int64_t>(snapshot_version_));
  targets_gauge_.set(static_cast<int64_t>(targets));
  unflushed_gauge_.set(static_cast<int64_t>(book_->unflushed_total()));
  // The registry gauges sum every watched foreign source (/targets has each one's own).
  RegistryTally sum;
  for (const Source& source : sources_) {
    if (source.removed || source.registry == nullptr) continue;
    const RegistryTally& t = source.registry->tally;
    sum.routed += t.routed;
    sum.duplicates += t.duplicates;
    sum.not_routed += t.not_routed;
    sum.malformed += t.malformed;
  }
  skipped_gauge_.set(static_cast<int64_t>(book_->skipped_names() + book_->skipped_data() + sum.malformed));
  registry_routed_.set(static_cast<int64_t>(sum.routed));
  registry_duplicates_.set(static_cast<int64_t>(sum.duplicates));
  registry_not_routed_.set(static_cast<int64_t>(sum.not_routed));
  registry_malformed_.set(static_cast<int64_t>(sum.malformed));
  if (fleet_) {
    fleet_->leader_gauge.set(fleet_->is_leader ? 1 : 0);
    fleet_->members_gauge.set(static_cast<int64_t>(fleet_->members));
    if (fleet_->is_leader && fleet_->leader_ready) publish_fleet_view();
  }

  // The /targets view, written by nlohmann::json like every JSON the binary makes.
  using Json = nlohmann::ordered_json;
  Json view = {{"mode", "zookeeper"}, {"session", session_state_name(session_->state())},
               {"snapshot_version", snapshot_version_}};
  // "registry": the flags' source's, as before services; "registries": every foreign
  // source's, by targets path.
  Json registries = Json::object();
  for (const Source& source : sources_) {
    if (source.removed || source.registry == nullptr) continue;
    const RegistryState& r = *source.registry;
    const RegistryTally& t = r.tally;
    Json one = {{"format", registry_format_name(r.format)}, {"nodes", r.nodes.size()}, {"routed", t.routed},
                {"duplicates", t.duplicates}, {"not_routed", t.not_routed}, {"ignored", t.ignored},
                {"malformed", t.malformed}, {"counts_path", source.options.counts_path}};
    if (source.group.empty()) view["registry"] = one;
    registries[source.options.targets_path] = std::move(one);
  }
  if (!registries.empty()) view["registries"] = std::move(registries);
  if (fleet_) {
    view["fleet"] = {{"instance", fleet_->instance}, {"role", fleet_->is_leader ? "leader" : "follower"},
                     {"proxies", fleet_->members}, {"leader", fleet_->leader.instance},
                     {"leader_address", fleet_->leader.address}};
  }
  // "targets": the flags' source, as before services; "sources": every source by path.
  std::vector<TargetBook::Row> rows = book_->rows();
  auto list = [&rows](std::string_view group) {
    Json out = Json::array();
    for (const TargetBook::Row& row : rows) {
      if (TargetBook::group_of(row.name) == group) out.push_back(row_view(row));
    }
    return out;
  };
  view["targets"] = list("");
  Json sources = Json::object();
  for (const Source& source : sources_) sources[source.options.targets_path] = list(source.group);
  view["sources"] = std::move(sources);
  std::string json = view.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  std::lock_guard lock(view_mutex_);
  targets_json_ = std::move(json);
  view_targets_ = std::move(states);
}

std::string Coordinator::targets_json() const {
  std::lock_guard lock(view_mutex_);
  return targets_json_;
}

void Coordinator::register_metrics(metrics::Registry& r) const {
  auto counter = [&r](const char* name, const char* help, const metrics::Counter& c) {
    r.counter(name, help, [&c] { return c.get(); });
  };
  r.family("ringmaster_zk_operations_total", metrics::Type::counter, "ZooKeeper operations by kind.",
           [this](metrics::Samples& out) {
             out.add("kind=\"get\"", zk_reads_.get());
             out.add("kind=\"set\"", zk_writes_.get());
             out.add("kind=\"multi\"", zk_multis_.get());
             out.add("kind=\"get_children\"", zk_children_reads_.get());
             out.add("kind=\"other\"", zk_other_ops_.get());
           });
  counter("ringmaster_zk_bad_version_total", "Versioned writes that lost a race and were retried.", zk_bad_version_);
  counter("ringmaster_zk_errors_total", "ZooKeeper operations that failed.", zk_errors_);
  counter("ringmaster_zk_sessions_total", "ZooKeeper sessions opened.", sessions_started_);
  counter("ringmaster_flush_intervals_total", "Flush intervals elapsed (written or not).", flush_intervals_);
  counter("ringmaster_flush_batches_total", "Flush intervals that wrote at least one count.", flush_batches_);
  counter("ringmaster_flushed_requests_total", "Requests written to ZooKeeper counts.", flushed_requests_);
  counter("ringmaster_zk_ambiguous_writes_total",
          "Writes whose outcome was unknown and assumed applied, or that landed on a re-created node.",
          ambiguous_writes_);
  counter("ringmaster_targets_recreated_lists_total",
          "Children lists hiding a node deleted and re-created since the last one (every member re-read).",
          hidden_churn_);
  counter("ringmaster_content_version_changes_total", "Changes of the cache version node's value seen.",
          cache_invalidations_);
  auto gauge = [&r](const char* name, const char* help, const metrics::Gauge& g) {
    r.gauge(name, help, [&g] { return g.get(); });
  };
  gauge("ringmaster_zk_session_connected", "1 while the ZooKeeper session is connected.", session_connected_);
  gauge("ringmaster_snapshot_version", "Version of the last published target snapshot.", snapshot_version_gauge_);
  gauge("ringmaster_targets", "Targets in the last published snapshot.", targets_gauge_);
  gauge("ringmaster_unflushed_requests", "Requests counted but not yet written to ZooKeeper.", unflushed_gauge_);
  gauge("ringmaster_targets_skipped", "Children whose name or data did not parse.", skipped_gauge_);
  // Shown once a foreign source was ever watched. Read on the admin thread while the
  // coordinator writes: the gauges are published copies, summed over every foreign source
  // (each one's own numbers: /targets "registries").
  auto any_registry = [this] { return any_registry_.load(); };
  r.family("ringmaster_registry_malformed_reads_total", metrics::Type::counter,
           "Reads of a foreign registry's node that did not parse (skipped, never fatal).",
           [this](metrics::Samples& out) { out.add("", registry_malformed_reads_.get()); }, any_registry);
  r.family("ringmaster_registry_nodes", metrics::Type::gauge, "Foreign registries' children by what they say (all sources).",
           [this](metrics::Samples& out) {
             out.add("state=\"routed\"", registry_routed_.get());
             out.add("state=\"duplicate\"", registry_duplicates_.get());
             out.add("state=\"not_routed\"", registry_not_routed_.get());
             out.add("state=\"malformed\"", registry_malformed_.get());
           },
           any_registry);
  register_fleet_metrics(r);
  upstream::register_target_histograms(r, [this] {
    std::lock_guard lock(view_mutex_);
    return upstream::TargetStates(view_targets_.begin(), view_targets_.end());
  });
}

}  // namespace ringmaster::discovery
