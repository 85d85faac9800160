// ringmaster: wiring only — parse flags, build the static target snapshot, start the
// reactors, wait for SIGTERM/SIGINT, drain, exit. Bad flags exit 2 with one line.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "ringmaster/base/log.h"
#include "ringmaster/config/config.h"
#include "ringmaster/discovery/coordinator.h"
#include "ringmaster/discovery/agent.h"
#include "ringmaster/proxy/admin.h"
#include "ringmaster/proxy/server.h"

namespace {

using namespace ringmaster;

constexpr const char* kUsage =
    "usage: ringmaster proxy --listen HOST:PORT (--zk HOSTS[/chroot] | --target HOST:PORT ...) [flags]\n"
    "       ringmaster agent --zk HOSTS[/chroot] --target HOST:PORT [flags]\n"
    "see README.md for every flag\n";

int fail_usage(const char* message) {
  std::fprintf(stderr, "ringmaster: %s\n", message);
  return 2;
}

proxy::ServerOptions server_options(const config::ProxyConfig& cfg) {
  proxy::ServerOptions o;
  auto address = base::resolve(cfg.listen);
  if (!address) throw config::ConfigError("--listen: cannot resolve \"" + cfg.listen.to_string() + "\"");
  o.listen = *address;
  o.threads = cfg.threads;
  o.limits.request_line_bytes_max = cfg.request_line_bytes_max;
  o.limits.header_bytes_max = cfg.header_bytes_max;
  o.limits.header_count_max = cfg.header_count_max;
  o.limits.body_bytes_max = cfg.body_bytes_max;
  o.header_timeout_ms = cfg.header_timeout_ms;
  o.idle_timeout_ms = cfg.idle_timeout_ms;
  o.client_timeout_ms = cfg.client_timeout_ms;
  o.connect_timeout_ms = cfg.connect_timeout_ms;
  o.upstream_timeout_ms = cfg.upstream_timeout_ms;
  o.shutdown_timeout_ms = cfg.shutdown_timeout_ms;
  o.max_connections = cfg.max_connections;
  o.upstream_idle_max = cfg.upstream_idle_max;
  o.cache_ttl_ms = int64_t{cfg.cache_ttl_s} * 1000;
  o.cache_object_bytes_max = cfg.cache_object_max;
  o.cache_lock_timeout_ms = cfg.cache_lock_timeout_ms;
  o.cache_serve_stale_ms = int64_t{cfg.cache_serve_stale_s} * 1000;
  o.cache_stale_on_5xx = cfg.cache_stale_on_5xx;
  return o;
}

std::unique_ptr<const upstream::TargetSnapshot> static_snapshot(const config::ProxyConfig& cfg) {
  auto snapshot = std::make_unique<upstream::TargetSnapshot>();
  snapshot->version = 1;
  for (const base::HostPort& hp : cfg.targets) {
    auto address = base::resolve(hp);
    if (!address) throw config::ConfigError("--target: cannot resolve \"" + hp.to_string() + "\"");
    upstream::Target t;
    t.state = std::make_shared<upstream::TargetState>(hp.to_string(), *address, cfg.threads);
    snapshot->targets.push_back(std::move(t));
  }
  return snapshot;
}

// JSON for GET /targets in static mode (the snapshot never changes, so reading it from the
// admin thread is safe).
std::string static_targets_json(const upstream::TargetSnapshot& snapshot) {
  std::string out = "{\"mode\":\"static\",\"targets\":[";
  for (size_t i = 0; i < snapshot.targets.size(); ++i) {
    const upstream::Target& t = snapshot.targets[i];
    if (i) out += ",";
    out += "{\"name\":\"" + t.state->name + "\",\"requests\":" + std::to_string(t.state->requests_total()) + "}";
  }
  return out + "]}\n";
}

// POST /cache/purge: everything, or ?path=/x for every cached variant of one path.
proxy::AdminResponse purge_cache(cache::Cache* c, const proxy::AdminRequest& req) {
  if (c == nullptr) return {409, "text/plain", "cache disabled (--cache-bytes 0)\n"};
  if (req.query.empty()) {
    c->invalidate_all();
    return {200, "application/json", "{\"purged\":\"all\"}\n"};
  }
  if (req.query.rfind("path=", 0) != 0 || req.query.size() == 5 || req.query[5] != '/') {
    return {400, "text/plain", "expected ?path=/some/path\n"};
  }
  std::string path = req.query.substr(5);
  if (path.find_first_of("&%") != std::string::npos) return {400, "text/plain", "path must be plain\n"};
  size_t n = c->purge_path(path);
  return {200, "application/json", "{\"purged\":" + std::to_string(n) + "}\n"};
}

int run_proxy(const std::vector<std::string_view>& args) {
  config::ProxyConfig cfg;
  proxy::ServerOptions options;
  std::unique_ptr<const upstream::TargetSnapshot> snapshot;
  try {
    cfg = config::parse_proxy_args(args);
    options = server_options(cfg);
    if (cfg.zk.empty()) snapshot = static_snapshot(cfg);
  } catch (const config::ConfigError& e) {
    return fail_usage(e.what());
  }
  if (cfg.verbose) base::set_log_level(base::LogLevel::debug);

  // Block the stop signals before any thread exists, so only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Shards: enough that reactors rarely meet on one lock.
  std::unique_ptr<cache::Cache> response_cache;
  if (cfg.cache_bytes > 0) {
    unsigned shards = 16;
    while (shards < 8 * options.threads) shards *= 2;
    response_cache = std::make_unique<cache::Cache>(cfg.cache_bytes, shards);
    options.cache = response_cache.get();
  }
  upstream::SnapshotCell cell(options.threads);
  std::unique_ptr<discovery::Coordinator> coordinator;
  if (snapshot) {
    RM_LOG_INFO("static mode: %zu targets", snapshot->targets.size());
    cell.publish(std::move(snapshot));
  } else {
    discovery::CoordinatorOptions co;
    co.zk = cfg.zk;
    co.targets_path = cfg.targets_path;
    co.cache_version_path = cfg.cache_version_path;
    co.flush_interval_ms = cfg.flush_interval_ms;
    co.session_timeout_ms = cfg.session_timeout_ms;
    co.reactors = options.threads;
    if (response_cache) co.on_content_version_change = [c = response_cache.get()] { c->invalidate_all(); };
    coordinator = std::make_unique<discovery::Coordinator>(co, &cell);
    coordinator->start();
    // Serve at once either way; waiting briefly only spares the first clients a 503 while
    // the first read of the targets is under way.
    if (!coordinator->wait_first_snapshot(cfg.session_timeout_ms)) {
      RM_LOG_WARN("no target snapshot from ZooKeeper yet; answering 503 until one arrives");
    }
  }
  proxy::Server server(options, &cell);
  std::unique_ptr<proxy::AdminServer> admin;
  try {
    server.start();
    if (cfg.admin) {
      auto address = base::resolve(*cfg.admin);
      if (!address) throw std::runtime_error("--admin: cannot resolve " + cfg.admin->to_string());
      admin = std::make_unique<proxy::AdminServer>(*address);
      admin->route("GET", "/metrics", [&server, &coordinator](const proxy::AdminRequest&) {
        metrics::TextWriter w;
        server.write_metrics(w);
        server.write_cache_metrics(w);
        if (coordinator) coordinator->write_metrics(w);
        return proxy::AdminResponse{200, "text/plain; version=0.0.4", w.text()};
      });
      admin->route("GET", "/targets", [&cell, &coordinator](const proxy::AdminRequest&) {
        return proxy::AdminResponse{200, "application/json",
                                    coordinator ? coordinator->targets_json() : static_targets_json(*cell.load())};
      });
      admin->route("POST", "/cache/purge", [&response_cache](const proxy::AdminRequest& req) {
        return purge_cache(response_cache.get(), req);
      });
      admin->start();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringmaster: %s\n", e.what());
    return 1;
  }
  RM_LOG_INFO("listening on %s with %u reactors", cfg.listen.to_string().c_str(), options.threads);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  RM_LOG_INFO("%s: draining (up to %u ms)", strsignal(sig), options.shutdown_timeout_ms);
  server.request_stop();
  server.wait();
  // After the reactors: the coordinator's last flush then includes every request they counted.
  if (coordinator) coordinator->stop();
  if (admin) admin->stop();
  RM_LOG_INFO("stopped");
  return 0;
}

// `ringmaster agent`: flags -> AgentOptions, a sigwait thread turning SIGTERM/SIGINT into
// the stop flag, then the agent loop on this thread until it returns.
int run_agent_command(const std::vector<std::string_view>& args) {
  config::AgentConfig cfg;
  try {
    cfg = config::parse_agent_args(args);
  } catch (const config::ConfigError& e) {
    return fail_usage(e.what());
  }
  if (cfg.verbose) base::set_log_level(base::LogLevel::debug);
  discovery::AgentOptions options;
  options.zk = cfg.zk;
  options.target = cfg.target;
  options.targets_path = cfg.targets_path;
  options.cache_version_path = cfg.cache_version_path;
  options.health_path = cfg.health_path;
  options.health_interval_ms = cfg.health_interval_ms;
  options.health_timeout_ms = cfg.health_timeout_ms;
  options.health_rise = cfg.health_rise;
  options.health_fall = cfg.health_fall;
  options.content_version = cfg.content_version;
  options.session_timeout_ms = cfg.session_timeout_ms;

  // Blocked before any thread exists (ZooKeeper's client starts two), so only the sigwait
  // thread below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::atomic<bool> stop{false};
  std::thread signal_thread([&stop, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    RM_LOG_INFO("%s: stopping", strsignal(sig));
    stop.store(true, std::memory_order_release);
  });
  int code = discovery::run_agent(options, stop);
  // run_agent only returns once stop is set, so the thread has already returned.
  signal_thread.join();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string_view command = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "proxy") return run_proxy(args);
  if (command == "agent") return run_agent_command(args);
  return fail_usage(("unknown command \"" + std::string(command) + "\" (expected proxy or agent)").c_str());
}
