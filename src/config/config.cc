// Command-line parsing for `ringmaster proxy` and `ringmaster agent`.
//
// Shape: each command has a table of flag descriptors (name, whether it takes a value, a
// handler that parses the value into the config struct). One generic loop walks the
// arguments and dispatches through the tables; the flags both commands share live in one
// table used by both. After the loop, a per-command check enforces the rules that involve
// more than one flag (required flags, --zk vs --target, request line vs header bytes).
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
//   agent: --health-rise/--health-fall 1..1000, --session-timeout-ms 1000..120000,
//     --health-path and --content-version at most 1024 bytes.
#include "ringmaster/config/config.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <span>

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
constexpr uint32_t kHealthCountMax = 1000;
constexpr uint32_t kSessionTimeoutMsMin = 1000;
constexpr uint32_t kSessionTimeoutMsMax = 120000;
constexpr size_t kTextBytesMax = 1024;  // --health-path, --content-version
constexpr size_t kQuotedBytesMax = 80;  // longer values are cut in error messages

// Escapes everything outside printable ASCII so that an error message stays on one line.
std::string printable(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= kQuotedBytesMax) {
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

template <typename Config>
struct FlagSpec {
  std::string_view name;
  bool takes_value;
  void (*apply)(Config& config, const FlagArg& arg);
};

// Flags with the same meaning in both commands (both structs name these members alike).
template <typename Config>
const FlagSpec<Config> kSharedFlags[] = {
    {"--zk", true, [](Config& c, const FlagArg& a) { c.zk = zk_value(a); }},
    {"--targets-path", true, [](Config& c, const FlagArg& a) { c.targets_path = znode_path_value(a); }},
    {"--cache-version-path", true,
     [](Config& c, const FlagArg& a) { c.cache_version_path = znode_path_value(a); }},
    {"--verbose", false, [](Config& c, const FlagArg&) { c.verbose = true; }},
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
    if (!spec->takes_value) {
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

void add_static_target(ProxyConfig& config, const FlagArg& arg) {
  base::HostPort target = host_port_value(arg);
  // In ZooKeeper mode a target is a znode name, so it appears once; keep static mode alike.
  if (std::find(config.targets.begin(), config.targets.end(), target) != config.targets.end()) {
    fail_value(arg, "duplicate target");
  }
  config.targets.push_back(std::move(target));
}

const FlagSpec<ProxyConfig> kProxyFlags[] = {
    {"--listen", true, [](ProxyConfig& c, const FlagArg& a) { c.listen = host_port_value(a); }},
    {"--threads", true, [](ProxyConfig& c, const FlagArg& a) { c.threads = uint_value(a, 1, kThreadsMax); }},
    {"--admin", true, [](ProxyConfig& c, const FlagArg& a) { c.admin = host_port_value(a); }},
    {"--target", true, add_static_target},
    {"--flush-interval-ms", true,
     [](ProxyConfig& c, const FlagArg& a) { c.flush_interval_ms = uint_value(a, 1, kFlushIntervalMsMax); }},
    {"--cache-bytes", true, [](ProxyConfig& c, const FlagArg& a) { c.cache_bytes = size_value(a, 0, kBytesMax); }},
    {"--cache-object-max", true,
     [](ProxyConfig& c, const FlagArg& a) { c.cache_object_max = size_value(a, 1, kBytesMax); }},
    {"--cache-serve-stale", true,
     [](ProxyConfig& c, const FlagArg& a) { c.cache_serve_stale_s = uint_value(a, 0, kCacheTtlSecondsMax); }},
    {"--cache-stale-on-5xx", false, [](ProxyConfig& c, const FlagArg&) { c.cache_stale_on_5xx = true; }},
    {"--cache-lock-timeout-ms", true,
     [](ProxyConfig& c, const FlagArg& a) { c.cache_lock_timeout_ms = timeout_ms_value(a); }},
    {"--cache-ttl", true,
     [](ProxyConfig& c, const FlagArg& a) { c.cache_ttl_s = uint_value(a, 0, kCacheTtlSecondsMax); }},
    {"--request-line-bytes-max", true,
     [](ProxyConfig& c, const FlagArg& a) {
       c.request_line_bytes_max = static_cast<uint32_t>(size_value(a, kRequestLineBytesMin, kHeaderBytesMax));
     }},
    {"--header-bytes-max", true,
     [](ProxyConfig& c, const FlagArg& a) {
       c.header_bytes_max = static_cast<uint32_t>(size_value(a, kHeaderBytesMin, kHeaderBytesMax));
     }},
    {"--header-count-max", true,
     [](ProxyConfig& c, const FlagArg& a) { c.header_count_max = uint_value(a, 1, kHeaderCountMax); }},
    {"--body-bytes-max", true,
     [](ProxyConfig& c, const FlagArg& a) { c.body_bytes_max = size_value(a, 0, kBytesMax); }},
    {"--header-timeout-ms", true, [](ProxyConfig& c, const FlagArg& a) { c.header_timeout_ms = timeout_ms_value(a); }},
    {"--idle-timeout-ms", true, [](ProxyConfig& c, const FlagArg& a) { c.idle_timeout_ms = timeout_ms_value(a); }},
    {"--client-timeout-ms", true, [](ProxyConfig& c, const FlagArg& a) { c.client_timeout_ms = timeout_ms_value(a); }},
    {"--connect-timeout-ms", true,
     [](ProxyConfig& c, const FlagArg& a) { c.connect_timeout_ms = timeout_ms_value(a); }},
    {"--upstream-timeout-ms", true,
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_timeout_ms = timeout_ms_value(a); }},
    {"--shutdown-timeout-ms", true,
     [](ProxyConfig& c, const FlagArg& a) { c.shutdown_timeout_ms = timeout_ms_value(a); }},
    {"--max-connections", true,
     [](ProxyConfig& c, const FlagArg& a) { c.max_connections = uint_value(a, 1, kMaxConnectionsMax); }},
    {"--upstream-idle-max", true,
     [](ProxyConfig& c, const FlagArg& a) { c.upstream_idle_max = uint_value(a, 0, kUpstreamIdleMax); }},
    {"--session-timeout-ms", true,
     [](ProxyConfig& c, const FlagArg& a) {
       c.session_timeout_ms = uint_value(a, kSessionTimeoutMsMin, kSessionTimeoutMsMax);
     }},
};

void check_proxy(ProxyConfig& config, const SeenFlags& seen) {
  if (!seen.contains("--listen")) fail("--listen is required");
  if (config.zk.empty() && config.targets.empty()) fail("one of --zk or --target is required");
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
  check_znode_paths(config);
}

const FlagSpec<AgentConfig> kAgentFlags[] = {
    {"--target", true, [](AgentConfig& c, const FlagArg& a) { c.target = host_port_value(a); }},
    {"--health-path", true, [](AgentConfig& c, const FlagArg& a) { c.health_path = health_path_value(a); }},
    {"--health-interval-ms", true,
     [](AgentConfig& c, const FlagArg& a) { c.health_interval_ms = timeout_ms_value(a); }},
    {"--health-timeout-ms", true,
     [](AgentConfig& c, const FlagArg& a) { c.health_timeout_ms = timeout_ms_value(a); }},
    {"--health-rise", true,
     [](AgentConfig& c, const FlagArg& a) { c.health_rise = uint_value(a, 1, kHealthCountMax); }},
    {"--health-fall", true,
     [](AgentConfig& c, const FlagArg& a) { c.health_fall = uint_value(a, 1, kHealthCountMax); }},
    {"--content-version", true,
     [](AgentConfig& c, const FlagArg& a) { c.content_version = line_text_value(a); }},
    {"--session-timeout-ms", true,
     [](AgentConfig& c, const FlagArg& a) {
       c.session_timeout_ms = uint_value(a, kSessionTimeoutMsMin, kSessionTimeoutMsMax);
     }},
};

void check_agent(const AgentConfig& config, const SeenFlags& seen) {
  if (!seen.contains("--zk")) fail("--zk is required");
  if (!seen.contains("--target")) fail("--target is required");
  check_znode_paths(config);
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

ProxyConfig parse_proxy_args(const std::vector<std::string_view>& args) {
  ProxyConfig config;
  config.threads = online_cpus();
  SeenFlags seen = parse_flags<ProxyConfig>(args, kProxyFlags, config);
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
