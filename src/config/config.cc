// Command-line parsing for `ringmaster proxy` and `ringmaster agent`, their --help, and the
// proxy's --config file.
//
// Shape: each command has a table of flag descriptors (name, the value it takes if any, a
// handler that parses the value into the config struct, how to show its default, a one-line
// meaning). One generic loop walks the arguments and dispatches through the tables; the
// flags both commands share live in one table used by both. --help is printed from the same
// tables, and a --config file's keys are flag names applied through the same handlers, so
// nothing is described twice. After the loop, a per-command check enforces the rules that
// involve more than one flag (required flags, --zk vs --target, request line vs header bytes).
//
// Conventions, chosen so that scripts and tests can rely on them:
//   * "--flag value" and "--flag=value" are both accepted. In the two-word form a value that
//     starts with "--" is taken as a forgotten value ("--listen --threads 4"), not as the
//     value; a value that really starts with "--" must use the "=" form.
//   * A non-repeatable flag given twice: the last one wins, so a wrapper script can append
//     overrides to a base command line. --target on the proxy is the one repeatable flag.
//   * Every error is a ConfigError with one line: "<flag>: <problem>, got "<value>"". Values
//     are quoted with control bytes escaped and long values cut, so a hostile or binary
//     argument can never break the one-line promise main relies on.
//
// Ranges (the contract header gives the defaults):
//   --threads 1..1024 (default: online CPUs, clamped to that range)
//   every *-timeout-ms and --health-interval-ms: 1 ms .. 1 day; 0 is rejected because a zero
//     deadline would fail every request rather than mean "no deadline"
//   --flush-interval-ms 1..60000; --cache-ttl, --cache-serve-stale 0 (off) .. 365 days
//   --cache-bytes 0..1024G (0 disables the cache); --body-bytes-max 0..1024G (0 = no body)
//   --header-bytes-max 256..1M; --request-line-bytes-max 64..1M and <= --header-bytes-max
//     (when only --header-bytes-max is given and is below the request-line default, the
//     request-line default shrinks to it instead of failing)
//   --header-count-max 1..10000; --max-connections 1..1000000
//   --upstream-idle-max 0..4096 (0 turns upstream keep-alive off: useful with a backend that
//     mishandles it, so it is allowed although other limits reject 0)
//   --upstream-max-conns 0 (unlimited) or --threads..1000000 (each reactor needs a share of
//     at least one); --upstream-queue-max 0..1000000 (0: 503 at once when full)
//   agent: --health-rise/--health-fall 1..1000, --session-timeout-ms 1000..120000,
//     --health-path and --content-version at most 1024 bytes.
#include "ringmaster/config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <type_traits>

#include <toml++/toml.h>

namespace ringmaster::config {
namespace {

constexpr uint32_t kThreadsMax = 1024;
constexpr uint32_t kTimeoutMsMax = 24u * 60 * 60 * 1000;  // one day
constexpr uint32_t kFlushIntervalMsMax = 60000;
constexpr uint32_t kCacheTtlSecondsMax = 365u * 24 * 60 * 60;
constexpr uint64_t kBytesMax = 1ull << 40;  // cache and body: 1 TiB is "unlimited" in practice
constexpr uint32_t kRequestLineBytesMin = 64;
constexpr uint32_t kHeaderBytesMin = 256;
constexpr uint32_t kHeaderBytesMax = 1u << 20;
constexpr uint32_t kHeaderCountMax = 10000;
constexpr uint32_t kMaxConnectionsMax = 1000000;
constexpr uint32_t kUpstreamIdleMax = 4096;
constexpr uint32_t kUpstreamConnsMax = 1000000;
constexpr uint32_t kHealthCountMax = 1000;
constexpr uint32_t kSessionTimeoutMsMin = 1000;
constexpr uint32_t kSessionTimeoutMsMax = 120000;
constexpr size_t kTextBytesMax = 1024;
constexpr uint32_t kWeightMax = 10000;  // agent --weight; readers take no more (registry_format.h)  // --health-path, --content-version
constexpr size_t kQuotedBytesMax = 80;  // longer values are cut in error messages
// A file name is never cut: the error must name the file (PATH_MAX).
constexpr size_t kPathBytesMax = 4096;

// Escapes everything outside printable ASCII so that an error message stays on one line.
std::string printable(std::string_view text, size_t bytes_max = kQuotedBytesMax) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= bytes_max) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Appends rather than `"\"" + printable(text)`: GCC 12 at -O3 reports a bogus -Wrestrict on
// operator+(const char*, string&&) (GCC bug 105329).
std::string quoted(std::string_view text) {
  std::string out = "\"";
  out.append(printable(text));
  out.push_back('"');
  return out;
}

// A flag as its handler sees it: the name (for messages) and the value ("" for switches).
struct FlagArg {
  std::string_view name;
  std::string_view value;
};

[[noreturn]] void fail(std::string message) { throw ConfigError(std::move(message)); }

[[noreturn]] void fail_value(const FlagArg& arg, std::string_view expectation) {
  fail(std::string(arg.name) + ": " + std::string(expectation) + ", got " + quoted(arg.value));
}

// "1024" -> "1K", "1000" -> "1000": ranges in messages are written the way users type them.
std::string format_size(uint64_t bytes) {
  constexpr std::pair<unsigned, char> kUnits[] = {{30, 'G'}, {20, 'M'}, {10, 'K'}};
  for (auto [shift, suffix] : kUnits) {
    uint64_t unit = 1ull << shift;
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + suffix;
  }
  return std::to_string(bytes);
}

std::optional<uint64_t> parse_digits(std::string_view text) {
  uint64_t value = 0;
  // from_chars on an unsigned type takes digits only: no sign, no spaces, no "0x".
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

uint32_t uint_value(const FlagArg& arg, uint32_t min, uint32_t max) {
  auto value = parse_digits(arg.value);
  if (!value || *value < min || *value > max) {
    fail_value(arg, "expected an integer " + std::to_string(min) + ".." + std::to_string(max));
  }
  return static_cast<uint32_t>(*value);
}

uint32_t timeout_ms_value(const FlagArg& arg) { return uint_value(arg, 1, kTimeoutMsMax); }

uint64_t size_value(const FlagArg& arg, uint64_t min, uint64_t max) {
  auto value = parse_size(arg.value);
  if (!value || *value < min || *value > max) {
    fail_value(arg, "expected a size " + format_size(min) + ".." + format_size(max) + " (bytes, or K/M/G)");
  }
  return *value;
}

base::HostPort host_port_value(const FlagArg& arg) {
  auto hp = base::parse_host_port(arg.value);
  if (!hp) fail_value(arg, "expected HOST:PORT");
  return *hp;
}

// HOST:PORT where port 0 means "any free port".
base::HostPort any_port_value(const FlagArg& arg) {
  if (!arg.value.ends_with(":0")) return host_port_value(arg);
  std::string one(arg.value.substr(0, arg.value.size() - 1));
  one += '1';
  auto hp = base::parse_host_port(one);
  if (!hp) fail_value(arg, "expected HOST:PORT");
  hp->port = 0;
  return *hp;
}

// Why a znode path is not absolute and canonical; empty when it is. ZooKeeper itself
// rejects these, but only at the first request, long after startup and far from the flag.
std::string_view znode_path_problem(std::string_view path) {
  if (path.empty() || path.front() != '/') return "must start with '/'";
  if (path == "/") return {};
  if (path.back() == '/') return "must not end with '/'";
  if (path.find("//") != std::string_view::npos) return "must not contain an empty component";
  bool has_control = std::any_of(path.begin(), path.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (has_control) return "must not contain control characters";
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = std::min(path.find('/', start), path.size());
    std::string_view component = path.substr(start, end - start);
    if (component == "." || component == "..") return "must not contain '.' or '..' components";
    start = end + 1;
  }
  return {};
}

// --targets-path and --cache-version-path: the root itself is not a usable place.
std::string znode_path_value(const FlagArg& arg) {
  std::string_view problem = arg.value == "/" ? "must not be the root" : znode_path_problem(arg.value);
  if (!problem.empty()) fail_value(arg, problem);
  return std::string(arg.value);
}

// "HOST:PORT[,HOST:PORT...][/chroot]", the ZooKeeper connect string. Checked here rather than
// left to the ZooKeeper client, which would only log and retry forever on a typo.
std::string zk_value(const FlagArg& arg) {
  std::string_view text = arg.value;
  size_t slash = text.find('/');
  std::string_view hosts = text.substr(0, slash);
  bool hosts_ok = !hosts.empty();
  while (hosts_ok && !hosts.empty()) {
    size_t comma = hosts.find(',');
    hosts_ok = base::parse_host_port(hosts.substr(0, comma)).has_value();
    hosts = comma == std::string_view::npos ? std::string_view() : hosts.substr(comma + 1);
    if (comma != std::string_view::npos && hosts.empty()) hosts_ok = false;  // trailing comma
  }
  if (!hosts_ok) fail_value(arg, "expected HOST:PORT[,HOST:PORT...][/CHROOT]");
  if (slash != std::string_view::npos) {
    std::string_view problem = znode_path_problem(text.substr(slash));
    if (!problem.empty()) fail_value(arg, "chroot " + std::string(problem));
  }
  return std::string(text);
}

// Text that goes into a request line or a znode: bounded, and never able to split a line.
std::string line_text_value(const FlagArg& arg) {
  if (arg.value.empty()) fail(std::string(arg.name) + ": must not be empty");
  if (arg.value.size() > kTextBytesMax) {
    fail(std::string(arg.name) + ": must be at most " + std::to_string(kTextBytesMax) + " bytes, got " +
         std::to_string(arg.value.size()));
  }
  if (arg.value.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) {
    fail_value(arg, "must not contain NUL or line breaks");
  }
  return std::string(arg.value);
}

std::string health_path_value(const FlagArg& arg) {
  std::string path = line_text_value(arg);
  if (path.front() != '/') fail_value(arg, "must start with '/'");
  bool has_space = std::any_of(path.begin(), path.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
  });
  if (has_space) fail_value(arg, "must not contain spaces or control characters");
  return path;
}

// One flag: how it is parsed and how --help describes it, side by side. The default --help
// shows is read from the default config (show), so the struct's initialisers stay the one
// place defaults are written.
template <typename Config>
struct FlagSpec {
  std::string_view name;
  std::string_view value_name;  // "N", "SIZE", "HOST:PORT", ...; empty: a switch (no value)
  void (*apply)(Config& config, const FlagArg& arg);
  std::string (*show)(const Config& defaults);  // the default, as --help writes it
  std::string_view help;                        // one line
  bool takes_value() const { return !value_name.empty(); }
};

std::string show_number(uint64_t value) { return std::to_string(value); }
std::string show_text(const std::string& value, const char* if_empty) { return value.empty() ? if_empty : value; }
std::string show_off(const std::optional<base::HostPort>& value) { return value ? value->to_string() : "off"; }
template <typename Config>
std::string show_off_switch(const Config&) { return "off"; }

// Flags with the same meaning in both commands (both structs name these members alike).
template <typename Config>
const FlagSpec<Config> kSharedFlags[] = {
    {"--zk", "HOSTS[/chroot]", [](Config& c, const FlagArg& a) { c.zk = zk_value(a); },
     [](const Config& c) { return show_text(c.zk, std::is_same_v<Config, AgentConfig> ? "required" : "none"); },
     "ZooKeeper ensemble, HOST:PORT[,HOST:PORT...][/chroot]"},
    {"--targets-path", "PATH", [](Config& c, const FlagArg& a) { c.targets_path = znode_path_value(a); },
     [](const Config& c) { return c.targets_path; }, "znode whose children are the targets"},
    {"--cache-version-path", "PATH",
     [](Config& c, const FlagArg& a) { c.cache_version_path = znode_path_value(a); },
     [](const Config& c) { return c.cache_version_path; }, "znode whose value changing clears proxy caches"},
    {"--verbose", "", [](Config& c, const FlagArg&) { c.verbose = true; }, show_off_switch<Config>,
     "debug logging"},
};

template <typename Config>
const FlagSpec<Config>* find_flag(std::string_view name, std::span<const FlagSpec<Config>> own) {
  using Table = std::span<const FlagSpec<Config>>;
  for (Table table : {own, Table(kSharedFlags<Config>)}) {
    for (const auto& spec : table) {
      if (spec.name == name) return &spec;
    }
  }
  return nullptr;
}

// The names of the flags given, for the checks that depend on presence rather than value.
using SeenFlags = std::set<std::string_view>;

// Walks the arguments, dispatching each flag through the tables; throws on the first error.
template <typename Config>
SeenFlags parse_flags(const std::vector<std::string_view>& args, std::span<const FlagSpec<Config>> own,
                      Config& config) {
  SeenFlags seen;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view word = args[i];
    if (!word.starts_with("--")) fail("unexpected argument " + quoted(word));
    size_t equals = word.find('=');
    std::string_view name = word.substr(0, equals);
    const FlagSpec<Config>* spec = find_flag(name, own);
    if (spec == nullptr) fail("unknown flag " + printable(name));
    FlagArg arg{spec->name, {}};
    if (!spec->takes_value()) {
      if (equals != std::string_view::npos) fail(std::string(name) + ": takes no value");
    } else if (equals != std::string_view::npos) {
      arg.value = word.substr(equals + 1);
    } else if (i + 1 < args.size() && !args[i + 1].starts_with("--")) {
      arg.value = args[++i];
    } else {
      fail(std::string(name) + ": missing value");
    }
    spec->apply(config, arg);
    seen.insert(spec->name);
  }
  return seen;
}

// The cache-version node inside the targets directory would be read as a (bad) target.
template <typename Config>
void check_znode_paths(const Config& config) {
  const std::string& targets = config.targets_path;
  const std::string& version = config.cache_version_path;
  if (version == targets || version.starts_with(targets + "/")) {
    fail("--cache-version-path must not be --targets-path or inside it, got " + quoted(version));
  }
}

unsigned online_cpus() {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<unsigned>(std::clamp<long>(cpus, 1, kThreadsMax));
}

ProxyConfig default_proxy_config() {
  ProxyConfig config;
  config.threads = online_cpus();
  return config;
}

void add_static_target(ProxyConfig& config, const FlagArg& arg) {
  base::HostPort target = host_port_value(arg);
  // In ZooKeeper mode a target is a znode name, so it appears once; keep static mode alike.
  if (std::find(config.targets.begin(), config.targets.end(), target) != config.targets.end()) {
    fail_value(arg, "duplicate target");
  }
  config.targets.push_back(std::move(target));
}

// --targets-format / agent --format: whose node layout the targets path holds (README "Other
// registries"). The names are discovery::RegistryFormat's; config depends on base only.
std::string registry_format_value(const FlagArg& arg) {
  for (std::string_view name : {"ringmaster", "nerve", "serverset", "curator"}) {
    if (arg.value == name) return std::string(name);
  }
  fail_value(arg, "must be ringmaster, nerve, serverset or curator");
}

const FlagSpec<ProxyConfig> kProxyFlags[] = {
    {"--listen", "HOST:PORT", [](ProxyConfig& c, const FlagArg& a) { c.listen = host_port_value(a); },
     [](const ProxyConfig&) -> std::string { return "required"; },
     "client listener (one SO_REUSEPORT socket per reactor)"},
    {"--threads", "N", [](ProxyConfig& c, const FlagArg& a) { c.threads = uint_value(a, 1, kThreadsMax); },
     [](const ProxyConfig& c) { return "online CPUs, here " + show_number(c.threads); },
     "reactors, 1..1024, each pinned to a core"},
    {"--admin", "HOST:PORT", [](ProxyConfig& c, const FlagArg& a) { c.admin = host_port_value(a); },
     [](const ProxyConfig& c) { return show_off(c.admin); },
     "admin listener (GET /metrics, GET /targets, POST /cache/purge); give it a loopback address"},
    {"--target", "HOST:PORT", add_static_target, [](const ProxyConfig&) -> std::string { return "none"; },
     "static target, repeatable (no ZooKeeper; exclusive with --zk)"},
    {"--targets-format", "FORMAT",
     [](ProxyConfig& c, const FlagArg& a) { c.targets_format = registry_format_value(a); },
     [](const ProxyConfig& c) { return c.targets_format; },
     "who registers the targets: ringmaster, nerve, serverset or curator (read only)"},
    {"--serverset-endpoint", "NAME",
     [](ProxyConfig& c, const FlagArg& a) { c.serverset_endpoint = line_text_value(a); },
     [](const ProxyConfig&) -> std::string { return "serviceEndpoint"; },
     "ServerSets: route to this additionalEndpoints entry"},
    {"--counts-path", "PATH", [](ProxyConfig& c, const FlagArg& a) { c.counts_path = znode_path_value(a); },
     [](const ProxyConfig&) -> std::string { return "<fleet-path>/counts/default"; },
     "foreign formats: persistent count nodes <PATH>/<host>:<port>"},
    {"--fleet", "on|off",
     [](ProxyConfig& c, const FlagArg& a) {
       if (a.value != "on" && a.value != "off") fail_value(a, "must be on or off");
       c.fleet = a.value == "on";
     },
     [](const ProxyConfig& c) -> std::string { return c.fleet ? "on" : "off"; },
     "fleet coordination: one leader writes every proxy's counts"},
    {"--fleet-path", "PATH", [](ProxyConfig& c, const FlagArg& a) { c.fleet_path = znode_path_value(a); },
     [](const ProxyConfig& c) { return c.fleet_path; }, "where proxies announce themselves and the ledger lives"},
    {"--fleet-listen", "HOST:PORT|off",
     [](ProxyConfig& c, const FlagArg& a) {
       c.fleet_listen_off = a.value == "off";
       if (!c.fleet_listen_off) c.fleet_listen = any_port_value(a);
     },
     [](const ProxyConfig& c) -> std::string {
       return c.fleet_listen_off ? "off" : c.fleet_listen ? c.fleet_listen->to_string() : "--listen's host, any port";
     },
     "the leader's listener for followers' reports; off: never lead"},
    {"--flush-interval-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) { c.flush_interval_ms = uint_value(a, 1, kFlushIntervalMsMax); },
     [](const ProxyConfig& c) { return show_number(c.flush_interval_ms); },
     "how often request counts are written to ZooKeeper"},
    {"--cache-bytes", "SIZE", [](ProxyConfig& c, const FlagArg& a) { c.cache_bytes = size_value(a, 0, kBytesMax); },
     [](const ProxyConfig& c) { return format_size(c.cache_bytes); }, "response cache size; 0 disables it"},
    {"--cache-object-max", "SIZE",
     [](ProxyConfig& c, const FlagArg& a) { c.cache_object_max = size_value(a, 1, kBytesMax); },
     [](const ProxyConfig& c) { return format_size(c.cache_object_max); }, "larger responses stream through unstored"},
    {"--cache-serve-stale", "SECONDS",
     [](ProxyConfig& c, const FlagArg& a) { c.cache_serve_stale_s = uint_value(a, 0, kCacheTtlSecondsMax); },
     [](const ProxyConfig& c) { return show_number(c.cache_serve_stale_s); },
     "how stale a stored answer may be to answer when no target answers (0: never)"},
    {"--cache-stale-on-5xx", "", [](ProxyConfig& c, const FlagArg&) { c.cache_stale_on_5xx = true; },
     [](const ProxyConfig& c) -> std::string { return c.cache_stale_on_5xx ? "on" : "off"; },
     "also answer stale (within --cache-serve-stale) when a target answers 500-504"},
    {"--cache-lock-timeout-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) { c.cache_lock_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.cache_lock_timeout_ms); },
     "how long a collapsed miss waits before going upstream itself"},
    {"--cache-ttl", "SECONDS",
     [](ProxyConfig& c, const FlagArg& a) { c.cache_ttl_s = uint_value(a, 0, kCacheTtlSecondsMax); },
     [](const ProxyConfig& c) { return show_number(c.cache_ttl_s); },
     "opt-in fixed lifetime of responses that state none, up to 365 days (0: off, heuristics only)"},
    {"--request-line-bytes-max", "SIZE",
     [](ProxyConfig& c, const FlagArg& a) {
       c.request_line_bytes_max = static_cast<uint32_t>(size_value(a, kRequestLineBytesMin, kHeaderBytesMax));
     },
     [](const ProxyConfig& c) { return format_size(c.request_line_bytes_max); }, "longer request line -> 414"},
    {"--header-bytes-max", "SIZE",
     [](ProxyConfig& c, const FlagArg& a) {
       c.header_bytes_max = static_cast<uint32_t>(size_value(a, kHeaderBytesMin, kHeaderBytesMax));
     },
     [](const ProxyConfig& c) { return format_size(c.header_bytes_max); }, "larger request head -> 431"},
    {"--header-count-max", "N",
     [](ProxyConfig& c, const FlagArg& a) { c.header_count_max = uint_value(a, 1, kHeaderCountMax); },
     [](const ProxyConfig& c) { return show_number(c.header_count_max); }, "more header lines -> 431"},
    {"--body-bytes-max", "SIZE",
     [](ProxyConfig& c, const FlagArg& a) { c.body_bytes_max = size_value(a, 0, kBytesMax); },
     [](const ProxyConfig& c) { return format_size(c.body_bytes_max); }, "larger request body -> 413"},
    {"--header-timeout-ms", "MS", [](ProxyConfig& c, const FlagArg& a) { c.header_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.header_timeout_ms); },
     "the whole request head must arrive within this -> 408"},
    {"--idle-timeout-ms", "MS", [](ProxyConfig& c, const FlagArg& a) { c.idle_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.idle_timeout_ms); }, "keep-alive wait between requests"},
    {"--client-timeout-ms", "MS", [](ProxyConfig& c, const FlagArg& a) { c.client_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.client_timeout_ms); },
     "client stalled mid-request (body not arriving, response not read)"},
    {"--connect-timeout-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) { c.connect_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.connect_timeout_ms); }, "upstream connect; then fail over"},
    {"--upstream-timeout-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.upstream_timeout_ms); }, "backend silent mid-response -> 504"},
    {"--shutdown-timeout-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) { c.shutdown_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.shutdown_timeout_ms); }, "SIGTERM drain deadline"},
    {"--max-connections", "N",
     [](ProxyConfig& c, const FlagArg& a) { c.max_connections = uint_value(a, 1, kMaxConnectionsMax); },
     [](const ProxyConfig& c) { return show_number(c.max_connections); },
     "client connections, whole proxy; excess are closed at accept"},
    {"--access-log", "PATH",
     [](ProxyConfig& c, const FlagArg& a) {
       if (a.value.empty() || a.value.size() > kTextBytesMax) fail_value(a, "expected a file path");
       c.access_log = std::string(a.value);
     },
     [](const ProxyConfig&) -> std::string { return "off"; },
     "one JSON line per request, written by a logging thread; reopened on SIGUSR1"},
    {"--access-log-buffer", "SIZE",
     [](ProxyConfig& c, const FlagArg& a) { c.access_log_buffer = size_value(a, 4096, 1ull << 30); },
     [](const ProxyConfig& c) { return format_size(c.access_log_buffer); },
     "per-reactor access log queue; lines beyond it are dropped and counted"},
    {"--upgrade-socket", "PATH",
     [](ProxyConfig& c, const FlagArg& a) {
       if (a.value.empty() || a.value.size() > 100) fail_value(a, "expected a socket path of at most 100 bytes");
       c.upgrade_socket = std::string(a.value);
     },
     [](const ProxyConfig&) -> std::string { return "off"; },
     "Unix socket for zero-downtime upgrades: hand the listeners over to a new process"},
    {"--upstream-idle-max", "N",
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_idle_max = uint_value(a, 0, kUpstreamIdleMax); },
     [](const ProxyConfig& c) { return show_number(c.upstream_idle_max); },
     "idle keep-alive connections per target per reactor, at least its share of the service's upstream-max-conns (0: no reuse)"},
    {"--upstream-max-conns", "N",
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_max_conns = uint_value(a, 0, kUpstreamConnsMax); },
     [](const ProxyConfig& c) { return show_number(c.upstream_max_conns); },
     "connections per target, whole proxy, split among reactors; more requests queue (0: unlimited)"},
    {"--upstream-queue-max", "N",
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_queue_max = uint_value(a, 0, kUpstreamConnsMax); },
     [](const ProxyConfig& c) { return show_number(c.upstream_queue_max); },
     "requests waiting per target for a connection, whole proxy; beyond it 503 at once"},
    {"--upstream-queue-timeout-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_queue_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.upstream_queue_timeout_ms); },
     "longest wait in that queue -> 503 with Retry-After"},
    {"--upstream-idle-timeout-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_idle_timeout_ms = timeout_ms_value(a); },
     [](const ProxyConfig& c) { return show_number(c.upstream_idle_timeout_ms); },
     "a pooled keep-alive connection unused this long is closed"},
    {"--session-timeout-ms", "MS",
     [](ProxyConfig& c, const FlagArg& a) {
       c.session_timeout_ms = uint_value(a, kSessionTimeoutMsMin, kSessionTimeoutMsMax);
     },
     [](const ProxyConfig& c) { return show_number(c.session_timeout_ms); }, "ZooKeeper session timeout"},
    {"--config", "FILE", [](ProxyConfig& c, const FlagArg& a) { c.config_file = line_text_value(a); },
     [](const ProxyConfig&) -> std::string { return "none"; },
     "settings file, TOML, one key per flag (cache-ttl = 300); flags given override it"},
};

// A TOML value as the text a flag takes: strings as written, integers in decimal, booleans as
// on/off. Nothing for the kinds no flag takes (floats, dates, tables).
std::optional<std::string> flag_text(const toml::node& node) {
  if (const auto* text = node.as_string()) return text->get();
  if (const auto* number = node.as_integer()) return std::to_string(number->get());
  if (const auto* flag = node.as_boolean()) return std::string(flag->get() ? "on" : "off");
  return std::nullopt;
}

// One top-level key of the config file, applied through its flag's own spec.
void apply_setting(const FlagSpec<ProxyConfig>& spec, const toml::node& value, const std::string& where,
                   ProxyConfig& config) {
  std::optional<std::string> text = flag_text(value);
  if (!text) fail(where + "expected a string, an integer or a boolean");
  if (!spec.takes_value()) {  // a switch: true turns it on
    if (!value.is_boolean()) fail(where + "expected true or false");
    if (value.as_boolean()->get()) spec.apply(config, FlagArg{spec.name, {}});
    return;
  }
  try {
    spec.apply(config, FlagArg{spec.name, *text});
  } catch (const ConfigError& e) {
    // The flag's own message, "--name: reason", told with the file's key instead.
    std::string_view message = e.what();
    if (message.starts_with(spec.name) && message.substr(spec.name.size()).starts_with(": ")) {
      message.remove_prefix(spec.name.size() + 2);
    }
    fail(where + std::string(message));
  }
}

// ---- [[service]] tables (README "Services") ----

constexpr size_t kServiceNameBytesMax = 64;
constexpr size_t kPathPrefixBytesMax = 1024;
constexpr size_t kHostBytesMax = 253;  // a DNS name
constexpr size_t kServicesMax = 4096;

// "FILE:LINE: service \"NAME\": KEY: " for the messages about one service's key.
std::string service_where(const std::string& file, const toml::node& node, std::string_view service,
                          std::string_view key) {
  std::string out = printable(file, kPathBytesMax) + ":" + std::to_string(node.source().begin.line) + ": service";
  if (!service.empty()) out.append(" ").append(quoted(service));
  out.append(": ").append(printable(key)).append(": ");
  return out;
}

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

// A Host pattern as routing compares it: lower case, no port, an optional "*." in front.
// Empty when it is not one (the reason in *problem).
std::string host_pattern(std::string_view text, std::string* problem) {
  std::string host(text);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string_view name = host;
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > kHostBytesMax) {
    *problem = "expected a host name, or *.domain for its subdomains";
    return {};
  }
  if (name.find('*') != std::string_view::npos) {
    *problem = "a wildcard is only allowed as a leading \"*.\"";
    return {};
  }
  bool ok = std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
  if (!ok || name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos) {
    *problem = "expected a host name without port (letters, digits, '-', '.')";
    return {};
  }
  return host;
}

std::string string_of(const toml::node& value, const std::string& where) {
  if (!value.is_string()) fail(where + "expected a string");
  return value.as_string()->get();
}

std::vector<const toml::node*> list_of(const toml::node& value, const std::string& where) {
  const toml::array* list = value.as_array();
  if (list == nullptr) fail(where + "expected a list");
  std::vector<const toml::node*> out;
  for (const toml::node& item : *list) out.push_back(&item);
  return out;
}

// A value checked by a flag's own rules, its message told with the file's key.
template <typename Fn>
auto by_flag_rules(const std::string& where, std::string_view flag, std::string_view text, Fn&& fn) {
  try {
    return fn(FlagArg{flag, text});
  } catch (const ConfigError& e) {
    std::string_view message = e.what();
    if (message.starts_with(flag) && message.substr(flag.size()).starts_with(": ")) {
      message.remove_prefix(flag.size() + 2);
    }
    fail(where + std::string(message));
  }
}

// The [[service]] keys that are flags too: each is checked by its flag's own handler (on a
// scratch config) and read back from the flag's member, so a service's value obeys exactly
// the flag's rules and messages.
struct ServiceFlagKey {
  std::string_view key;
  uint32_t ProxyConfig::*flag;
  std::optional<uint32_t> ServiceConfig::*own;
};
constexpr ServiceFlagKey kServiceFlagKeys[] = {
    {"connect-timeout-ms", &ProxyConfig::connect_timeout_ms, &ServiceConfig::connect_timeout_ms},
    {"upstream-timeout-ms", &ProxyConfig::upstream_timeout_ms, &ServiceConfig::upstream_timeout_ms},
    {"upstream-max-conns", &ProxyConfig::upstream_max_conns, &ServiceConfig::upstream_max_conns},
    {"upstream-queue-max", &ProxyConfig::upstream_queue_max, &ServiceConfig::upstream_queue_max},
    {"upstream-queue-timeout-ms", &ProxyConfig::upstream_queue_timeout_ms, &ServiceConfig::upstream_queue_timeout_ms},
    {"upstream-idle-timeout-ms", &ProxyConfig::upstream_idle_timeout_ms, &ServiceConfig::upstream_idle_timeout_ms},
};

// Applies `key` = `value` through the flag --key's handler to a scratch config.
ProxyConfig by_flag_handler(const std::string& where, std::string_view key, const toml::node& value) {
  std::string flag = "--" + std::string(key);
  const FlagSpec<ProxyConfig>* spec = find_flag<ProxyConfig>(flag, kProxyFlags);
  std::optional<std::string> text = flag_text(value);
  if (spec == nullptr || !text) fail(where + "expected an integer (or a size: bytes, or K/M/G)");
  ProxyConfig scratch;
  by_flag_rules(where, spec->name, *text, [&](const FlagArg& a) {
    spec->apply(scratch, a);
    return 0;
  });
  return scratch;
}

void apply_service_key(const std::string& file, std::string_view key, const toml::node& value,
                       ServiceConfig& service) {
  std::string where = service_where(file, value, service.name, key);
  if (key == "name") return;  // read first
  for (const ServiceFlagKey& k : kServiceFlagKeys) {
    if (key != k.key) continue;
    service.*k.own = by_flag_handler(where, key, value).*k.flag;
    if (key == "upstream-max-conns") service.upstream_max_conns_line = static_cast<uint32_t>(value.source().begin.line);
    return;
  }
  if (key == "body-bytes-max") {
    service.body_bytes_max = by_flag_handler(where, key, value).body_bytes_max;
    return;
  }
  if (key == "hosts") {
    for (const toml::node* item : list_of(value, where)) {
      std::string problem;
      std::string host = host_pattern(string_of(*item, where), &problem);
      if (host.empty()) fail(where + problem + ", got " + quoted(item->value_or(std::string_view{})));
      if (std::find(service.hosts.begin(), service.hosts.end(), host) != service.hosts.end()) {
        fail(where + "duplicate host " + quoted(host));
      }
      service.hosts.push_back(std::move(host));
    }
  } else if (key == "path-prefix") {
    std::string prefix = string_of(value, where);
    bool plain = std::none_of(prefix.begin(), prefix.end(), [](char c) {
      return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '?' || c == '#';
    });
    if (prefix.empty() || prefix.front() != '/' || !plain || prefix.size() > kPathPrefixBytesMax) {
      fail(where + "expected a path starting with '/' (no spaces, '?' or '#'), got " + quoted(prefix));
    }
    service.path_prefix = std::move(prefix);
  } else if (key == "targets-path" || key == "cache-version-path") {
    std::string flag = "--" + std::string(key);
    std::string text = string_of(value, where);
    std::string path = by_flag_rules(where, flag, text, [](const FlagArg& a) { return znode_path_value(a); });
    (key == "targets-path" ? service.source.targets_path : service.source.cache_version_path) = path;
  } else if (key == "targets-format") {
    std::string text = string_of(value, where);
    service.source.format =
        by_flag_rules(where, "--targets-format", text, [](const FlagArg& a) { return registry_format_value(a); });
  } else if (key == "serverset-endpoint") {
    std::string text = string_of(value, where);
    service.source.serverset_endpoint =
        by_flag_rules(where, "--serverset-endpoint", text, [](const FlagArg& a) { return line_text_value(a); });
  } else if (key == "counts-path") {
    std::string text = string_of(value, where);
    service.source.counts_path =
        by_flag_rules(where, "--counts-path", text, [](const FlagArg& a) { return znode_path_value(a); });
  } else if (key == "target") {
    for (const toml::node* item : list_of(value, where)) {
      std::string text = string_of(*item, where);
      base::HostPort hp = by_flag_rules(where, "--target", text, [](const FlagArg& a) { return host_port_value(a); });
      auto& targets = service.source.static_targets;
      if (std::find(targets.begin(), targets.end(), hp) != targets.end()) fail(where + "duplicate target " + quoted(text));
      targets.push_back(std::move(hp));
    }
  } else if (key == "cache") {
    if (!value.is_boolean()) fail(where + "expected true or false");
    service.cache = value.as_boolean()->get();
  } else if (key == "cache-bytes") {
    std::optional<std::string> text = flag_text(value);
    if (!text) fail(where + "expected a size");
    service.cache_bytes = by_flag_rules(where, "--cache-bytes", *text,
                                        [](const FlagArg& a) { return size_value(a, 1u << 20, kBytesMax); });
  } else if (key == "cache-ttl") {
    std::optional<std::string> text = flag_text(value);
    if (!text) fail(where + "expected seconds");
    service.cache_ttl_s = by_flag_rules(where, "--cache-ttl", *text,
                                        [](const FlagArg& a) { return uint_value(a, 0, kCacheTtlSecondsMax); });
  } else {
    fail(where + "unknown setting (expected name, hosts, path-prefix, targets-path, cache-version-path, "
                 "targets-format, serverset-endpoint, counts-path, target, cache, cache-bytes, cache-ttl, "
                 "connect-timeout-ms, upstream-timeout-ms, upstream-max-conns, upstream-queue-max, "
                 "upstream-queue-timeout-ms, upstream-idle-timeout-ms or body-bytes-max)");
  }
}

ServiceConfig parse_service(const std::string& file, const toml::node& node) {
  const toml::table* table = node.as_table();
  if (table == nullptr) fail(service_where(file, node, {}, "service") + "expected a [[service]] table");
  ServiceConfig service;
  service.line = static_cast<uint32_t>(node.source().begin.line);
  const toml::node* name = table->get("name");
  if (name == nullptr) fail(service_where(file, node, {}, "name") + "required");
  std::string where = service_where(file, *name, {}, "name");
  service.name = string_of(*name, where);
  bool good = !service.name.empty() && service.name.size() <= kServiceNameBytesMax &&
              std::all_of(service.name.begin(), service.name.end(), name_char);
  if (!good) fail(where + "expected 1-64 of letters, digits, '_', '.', '-', got " + quoted(service.name));
  if (service.name == kFlagsServiceName || service.name == "none") {
    fail(where + quoted(service.name) + " is reserved (the flags' service, or no service)");
  }
  for (auto&& [key, value] : *table) apply_service_key(file, key.str(), value, service);
  const TargetSource& source = service.source;
  if (source.targets_path.empty() == source.static_targets.empty()) {
    fail(service_where(file, node, service.name, "target") + "expected exactly one of targets-path or target");
  }
  if (!source.cache_version_path.empty()) {
    if (source.static_targets.size() > 0) {
      fail(service_where(file, node, service.name, "cache-version-path") + "needs targets-path (ZooKeeper)");
    }
    const std::string& t = source.targets_path;
    const std::string& v = source.cache_version_path;
    if (v == t || v.starts_with(t + "/")) {
      fail(service_where(file, node, service.name, "cache-version-path") + "must not be targets-path or inside it");
    }
  }
  // A registry format is a property of the ZooKeeper source (README "Other registries").
  auto key_line = [&](std::string_view key) -> const toml::node& {
    const toml::node* n = table->get(key);
    return n != nullptr ? *n : node;
  };
  if (source.targets_path.empty()) {
    for (std::string_view key : {"targets-format", "serverset-endpoint", "counts-path"}) {
      if (table->contains(key)) fail(service_where(file, key_line(key), service.name, key) + "needs targets-path (ZooKeeper)");
    }
  }
  if (!source.serverset_endpoint.empty() && source.format != "serverset") {
    fail(service_where(file, key_line("serverset-endpoint"), service.name, "serverset-endpoint") +
         "needs targets-format \"serverset\"");
  }
  if (!source.counts_path.empty()) {
    if (source.format == "ringmaster") {
      fail(service_where(file, key_line("counts-path"), service.name, "counts-path") +
           "needs a foreign targets-format (nerve, serverset or curator): ours keeps counts in the targets");
    }
    const std::string& t = source.targets_path;
    const std::string& c = source.counts_path;
    if (c == t || c.starts_with(t + "/") || t.starts_with(c + "/")) {
      fail(service_where(file, key_line("counts-path"), service.name, "counts-path") +
           "must not be targets-path, inside it or above it, got " + quoted(c));
    }
  }
  return service;
}

bool paths_overlap(const std::string& a, const std::string& b) {
  return a == b || a.starts_with(b + "/") || b.starts_with(a + "/");
}

// Services on one targets path share its source: one format, endpoint, counts path and
// content version node (the coordinator reads and watches a targets path once, with its
// version node). A foreign source's counts path is its own (not another source's, nor inside
// a targets path).
void check_service_formats(ProxyConfig& config) {
  const std::string& file = config.config_file;
  struct Seen {
    std::string owner;  // "--targets-path" or service "NAME"
    std::string where;  // what a message about its counts path starts with
    const TargetSource* source;
  };
  std::map<std::string, Seen> by_targets;
  TargetSource flags;
  if (!config.zk.empty()) {
    flags.targets_path = config.targets_path;
    flags.cache_version_path = config.cache_version_path;
    flags.format = config.targets_format;
    flags.serverset_endpoint = config.serverset_endpoint;
    flags.counts_path = config.targets_format == "ringmaster" ? ""
                        : config.counts_path.empty() ? config.fleet_path + "/counts/default"
                                                     : config.counts_path;
    by_targets[flags.targets_path] = {"--targets-path", "--counts-path: ", &flags};
  }
  for (ServiceConfig& s : config.services) {
    TargetSource& source = s.source;
    if (source.targets_path.empty()) continue;
    std::string where = printable(file, kPathBytesMax) + ":" + std::to_string(s.line) + ": service " + quoted(s.name) + ": ";
    auto it = by_targets.find(source.targets_path);
    if (it == by_targets.end()) {
      if (source.format != "ringmaster" && source.counts_path.empty()) {
        source.counts_path = config.fleet_path + "/counts/" + s.name;
      }
      by_targets[source.targets_path] = {"service " + quoted(s.name), where + "counts-path: ", &source};
      continue;
    }
    const TargetSource& first = *it->second.source;
    if (source.counts_path.empty()) source.counts_path = first.counts_path;
    const char* key = source.format != first.format                         ? "targets-format"
                      : source.serverset_endpoint != first.serverset_endpoint ? "serverset-endpoint"
                      : source.counts_path != first.counts_path               ? "counts-path"
                      : source.cache_version_path != first.cache_version_path ? "cache-version-path"
                                                                              : nullptr;
    if (key != nullptr) {
      fail(where + key + ": targets-path " + quoted(source.targets_path) + " is shared with " + it->second.owner +
           ", which reads it differently (one targets path, one format, endpoint, counts path and "
           "cache-version-path)");
    }
  }
  std::vector<const Seen*> counts;  // the foreign sources
  for (const auto& [targets, seen] : by_targets) {
    if (!seen.source->counts_path.empty()) counts.push_back(&seen);
  }
  for (size_t i = 0; i < counts.size(); ++i) {
    const std::string& path = counts[i]->source->counts_path;
    for (const auto& [targets, seen] : by_targets) {
      // (Its own targets path: checked with the key's line, or by --counts-path's rule.)
      if (&seen == counts[i] || !paths_overlap(path, targets)) continue;
      fail(counts[i]->where + quoted(path) + " overlaps the targets path of " + seen.owner);
    }
    for (size_t j = i + 1; j < counts.size(); ++j) {
      const std::string& other = counts[j]->source->counts_path;
      if (!paths_overlap(path, other)) continue;
      fail(counts[j]->where + quoted(other) + " overlaps the counts path of " + counts[i]->owner +
           " (each foreign source needs its own)");
    }
  }
}

// The rules between services and against the flags: unique names, no two services matching
// the same (host, prefix), ZooKeeper sources only with --zk and clear of the fleet's nodes.
void check_services(const ProxyConfig& config) {
  const std::string& file = config.config_file;
  std::set<std::string> names;
  std::set<std::pair<std::string, std::string>> matches;
  for (const ServiceConfig& s : config.services) {
    std::string where = printable(file, kPathBytesMax) + ":" + std::to_string(s.line) + ": service " + quoted(s.name) + ": ";
    if (!names.insert(s.name).second) fail(where + "name: duplicate service name");
    std::vector<std::string> hosts = s.hosts.empty() ? std::vector<std::string>{""} : s.hosts;
    for (const std::string& host : hosts) {
      if (!matches.insert({host, s.path_prefix}).second) {
        fail(where + "hosts: another service already matches host " + quoted(host.empty() ? "(any)" : host) +
             " with path-prefix " + quoted(s.path_prefix));
      }
    }
    const std::string& targets = s.source.targets_path;
    if (targets.empty()) continue;
    if (config.zk.empty()) fail(where + "targets-path: needs zk (ZooKeeper) to be set");
    const std::string& fleet = config.fleet_path;
    if (fleet == targets || fleet.starts_with(targets + "/") || targets.starts_with(fleet + "/")) {
      fail(where + "targets-path: must not be fleet-path, inside it or above it, got " + quoted(targets));
    }
  }
  if (config.services.size() > kServicesMax) fail(printable(file, kPathBytesMax) + ": more than 4096 services");
}

// Each service's timeouts and limits: unset ones take the flags' values; upstream-max-conns
// follows the flag's rule against --threads; services reading one targets path share its
// targets' connections (one count per target and reactor), so they must limit them alike.
void check_service_limits(ProxyConfig& config) {
  const std::string& file = config.config_file;
  struct Owner {
    std::string name;  // "--targets-path" or service "NAME"
    uint32_t max_conns;
    uint32_t queue_max;
  };
  std::map<std::string, Owner> by_targets;
  if (!config.zk.empty() && config.default_service == kFlagsServiceName) {
    by_targets[config.targets_path] = {"--targets-path", config.upstream_max_conns, config.upstream_queue_max};
  }
  for (ServiceConfig& s : config.services) {
    for (const ServiceFlagKey& k : kServiceFlagKeys) {
      if (!(s.*k.own)) s.*k.own = config.*k.flag;
    }
    if (!s.body_bytes_max) s.body_bytes_max = config.body_bytes_max;
    std::string where = printable(file, kPathBytesMax) + ":" + std::to_string(s.upstream_max_conns_line ? s.upstream_max_conns_line : s.line) +
                        ": service " + quoted(s.name) + ": upstream-max-conns: ";
    uint32_t conns = *s.upstream_max_conns;
    if (conns != 0 && conns < config.threads) {
      fail(where + "must be 0 or at least --threads (" + std::to_string(config.threads) + "), got " +
           quoted(std::to_string(conns)));
    }
    if (s.source.targets_path.empty()) continue;
    auto [it, added] =
        by_targets.try_emplace(s.source.targets_path, Owner{"service " + quoted(s.name), conns, *s.upstream_queue_max});
    if (added) continue;
    const char* key = it->second.max_conns != conns                 ? "upstream-max-conns"
                      : it->second.queue_max != *s.upstream_queue_max ? "upstream-queue-max"
                                                                      : nullptr;
    if (key != nullptr) {
      fail(printable(file, kPathBytesMax) + ":" + std::to_string(s.line) + ": service " + quoted(s.name) + ": " + key +
           ": targets-path " + quoted(s.source.targets_path) + " is shared with " + it->second.name +
           ", which limits it differently (its targets' connections are counted once for both)");
    }
  }
}

void apply_config_file(const std::string& path, ProxyConfig& config, SeenFlags& seen) {
  std::ifstream in(path);
  if (!in) fail(printable(path, kPathBytesMax) + ": cannot read: " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  toml::table table;
  try {
    table = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    fail(printable(path, kPathBytesMax) + ":" + std::to_string(e.source().begin.line) + ": " + printable(e.description()));
  }
  uint32_t default_service_line = 0;
  for (auto&& [key, value] : table) {
    std::string where =
        printable(path, kPathBytesMax) + ":" + std::to_string(key.source().begin.line) + ": " + printable(key.str()) + ": ";
    if (key.str() == "service") {
      for (const toml::node* item : list_of(value, where)) config.services.push_back(parse_service(path, *item));
      continue;
    }
    if (key.str() == "default-service") {
      config.default_service = string_of(value, where);
      default_service_line = static_cast<uint32_t>(key.source().begin.line);
      continue;
    }
    const FlagSpec<ProxyConfig>* spec = find_flag<ProxyConfig>("--" + std::string(key.str()), kProxyFlags);
    if (spec == nullptr || spec->name == "--config") fail(where + "unknown setting");
    if (const toml::array* list = value.as_array()) {
      if (spec->name != "--target") fail(where + "expected one value, not a list");
      for (const toml::node& item : *list) apply_setting(*spec, item, where, config);
    } else {
      apply_setting(*spec, value, where, config);
    }
    seen.insert(spec->name);
  }
  const std::string& wanted = config.default_service;
  bool known = wanted.empty() || wanted == kFlagsServiceName || wanted == "none" ||
               std::any_of(config.services.begin(), config.services.end(),
                           [&wanted](const ServiceConfig& s) { return s.name == wanted; });
  if (!known) {
    fail(printable(path, kPathBytesMax) + ":" + std::to_string(default_service_line) + ": default-service: no service named " +
         quoted(wanted) + " (expected a [[service]] name, \"default\" or \"none\")");
  }
}

void check_proxy(ProxyConfig& config, const SeenFlags& seen) {
  if (!seen.contains("--listen")) fail("--listen is required");
  bool flags_service = !config.zk.empty() || !config.targets.empty();
  if (!flags_service && config.services.empty()) fail("one of --zk or --target is required");
  if (config.default_service.empty()) config.default_service = flags_service ? kFlagsServiceName : "none";
  if (config.default_service == kFlagsServiceName && !flags_service) {
    fail(printable(config.config_file, kPathBytesMax) + ": default-service: \"default\" needs --zk or --target");
  }
  if (!config.zk.empty() && !config.targets.empty()) fail("--zk and --target are mutually exclusive");
  if (config.admin && *config.admin == config.listen) {
    fail("--admin must differ from --listen, got " + quoted(config.admin->to_string()));
  }
  if (config.request_line_bytes_max > config.header_bytes_max) {
    if (seen.contains("--request-line-bytes-max")) {
      fail("--request-line-bytes-max (" + std::to_string(config.request_line_bytes_max) +
           ") must not exceed --header-bytes-max (" + std::to_string(config.header_bytes_max) + ")");
    }
    // Only the default is too big: the request line is part of the head, so shrink it along.
    config.request_line_bytes_max = config.header_bytes_max;
  }
  check_services(config);
  check_service_formats(config);
  // Each reactor holds its own share of the connection limit (no lock on the request path):
  // fewer connections than reactors would leave a reactor that can never reach the target.
  // The default (1024) is raised to one per reactor on hosts with more reactors than that.
  if (config.upstream_max_conns != 0 && config.upstream_max_conns < config.threads) {
    if (seen.contains("--upstream-max-conns")) {
      fail("--upstream-max-conns must be 0 or at least --threads (" + std::to_string(config.threads) + "), got " +
           quoted(std::to_string(config.upstream_max_conns)));
    }
    config.upstream_max_conns = config.threads;
  }
  check_service_limits(config);
  check_znode_paths(config);
  // The fleet's nodes under the targets path would be read as (bad) targets, and the other
  // way round.
  const std::string& fleet = config.fleet_path;
  const std::string& targets = config.targets_path;
  if (fleet == targets || fleet.starts_with(targets + "/") || targets.starts_with(fleet + "/")) {
    fail("--fleet-path must not be --targets-path, inside it or above it, got " + quoted(fleet));
  }
  if (!config.serverset_endpoint.empty() && config.targets_format != "serverset") {
    fail("--serverset-endpoint needs --targets-format serverset");
  }
  if (config.counts_path.empty()) config.counts_path = fleet + "/counts/default";
  // Count nodes inside the targets path would be read as registrations, and the other way round.
  const std::string& counts = config.counts_path;
  if (counts == targets || counts.starts_with(targets + "/") || targets.starts_with(counts + "/")) {
    fail("--counts-path must not be --targets-path, inside it or above it, got " + quoted(counts));
  }
}

const FlagSpec<AgentConfig> kAgentFlags[] = {
    {"--target", "HOST:PORT", [](AgentConfig& c, const FlagArg& a) { c.target = host_port_value(a); },
     [](const AgentConfig&) -> std::string { return "required"; }, "the backend this agent announces"},
    {"--health-path", "PATH", [](AgentConfig& c, const FlagArg& a) { c.health_path = health_path_value(a); },
     [](const AgentConfig& c) { return c.health_path.value_or("none (always healthy)"); },
     "HTTP GET health check; the node is held only while healthy"},
    {"--health-interval-ms", "MS",
     [](AgentConfig& c, const FlagArg& a) { c.health_interval_ms = timeout_ms_value(a); },
     [](const AgentConfig& c) { return show_number(c.health_interval_ms); }, "health check cadence"},
    {"--health-timeout-ms", "MS",
     [](AgentConfig& c, const FlagArg& a) { c.health_timeout_ms = timeout_ms_value(a); },
     [](const AgentConfig& c) { return show_number(c.health_timeout_ms); }, "health check timeout"},
    {"--health-rise", "N",
     [](AgentConfig& c, const FlagArg& a) { c.health_rise = uint_value(a, 1, kHealthCountMax); },
     [](const AgentConfig& c) { return show_number(c.health_rise); }, "consecutive passes to become healthy"},
    {"--health-fall", "N",
     [](AgentConfig& c, const FlagArg& a) { c.health_fall = uint_value(a, 1, kHealthCountMax); },
     [](const AgentConfig& c) { return show_number(c.health_fall); }, "consecutive failures to become unhealthy"},
    {"--content-version", "V",
     [](AgentConfig& c, const FlagArg& a) { c.content_version = line_text_value(a); },
     [](const AgentConfig& c) { return c.content_version.value_or("none"); },
     "written to the cache-version node when its value differs"},
    {"--format", "FORMAT", [](AgentConfig& c, const FlagArg& a) { c.format = registry_format_value(a); },
     [](const AgentConfig& c) { return c.format; },
     "register as ringmaster, nerve, serverset or curator does"},
    {"--name", "NAME", [](AgentConfig& c, const FlagArg& a) { c.name = line_text_value(a); },
     [](const AgentConfig&) -> std::string { return "nerve: the target's host; curator: --targets-path's last part"; },
     "nerve: the instance name; curator: the service name"},
    {"--weight", "N", [](AgentConfig& c, const FlagArg& a) { c.weight = uint_value(a, 0, kWeightMax); },
     [](const AgentConfig&) -> std::string { return "none"; }, "nerve: the weight written, 0..10000"},
    {"--session-timeout-ms", "MS",
     [](AgentConfig& c, const FlagArg& a) {
       c.session_timeout_ms = uint_value(a, kSessionTimeoutMsMin, kSessionTimeoutMsMax);
     },
     [](const AgentConfig& c) { return show_number(c.session_timeout_ms); }, "ZooKeeper session timeout"},
};

void check_agent(const AgentConfig& config, const SeenFlags& seen) {
  if (!seen.contains("--zk")) fail("--zk is required");
  if (!seen.contains("--target")) fail("--target is required");
  check_znode_paths(config);
  if (config.weight && config.format != "nerve") fail("--weight needs --format nerve");
  if (!config.name.empty() && config.format != "nerve" && config.format != "curator") {
    fail("--name needs --format nerve or curator");
  }
}

// "  --flag VALUE   meaning (default: D)", one line per flag of both tables, from `defaults`.
template <typename Config>
std::string flags_help(std::span<const FlagSpec<Config>> own, const Config& defaults) {
  constexpr size_t kColumn = 36;
  std::string out;
  using Table = std::span<const FlagSpec<Config>>;
  for (Table table : {own, Table(kSharedFlags<Config>)}) {
    for (const auto& spec : table) {
      // Appends, not "literal" + std::string: GCC 12 at -O3 warns falsely (-Wrestrict) there.
      std::string usage(2, ' ');
      usage.append(spec.name);
      if (spec.takes_value()) usage.append(" ").append(spec.value_name);
      usage.resize(std::max(usage.size() + 1, kColumn), ' ');
      out += usage + std::string(spec.help) + " (default: " + spec.show(defaults) + ")\n";
    }
  }
  return out;
}

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
  unsigned shift = 0;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      default: break;
    }
  }
  if (shift != 0) text.remove_suffix(1);
  auto value = parse_digits(text);
  if (!value || *value > (UINT64_MAX >> shift)) return std::nullopt;
  return *value << shift;
}

std::string proxy_flags_help() { return flags_help<ProxyConfig>(kProxyFlags, default_proxy_config()); }

std::string agent_flags_help() {
  // A named object, not a temporary: GCC 12 at -O3 reports a false -Wmaybe-uninitialized on
  // the temporary's strings once this file inlines enough.
  const AgentConfig defaults;
  return flags_help<AgentConfig>(kAgentFlags, defaults);
}

ProxyConfig parse_proxy_args(const std::vector<std::string_view>& args) {
  ProxyConfig config = default_proxy_config();
  SeenFlags seen = parse_flags<ProxyConfig>(args, kProxyFlags, config);
  if (!config.config_file.empty()) {
    // The file first, then the command line again on top of it.
    ProxyConfig from_file = default_proxy_config();
    SeenFlags file_seen;
    apply_config_file(config.config_file, from_file, file_seen);
    if (seen.contains("--target")) from_file.targets.clear();
    parse_flags<ProxyConfig>(args, kProxyFlags, from_file);
    config = std::move(from_file);
    seen.merge(file_seen);
  }
  check_proxy(config, seen);
  return config;
}

AgentConfig parse_agent_args(const std::vector<std::string_view>& args) {
  AgentConfig config;
  SeenFlags seen = parse_flags<AgentConfig>(args, kAgentFlags, config);
  check_agent(config, seen);
  return config;
}

}  // namespace ringmaster::config
