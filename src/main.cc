// ringmaster: wiring only — parse flags, build the services (services.h), start the
// reactors, wait for SIGTERM/SIGINT (SIGHUP is a reload, never fatal), drain, exit. Bad flags exit 2 with one line.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <string_view>
#include <thread>
#include <vector>

#include "ringmaster/admin/endpoints.h"
#include "ringmaster/admin/server.h"
#include "ringmaster/base/log.h"
#include "ringmaster/config/config.h"
#include "ringmaster/discovery/coordinator.h"
#include "ringmaster/discovery/agent.h"
#include "ringmaster/io/socket.h"
#include "ringmaster/proxy/server.h"
#include "ringmaster/proxy/upgrade.h"
#include "ringmaster/service/notifier.h"
#include "ringmaster/service/reexec.h"
#include "services.h"

namespace {

using namespace ringmaster;

constexpr const char* kProxyUsage =
    "usage: ringmaster proxy --listen HOST:PORT (--zk HOSTS[/chroot] | --target HOST:PORT ...) [flags]\n";
constexpr const char* kAgentUsage = "usage: ringmaster agent --zk HOSTS[/chroot] --target HOST:PORT [flags]\n";
constexpr const char* kUsage =
    "usage: ringmaster proxy --listen HOST:PORT (--zk HOSTS[/chroot] | --target HOST:PORT ...) [flags]\n"
    "       ringmaster agent --zk HOSTS[/chroot] --target HOST:PORT [flags]\n"
    "       ringmaster check proxy|agent [flags]     (validate flags, start nothing)\n"
    "       ringmaster check --config FILE [flags]   (validate a config file, exit 0 or 2)\n"
    "       ringmaster --version\n"
    "every flag, its default and meaning: ringmaster proxy --help, ringmaster agent --help\n";

// `ringmaster proxy --help` (anywhere: a value never starts with "--" in the two-word form)
// or `ringmaster proxy -h`: the flags, exit 0.
bool wants_help(const std::vector<std::string_view>& args) {
  if (!args.empty() && args.front() == "-h") return true;
  return std::find(args.begin(), args.end(), "--help") != args.end();
}

int print_help(const char* usage, const std::string& flags) {
  std::fputs(usage, stdout);
  std::fputs("\nFlags take \"--flag VALUE\" or \"--flag=VALUE\"; SIZE is bytes or K/M/G (binary); MS is "
             "milliseconds.\n\n",
             stdout);
  std::fputs(flags.c_str(), stdout);
  return 0;
}

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
  // --body-bytes-max is the flags' service's limit, as body-bytes-max is each service's: the
  // reactor applies the routed service's once the head is parsed (routing_glue.cc).
  o.limits.body_bytes_max = UINT64_MAX;
  o.header_timeout_ms = cfg.header_timeout_ms;
  o.idle_timeout_ms = cfg.idle_timeout_ms;
  o.client_timeout_ms = cfg.client_timeout_ms;
  o.shutdown_timeout_ms = cfg.shutdown_timeout_ms;
  o.max_connections = cfg.max_connections;
  o.upstream_idle_max = cfg.upstream_idle_max;
  o.cache_ttl_ms = config::cache_ttl_ms(cfg);
  o.cache_object_bytes_max = cfg.cache_object_max;
  o.cache_lock_timeout_ms = cfg.cache_lock_timeout_ms;
  o.cache_serve_stale_ms = int64_t{cfg.cache_serve_stale_s} * 1000;
  o.cache_stale_on_5xx = cfg.cache_stale_on_5xx;
  return o;
}

// Static mode's GET /targets: the flags' service's targets (the shape before services).
admin::Json static_targets_view(const upstream::RouteBoard& board) {
  admin::Json targets = admin::Json::array();
  if (auto snapshot = board.targets(std::string("static:") + config::kFlagsServiceName)) {
    for (const upstream::Target& t : snapshot->targets) {
      targets.push_back({{"name", t.state->name}, {"requests", t.state->requests_total()}});
    }
  }
  return admin::Json{{"mode", "static"}, {"targets", std::move(targets)}};
}

// GET /targets: the mode's own view, plus "services": each service and what it routes to.
admin::Response targets_response(const discovery::Coordinator* coordinator, const upstream::RouteBoard& board,
                                 const Services& services) {
  admin::Json view = coordinator ? admin::Json::parse(coordinator->targets_json(), nullptr, /*allow_exceptions=*/false)
                                 : static_targets_view(board);
  if (view.is_discarded()) return {500, "text/plain", "the coordinator's targets view did not parse\n"};
  view["services"] = services.services_view();
  return admin::json_response(view);
}

// Static mode's per-target histograms: every target of every service, once each.
upstream::TargetStates all_targets(const upstream::RouteBoard& board) {
  upstream::TargetStates targets;
  for (const auto& service : board.services()) {
    auto snapshot = board.targets(service->source);
    if (!snapshot) continue;
    for (const upstream::Target& t : snapshot->targets) {
      if (std::find(targets.begin(), targets.end(), t.state) == targets.end()) targets.push_back(t.state);
    }
  }
  return targets;
}

// Everything `proxy` derives from its flags before it binds anything (names resolved).
struct ProxySetup {
  config::ProxyConfig cfg;
  proxy::ServerOptions options;
  std::optional<base::SocketAddress> admin;                  // --admin, resolved
};

ProxySetup setup_proxy(const std::vector<std::string_view>& args) {
  ProxySetup s;
  s.cfg = config::parse_proxy_args(args);
  s.options = server_options(s.cfg);
  // Static targets resolve now, so that a bad name is a usage error (and `check` sees it).
  std::vector<base::HostPort> names = s.cfg.targets;
  for (const config::ServiceConfig& service : s.cfg.services) {
    for (const base::HostPort& hp : service.source.static_targets) names.push_back(hp);
  }
  for (const base::HostPort& hp : names) {
    if (!base::resolve(hp)) throw config::ConfigError("--target: cannot resolve \"" + hp.to_string() + "\"");
  }
  if (s.cfg.admin) {
    s.admin = base::resolve(*s.cfg.admin);
    if (!s.admin) throw config::ConfigError("--admin: cannot resolve \"" + s.cfg.admin->to_string() + "\"");
  }
  return s;
}

// `ringmaster check proxy|agent FLAGS...`: the flags are parsed (and names resolved) as the
// command would, nothing is started; exit 0 when they are good, 2 with the one-line reason.
//
// `ringmaster check --config FILE [flags]`: the same for a proxy's config file (like
// `nginx -t`); prints "FILE: ok".
int run_check(const std::vector<std::string_view>& args) {
  bool named = !args.empty() && (args[0] == "proxy" || args[0] == "agent");
  bool has_config = std::any_of(args.begin(), args.end(),
                                [](std::string_view a) { return a == "--config" || a.starts_with("--config="); });
  if (!named && !has_config) {
    return fail_usage("check: expected \"check proxy FLAGS...\", \"check agent FLAGS...\" or \"check --config FILE\"");
  }
  std::vector<std::string_view> rest(args.begin() + (named ? 1 : 0), args.end());
  std::string config_file;
  try {
    if (!named || args[0] == "proxy") {
      config_file = setup_proxy(rest).cfg.config_file;
    } else {
      config::parse_agent_args(rest);
    }
  } catch (const config::ConfigError& e) {
    return fail_usage(e.what());
  }
  if (!config_file.empty()) {
    std::printf("%s: ok\n", config_file.c_str());
  } else {
    std::printf("ringmaster: %s flags ok\n", named ? std::string(args[0]).c_str() : "proxy");
  }
  return 0;
}

// argv[0] as main() got it: SIGUSR2 starts the same path again (README "Upgrade under systemd").
const char* g_argv0 = nullptr;

// A takeover in progress: the connection to the old process and the listeners it sent.
struct Takeover {
  int conn = -1;
  std::vector<int> listeners;
};

// With --upgrade-socket and a proxy listening there: receive its listeners, and run one
// reactor per listener (rebuilding what depends on the reactor count). Throws
// std::runtime_error (one line) when the handover cannot be used.
Takeover take_over(ProxySetup& setup) {
  Takeover t;
  if (setup.cfg.upgrade_socket.empty()) return t;
  t.conn = proxy::upgrade_connect(setup.cfg.upgrade_socket);
  if (t.conn < 0) return t;
  t.listeners = proxy::upgrade_receive(t.conn);
  base::SocketAddress bound;
  bound.length = sizeof bound.storage;
  getsockname(t.listeners[0], reinterpret_cast<sockaddr*>(&bound.storage), &bound.length);
  if (bound.to_string() != setup.options.listen.to_string()) {
    throw std::runtime_error("--listen " + setup.options.listen.to_string() +
                             " differs from the address the running proxy hands over");
  }
  auto n = static_cast<unsigned>(t.listeners.size());
  if (n != setup.cfg.threads) {
    RM_LOG_INFO("upgrade: %u reactors, one per listener handed over (--threads %u ignored)", n, setup.cfg.threads);
    // Only the reactors change: cfg keeps --threads as configured, so that a reload compares
    // the file with the file (not with the listeners we were handed) and does not report
    // "threads" as needing a restart every time.
    setup.options.threads = n;
  }
  return t;
}

int run_proxy(const std::vector<std::string_view>& args) {
  if (wants_help(args)) return print_help(kProxyUsage, config::proxy_flags_help());
  ProxySetup setup;
  try {
    setup = setup_proxy(args);
  } catch (const config::ConfigError& e) {
    return fail_usage(e.what());
  }
  const config::ProxyConfig& cfg = setup.cfg;
  proxy::ServerOptions& options = setup.options;
  if (cfg.verbose) base::set_log_level(base::LogLevel::debug);
  // --upgrade-socket: when a proxy listens there, this is an upgrade — take its listeners.
  Takeover takeover;
  try {
    takeover = take_over(setup);
  } catch (const std::runtime_error& e) {
    return fail_usage(e.what());
  }
  // SO_REUSEPORT would let this process join another one's listener and take part of its
  // traffic; an occupied address is a usage error instead (unless we are taking it over).
  for (auto [flag, address] : {std::pair{"--listen", std::optional(options.listen)}, std::pair{"--admin", setup.admin}}) {
    if (takeover.conn < 0 && address && io::probe_exclusive_bind(*address) == EADDRINUSE) {
      std::fprintf(stderr, "ringmaster: %s: %s is already in use by another socket (another process listening?)\n",
                   flag, address->to_string().c_str());
      return 2;
    }
  }

  std::unique_ptr<proxy::AccessLog> access_log;
  if (!cfg.access_log.empty()) {
    try {
      access_log = std::make_unique<proxy::AccessLog>(cfg.access_log, options.threads, cfg.access_log_buffer);
    } catch (const std::runtime_error& e) {
      return fail_usage(e.what());
    }
    options.access_log = access_log.get();
  }

  // Block the stop signals (and SIGUSR1: reopen the access log; SIGHUP: reload) before any
  // thread exists,
  // so only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);
  sigaddset(&stop_signals, SIGHUP);
  sigaddset(&stop_signals, SIGUSR2);  // start a new binary that takes over (--upgrade-socket)
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Shards: enough that reactors rarely meet on one lock, each big enough for the largest object.
  std::unique_ptr<cache::Cache> response_cache;
  if (cfg.cache_bytes > 0) {
    unsigned shards = cache::Cache::shard_count(cfg.cache_bytes, options.threads, cfg.cache_object_max);
    response_cache = std::make_unique<cache::Cache>(cfg.cache_bytes, shards);
    options.cache = response_cache.get();
  }
  // Services: the routing table (the flags' service and the config file's [[service]]s),
  // published through the board; static targets now, ZooKeeper ones by the coordinator.
  upstream::RouteBoard board(options.threads);
  Services services(options.threads, &board, response_cache.get());
  std::shared_ptr<Services::Plan> plan;
  try {
    plan = services.prepare(cfg);
  } catch (const config::ConfigError& e) {
    return fail_usage(e.what());
  }
  std::unique_ptr<discovery::Coordinator> coordinator;
  if (cfg.zk.empty()) {
    RM_LOG_INFO("static mode: %s", services.apply(plan).c_str());
  } else {
    discovery::CoordinatorOptions co;
    co.zk = cfg.zk;
    co.targets_path = cfg.targets_path;
    co.targets_format = cfg.targets_format;
    co.serverset_endpoint = cfg.serverset_endpoint;
    co.counts_path = cfg.counts_path;
    co.cache_version_path = cfg.cache_version_path;
    co.sources = Services::sources(*plan);
    co.flush_interval_ms = cfg.flush_interval_ms;
    co.session_timeout_ms = cfg.session_timeout_ms;
    co.reactors = options.threads;
    co.fleet = cfg.fleet;
    co.fleet_path = cfg.fleet_path;
    if (!cfg.fleet_listen_off) co.fleet_listen = cfg.fleet_listen.value_or(base::HostPort{cfg.listen.host, 0});
    co.on_content_version_change = [&services](const std::string& path) { services.on_content_version_change(path); };
    coordinator = std::make_unique<discovery::Coordinator>(co, &board);
    RM_LOG_INFO("%s", services.apply(plan).c_str());
    try {
      coordinator->start();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ringmaster: %s\n", e.what());
      return 2;
    }
    // Listen once every source was read once (or one session timeout passed: the coordinator
    // then warns and is ready anyway), so that no first request gets a 503 for a read not
    // made yet. The margin covers the loop's turn; past it, serve regardless.
    constexpr int64_t kReadyMarginMs = 2000;
    if (!coordinator->wait_ready(cfg.session_timeout_ms + kReadyMarginMs)) {
      RM_LOG_WARN("not every ZooKeeper source read yet; their services answer 503 until they are");
    }
  }
  Reloader reloader(args, cfg, &services, coordinator.get(), &board);
  proxy::Server server(options, board.cell());
  metrics::Registry registry;  // before the admin listener, which renders it
  std::unique_ptr<admin::Server> admin;
  std::atomic<bool> handed_over{false};  // before the listener: its thread sets it
  std::unique_ptr<proxy::UpgradeListener> upgrade_listener;
  try {
    if (access_log) access_log->start();
    if (takeover.conn >= 0) {
      server.start(takeover.listeners);
    } else {
      server.start();
    }
    if (setup.admin) {
      // Every family, once, in the order /metrics has always listed them.
      registry.family("ringmaster_build_info", metrics::Type::gauge, "Always 1; the version this binary was built as.",
                      [](metrics::Samples& out) { out.add("version=\"" RINGMASTER_VERSION "\"", uint64_t{1}); });
      server.register_metrics(registry);
      if (coordinator) {
        coordinator->register_metrics(registry);
      } else {
        upstream::register_target_histograms(registry, [&board] { return all_targets(board); });
      }
      upstream::register_service_metrics(registry, board);
      services.register_metrics(registry);
      reloader.register_metrics(registry);
      if (access_log) access_log->register_metrics(registry);
      admin = std::make_unique<admin::Server>(*setup.admin);
      admin->route("GET", "/metrics", [&registry](const admin::Request&) {
        return admin::Response{200, "text/plain; version=0.0.4", registry.render()};
      });
      admin->route("GET", "/targets", [&board, &coordinator, &services](const admin::Request&) {
        return targets_response(coordinator.get(), board, services);
      });
      admin->route("POST", "/config/reload", [&reloader](const admin::Request&) {
        if (reloader.config_file().empty()) {
          return admin::Response{409, "text/plain", "no configuration file (--config): nothing to reload\n"};
        }
        Reloader::Result r = reloader.reload();
        return admin::Response{r.ok ? 200 : 400, "text/plain", r.message + "\n"};
      });
      admin->route("POST", "/cache/purge", [&response_cache, &services](const admin::Request& req) {
        if (!req.query.starts_with("service=")) return admin::purge_cache(response_cache.get(), req);
        // ?service=NAME[&path=/x]: that service's own cache.
        admin::Request rest = req;
        size_t amp = req.query.find('&');
        std::string name = req.query.substr(8, amp == std::string::npos ? std::string::npos : amp - 8);
        rest.query = amp == std::string::npos ? "" : req.query.substr(amp + 1);
        std::shared_ptr<cache::Cache> c = services.cache_of(name);
        if (!c) return admin::Response{404, "text/plain", "no service with a cache named \"" + name + "\"\n"};
        return admin::purge_cache(c.get(), rest);
      });
      admin->start();
    }
    if (!cfg.upgrade_socket.empty()) {
      // Listening for the next upgrade before confirming this one: if that fails, the old
      // process is never told to go and keeps serving.
      upgrade_listener = std::make_unique<proxy::UpgradeListener>(cfg.upgrade_socket, server.listen_fds(), [&server,
                                                                                                             &handed_over] {
        handed_over.store(true);
        server.request_handover();
        kill(getpid(), SIGTERM);  // main's sigwait: drain and exit as usual
      });
      upgrade_listener->start();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringmaster: %s\n", e.what());
    return 1;
  }
  RM_LOG_INFO("listening on %s with %u reactors", cfg.listen.to_string().c_str(), options.threads);
  // Under systemd (Type=notify): READY=1 once listening and, with --zk, every source was read
  // once (Coordinator::wait_ready); watchdog pings while every reactor turns; STOPPING=1 when
  // the drain starts.
  service::NotifierHooks hooks;
  hooks.ready = [&coordinator] { return !coordinator || coordinator->wait_ready(0); };
  hooks.reactor_turns = [&server] { return server.loop_turns(); };
  hooks.ready_status = "listening on " + cfg.listen.to_string();
  service::Notifier notifier(std::move(hooks));
  if (takeover.conn >= 0) {
    // systemd follows this process (MAINPID=) before the old one is told to go and can exit.
    notifier.became_main();
    proxy::upgrade_confirm(takeover.conn);
    takeover.conn = -1;
    RM_LOG_INFO("upgrade: took over %zu listeners; the old process drains", takeover.listeners.size());
  }
  notifier.start();
  std::vector<std::string> own_args(args.begin(), args.end());
  own_args.insert(own_args.begin(), "proxy");
  const service::Reexec reexec(g_argv0, std::move(own_args));
  int sig = 0;
  for (;;) {
    sigwait(&stop_signals, &sig);
    if (sig == SIGUSR2) {
      // An upgrade (README "Upgrade under systemd"): the binary at our own path, with our own
      // arguments, takes the listeners over through --upgrade-socket; this process goes on
      // serving until it confirms, then drains. Without the socket a new process could only
      // fail to bind, so nothing is started.
      if (cfg.upgrade_socket.empty()) {
        RM_LOG_WARN("SIGUSR2: no --upgrade-socket, so no upgrade; still running");
        continue;
      }
      std::string error;
      pid_t child = reexec.spawn(&error);
      if (child < 0) {
        RM_LOG_WARN("SIGUSR2: could not start %s: %s; still running", reexec.program().c_str(), error.c_str());
      } else {
        RM_LOG_INFO("SIGUSR2: started %s as pid %d to take over", reexec.program().c_str(), static_cast<int>(child));
      }
      continue;
    }
    if (sig == SIGHUP) {
      // A reload (ExecReload, or habit): never fatal. The config file's services are read
      // again (README "Reload"); the access log is opened again.
      notifier.reloading();
      if (cfg.config_file.empty()) {
        RM_LOG_INFO("SIGHUP: no configuration file, nothing to reload; still running");
      } else {
        reloader.reload();  // logs its result
      }
      if (access_log) access_log->reopen();
      notifier.reloaded();
      continue;
    }
    if (sig != SIGUSR1) break;
    // logrotate moved the file: the writer opens the path again.
    if (access_log) access_log->reopen();
  }
  RM_LOG_INFO("%s: draining (up to %u ms)", strsignal(sig), options.shutdown_timeout_ms);
  if (handed_over.load()) {
    notifier.handed_over();  // the new process is the main one now: say nothing to systemd
  } else {
    notifier.stopping();
  }
  server.request_stop();
  server.wait();
  if (access_log) access_log->stop();  // after the reactors: their last lines are written
  // After the reactors: the coordinator's last flush then includes every request they counted.
  if (coordinator) coordinator->stop();
  if (admin) admin->stop();
  RM_LOG_INFO("stopped");
  return 0;
}

// `ringmaster agent`: flags -> AgentOptions, a sigwait thread turning SIGTERM/SIGINT into
// the stop flag, then the agent loop on this thread until it returns.
int run_agent_command(const std::vector<std::string_view>& args) {
  if (wants_help(args)) return print_help(kAgentUsage, config::agent_flags_help());
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
  options.format = cfg.format;
  options.name = cfg.name;
  options.weight = cfg.weight;

  // Blocked before any thread exists (ZooKeeper's client starts two), so only the sigwait
  // thread below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);  // habit or `systemctl reload`: logged, never fatal
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::atomic<bool> stop{false};
  std::thread signal_thread([&stop, stop_signals] {
    int sig = 0;
    for (;;) {
      sigwait(&stop_signals, &sig);
      if (sig != SIGHUP) break;
      RM_LOG_INFO("SIGHUP: the agent has nothing to reload; still running");
    }
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
  g_argv0 = argv[0];
  std::string_view command = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "--version" || command == "version") {
    std::printf("ringmaster %s\n", RINGMASTER_VERSION);
    return 0;
  }
  if (command == "proxy") return run_proxy(args);
  if (command == "check") return run_check(args);
  if (command == "agent") return run_agent_command(args);
  return fail_usage(("unknown command \"" + std::string(command) + "\" (expected proxy, agent or check)").c_str());
}
