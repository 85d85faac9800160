// `ringmaster proxy --config FILE`: a TOML file with one key per flag, applied through the
// flags' own specs before the command line, whose errors name the file, the line and the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "ringmaster/config/config.h"

namespace ringmaster::config {
namespace {

using Words = std::vector<std::string>;

// Writes `text` to a fresh file under the test's temporary directory; returns its path.
std::string write_file(const std::string& name, const std::string& text) {
  std::string path = testing::TempDir() + "ringmaster-" + std::to_string(getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

ProxyConfig parse(const Words& words) { return parse_proxy_args({words.begin(), words.end()}); }

std::string error_of(const Words& words) {
  try {
    parse(words);
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

constexpr const char* kGood =
    "# a single static service\n"
    "listen = \"127.0.0.1:8080\"\n"
    "target = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n"
    "threads = 3\n"
    "cache-ttl = 31536000\n"
    "cache-bytes = \"64M\"\n"
    "body-bytes-max = 1024\n"
    "fleet = false\n"
    "verbose = true\n";

TEST(ConfigFile, SettingsFillTheConfigThroughTheFlagsRules) {
  std::string path = write_file("good.toml", kGood);
  ProxyConfig c = parse({"--config", path});
  EXPECT_EQ(c.config_file, path);
  EXPECT_EQ(c.listen, (base::HostPort{"127.0.0.1", 8080}));
  ASSERT_EQ(c.targets.size(), 2u);
  EXPECT_EQ(c.targets[1], (base::HostPort{"127.0.0.1", 9002}));
  EXPECT_EQ(c.threads, 3u);
  EXPECT_EQ(cache_ttl_ms(c), int64_t{31'536'000'000});
  EXPECT_EQ(c.cache_bytes, 64ull << 20);
  EXPECT_EQ(c.body_bytes_max, 1024u);
  EXPECT_FALSE(c.fleet);
  EXPECT_TRUE(c.verbose);
}

TEST(ConfigFile, CommandLineFlagsOverrideTheFileWhereverTheyStand) {
  std::string path = write_file("override.toml", kGood);
  for (const Words& words : {Words{"--threads", "5", "--config", path}, Words{"--config=" + path, "--threads=5"}}) {
    ProxyConfig c = parse(words);
    EXPECT_EQ(c.threads, 5u);
    EXPECT_EQ(c.cache_bytes, 64ull << 20);  // the rest still from the file
  }
  // A --target on the command line replaces the file's list rather than adding to it.
  ProxyConfig c = parse({"--config", path, "--target", "127.0.0.1:9100"});
  EXPECT_EQ(c.targets, (std::vector<base::HostPort>{{"127.0.0.1", 9100}}));
}

struct BadFile {
  const char* name;
  std::string text;
  std::string expected;  // after "<path>:"
};

TEST(ConfigFile, ErrorsNameTheFileTheLineAndTheKey) {
  const std::string head = "listen = \"127.0.0.1:8080\"\ntarget = \"127.0.0.1:9001\"\n";
  const std::vector<BadFile> cases = {
      {"bad-value", head + "\ncache-ttl = 31536001\n", "4: cache-ttl: expected an integer 0..31536000, got \"31536001\""},
      {"unknown-key", head + "no-such-setting = 1\n", "3: no-such-setting: unknown setting"},
      {"config-in-config", head + "config = \"other.toml\"\n", "3: config: unknown setting"},
      {"list-for-one-value", head + "threads = [1, 2]\n", "3: threads: expected one value, not a list"},
      {"float", head + "threads = 1.5\n", "3: threads: expected a string, an integer or a boolean"},
      {"switch-as-text", head + "verbose = \"yes\"\n", "3: verbose: expected true or false"},
      {"table", head + "[services.api]\nhost = \"api.example.com\"\n", "3: services: unknown setting"},
      {"bad-target-in-list", "target = [\"127.0.0.1:1\", \"nonsense\"]\n",
       "1: target: expected HOST:PORT, got \"nonsense\""},
      {"negative", head + "threads = -1\n", "3: threads: expected an integer 1..1024, got \"-1\""},
  };
  for (const BadFile& bad : cases) {
    SCOPED_TRACE(bad.name);
    std::string path = write_file(std::string(bad.name) + ".toml", bad.text);
    std::string message = error_of({"--config", path});
    EXPECT_TRUE(message.starts_with(path + ":" + bad.expected)) << message;
  }
}

TEST(ConfigFile, SyntaxErrorsAndUnreadableFilesAreOneLineNamingTheFile) {
  std::string path = write_file("syntax.toml", "listen = \"127.0.0.1:8080\"\nthreads = = 2\n");
  EXPECT_TRUE(error_of({"--config", path}).starts_with(path + ":2: ")) << error_of({"--config", path});
  std::string missing = testing::TempDir() + "ringmaster-no-such-file.toml";
  EXPECT_EQ(error_of({"--config", missing}), missing + ": cannot read: No such file or directory");
}

TEST(ConfigFile, RulesAcrossSettingsStillApply) {
  std::string path = write_file("no-listen.toml", "target = \"127.0.0.1:9001\"\n");
  EXPECT_EQ(error_of({"--config", path}), "--listen is required");
  path = write_file("both.toml", "listen = \"127.0.0.1:8080\"\ntarget = \"127.0.0.1:9001\"\nzk = \"zk:2181\"\n");
  EXPECT_EQ(error_of({"--config", path}), "--zk and --target are mutually exclusive");
}

// ---- [[service]] tables: what they fill, and each mistake named by file, line and key ----

ProxyConfig parse_file(const std::string& path) { return parse({"--config", path}); }
std::string error_of(const std::string& path) { return error_of(Words{"--config", path}); }

constexpr const char* kHead =
    "listen = \"127.0.0.1:8080\"\n"
    "zk = \"127.0.0.1:2181\"\n";

TEST(Services, TablesFillTheServices) {
  std::string path = write_file("services.toml", std::string(kHead) +
                                                 "default-service = \"www\"\n"
                                                 "[[service]]\n"
                                                 "name = \"api\"\n"
                                                 "hosts = [\"API.example.com\", \"*.api.example.com\"]\n"
                                                 "targets-path = \"/services/api/targets\"\n"
                                                 "cache-version-path = \"/services/api/version\"\n"
                                                 "cache-ttl = 60\n"
                                                 "[[service]]\n"
                                                 "name = \"www\"\n"
                                                 "path-prefix = \"/static/\"\n"
                                                 "target = [\"127.0.0.1:9001\"]\n"
                                                 "cache = false\n");
  ProxyConfig c = parse_file(path);
  ASSERT_EQ(c.services.size(), 2u);
  EXPECT_EQ(c.default_service, "www");
  const ServiceConfig& api = c.services[0];
  EXPECT_EQ(api.name, "api");
  EXPECT_EQ(api.hosts, (std::vector<std::string>{"api.example.com", "*.api.example.com"}));
  EXPECT_EQ(api.path_prefix, "/");
  EXPECT_EQ(api.source.targets_path, "/services/api/targets");
  EXPECT_EQ(api.source.cache_version_path, "/services/api/version");
  EXPECT_EQ(api.cache_ttl_s, 60u);
  EXPECT_EQ(api.line, 4u);
  const ServiceConfig& www = c.services[1];
  EXPECT_EQ(www.path_prefix, "/static/");
  ASSERT_EQ(www.source.static_targets.size(), 1u);
  EXPECT_FALSE(www.cache);
}

TEST(Services, TheFlagsServiceIsTheDefaultUnlessTheFileSaysOtherwise) {
  std::string path = write_file("flags-service.toml", std::string(kHead));
  EXPECT_EQ(parse_file(path).default_service, "default");
  path = write_file("none.toml", "listen = \"127.0.0.1:8080\"\n[[service]]\nname = \"s\"\ntarget = [\"127.0.0.1:1\"]\n");
  EXPECT_EQ(parse_file(path).default_service, "none");
}

// A file that must be refused, and how its one-line message starts after "PATH:".
struct Bad {
  const char* name;
  std::string text;
  std::string expected;
};

void expect_errors(const std::vector<Bad>& cases) {
  for (const Bad& bad : cases) {
    SCOPED_TRACE(bad.name);
    std::string path = write_file(std::string(bad.name) + ".toml", bad.text);
    std::string message = error_of(path);
    EXPECT_TRUE(message.starts_with(path + ":" + bad.expected)) << message;
  }
}

TEST(Services, MistakesNameFileLineAndKey) {
  std::string head = kHead;  // two lines
  std::string api = "[[service]]\nname = \"api\"\ntargets-path = \"/api\"\n";  // lines 3-5
  std::vector<Bad> cases = {
      {"no-name", head + "[[service]]\ntarget = [\"127.0.0.1:1\"]\n", "3: service: name: required"},
      {"bad-name", head + "[[service]]\nname = \"a b\"\n", "4: service: name: expected 1-64 of"},
      {"reserved", head + "[[service]]\nname = \"default\"\n", "4: service: name: \"default\" is reserved"},
      {"dup-name", head + api + api, "6: service \"api\": name: duplicate service name"},
      {"bad-host", head + api + "hosts = [\"a b.com\"]\n", "6: service \"api\": hosts: expected a host name"},
      {"mid-wildcard", head + api + "hosts = [\"a.*.com\"]\n", "6: service \"api\": hosts: a wildcard is only"},
      {"host-port", head + api + "hosts = [\"a.com:80\"]\n", "6: service \"api\": hosts: expected a host name"},
      {"bad-prefix", head + api + "path-prefix = \"api\"\n",
       "6: service \"api\": path-prefix: expected a path starting with '/'"},
      {"bad-path", head + api + "cache-version-path = \"x\"\n", "6: service \"api\": cache-version-path: must start"},
      {"both-sources", head + api + "target = [\"127.0.0.1:1\"]\n",
       "3: service \"api\": target: expected exactly one of targets-path or target"},
      {"unknown-key", head + api + "colour = \"red\"\n", "6: service \"api\": colour: unknown setting"},
      {"same-match", head + api + "[[service]]\nname = \"b\"\ntargets-path = \"/b\"\n",
       "6: service \"b\": hosts: another service already matches host \"(any)\" with path-prefix \"/\""},
      {"no-default", head + "default-service = \"nope\"\n" + api,
       "3: default-service: no service named \"nope\""},
      {"in-fleet", head + "[[service]]\nname = \"f\"\ntargets-path = \"/ringmaster/x\"\n",
       "3: service \"f\": targets-path: must not be fleet-path"},
  };
  expect_errors(cases);
}

// ---- timeouts and upstream limits per service: the flags' keys, rules and defaults ----

TEST(Services, LimitsDefaultToTheFlagsAndTakeTheFlagsUnits) {
  std::string path = write_file("limits.toml", std::string(kHead) +
                                               "threads = 2\n"
                                               "upstream-timeout-ms = 7000\n"
                                               "[[service]]\n"
                                               "name = \"api\"\n"
                                               "hosts = [\"api\"]\n"
                                               "targets-path = \"/api\"\n"
                                               "connect-timeout-ms = 250\n"
                                               "upstream-timeout-ms = 1500\n"
                                               "upstream-max-conns = 0\n"
                                               "upstream-queue-max = 5\n"
                                               "upstream-queue-timeout-ms = 100\n"
                                               "upstream-idle-timeout-ms = 900\n"
                                               "body-bytes-max = \"64K\"\n"
                                               "[[service]]\n"
                                               "name = \"www\"\n"
                                               "target = [\"127.0.0.1:9001\"]\n");
  // A flag on the command line is the default of every service that does not set the key.
  ProxyConfig c = parse({"--config", path, "--upstream-queue-max", "77"});
  ASSERT_EQ(c.services.size(), 2u);
  const ServiceConfig& api = c.services[0];
  EXPECT_EQ(api.connect_timeout_ms, 250u);
  EXPECT_EQ(api.upstream_timeout_ms, 1500u);
  EXPECT_EQ(api.upstream_max_conns, 0u);
  EXPECT_EQ(api.upstream_queue_max, 5u);
  EXPECT_EQ(api.upstream_queue_timeout_ms, 100u);
  EXPECT_EQ(api.upstream_idle_timeout_ms, 900u);
  EXPECT_EQ(api.body_bytes_max, 64u << 10);
  const ServiceConfig& www = c.services[1];
  EXPECT_EQ(www.connect_timeout_ms, c.connect_timeout_ms);
  EXPECT_EQ(www.upstream_timeout_ms, 7000u);  // the file's top-level value
  EXPECT_EQ(www.upstream_max_conns, c.upstream_max_conns);
  EXPECT_EQ(www.upstream_queue_max, 77u);  // the command line's
  EXPECT_EQ(www.upstream_queue_timeout_ms, c.upstream_queue_timeout_ms);
  EXPECT_EQ(www.upstream_idle_timeout_ms, c.upstream_idle_timeout_ms);
  EXPECT_EQ(www.body_bytes_max, c.body_bytes_max);
}

TEST(Services, LimitMistakesNameFileLineAndKey) {
  std::string head = std::string(kHead) + "threads = 4\n";                     // three lines
  std::string api = "[[service]]\nname = \"api\"\ntargets-path = \"/api\"\n";  // lines 4-6
  std::string api2 = "[[service]]\nname = \"api2\"\nhosts = [\"b\"]\ntargets-path = \"/api\"\n";
  std::vector<Bad> cases = {
      {"zero-timeout", head + api + "upstream-timeout-ms = 0\n",
       "7: service \"api\": upstream-timeout-ms: expected an integer 1..86400000, got \"0\""},
      {"text-timeout", head + api + "connect-timeout-ms = \"soon\"\n",
       "7: service \"api\": connect-timeout-ms: expected an integer 1..86400000, got \"soon\""},
      {"bool-timeout", head + api + "upstream-queue-timeout-ms = true\n",
       "7: service \"api\": upstream-queue-timeout-ms: expected an integer"},
      {"float-queue", head + api + "upstream-queue-max = 1.5\n",
       "7: service \"api\": upstream-queue-max: expected an integer"},
      {"queue-too-big", head + api + "upstream-queue-max = 1000001\n",
       "7: service \"api\": upstream-queue-max: expected an integer 0..1000000"},
      {"bad-body", head + api + "body-bytes-max = \"2T\"\n", "7: service \"api\": body-bytes-max: expected a size"},
      {"conns-below-threads", head + api + "upstream-max-conns = 3\n",
       "7: service \"api\": upstream-max-conns: must be 0 or at least --threads (4), got \"3\""},
      {"shared-conns", head + api + "upstream-max-conns = 8\n" + api2 + "upstream-max-conns = 16\n",
       "8: service \"api2\": upstream-max-conns: targets-path \"/api\" is shared with service \"api\""},
      {"shared-queue", head + api + api2 + "upstream-queue-max = 16\n",
       "7: service \"api2\": upstream-queue-max: targets-path \"/api\" is shared with service \"api\""},
  };
  expect_errors(cases);
}

// ---- a registry format per service (README "Other registries") ----

TEST(Services, EachServiceReadsItsOwnRegistryFormat) {
  // (An array of inline tables: one service per line.)
  std::string path = write_file("formats.toml", std::string(kHead) + R"(service = [
  {name = "web", hosts = ["web.x"], targets-path = "/nerve/web", targets-format = "nerve"},
  {name = "api", hosts = ["api.x"], targets-path = "/aurora/api", targets-format = "serverset", serverset-endpoint = "http", counts-path = "/counts/api"},
  {name = "api2", hosts = ["api2.x"], targets-path = "/aurora/api", targets-format = "serverset", serverset-endpoint = "http"},
  {name = "own", hosts = ["own.x"], targets-path = "/own"},
])");
  ProxyConfig c = parse_file(path);
  ASSERT_EQ(c.services.size(), 4u);
  EXPECT_EQ(c.services[0].source.format, "nerve");
  EXPECT_EQ(c.services[0].source.counts_path, "/ringmaster/counts/web");  // <fleet-path>/counts/<name>
  EXPECT_EQ(c.services[1].source.format, "serverset");
  EXPECT_EQ(c.services[1].source.serverset_endpoint, "http");
  EXPECT_EQ(c.services[1].source.counts_path, "/counts/api");
  EXPECT_EQ(c.services[2].source.counts_path, "/counts/api");  // one targets path, one source
  EXPECT_EQ(c.services[3].source.format, "ringmaster");
  EXPECT_EQ(c.services[3].source.counts_path, "");
}

TEST(Services, RegistryFormatMistakesNameFileLineAndKey) {
  std::string head = kHead;                                                    // two lines
  std::string web = "[[service]]\nname = \"web\"\ntargets-path = \"/web\"\n";  // lines 3-5
  std::string web2 = "[[service]]\nname = \"web2\"\nhosts = [\"b\"]\ntargets-path = \"/web\"\n";
  std::vector<Bad> cases = {
      {"bad-format", head + web + "targets-format = \"eureka\"\n",
       "6: service \"web\": targets-format: must be ringmaster, nerve, serverset or curator"},
      {"endpoint-no-serverset", head + web + "targets-format = \"nerve\"\nserverset-endpoint = \"http\"\n",
       "7: service \"web\": serverset-endpoint: needs targets-format \"serverset\""},
      {"counts-ours", head + web + "counts-path = \"/c\"\n",
       "6: service \"web\": counts-path: needs a foreign targets-format"},
      {"counts-inside", head + web + "targets-format = \"curator\"\ncounts-path = \"/web/counts\"\n",
       "7: service \"web\": counts-path: must not be targets-path, inside it or above it"},
      {"counts-bad-path", head + web + "targets-format = \"curator\"\ncounts-path = \"c\"\n",
       "7: service \"web\": counts-path: must start"},
      {"format-static", head + "[[service]]\nname = \"s\"\ntarget = [\"127.0.0.1:1\"]\ntargets-format = \"nerve\"\n",
       "6: service \"s\": targets-format: needs targets-path (ZooKeeper)"},
      {"shared-disagrees", head + web + "targets-format = \"nerve\"\n" + web2 + "targets-format = \"curator\"\n",
       "7: service \"web2\": targets-format: targets-path \"/web\" is shared with service \"web\""},
      {"shared-counts", head + web + "targets-format = \"nerve\"\n" + web2 +
                            "targets-format = \"nerve\"\ncounts-path = \"/other\"\n",
       "7: service \"web2\": counts-path: targets-path \"/web\" is shared with service \"web\""},
      // A version node is watched per targets path: the second one would never empty its cache.
      {"shared-version", head + web + "cache-version-path = \"/v1\"\n" + web2 + "cache-version-path = \"/v2\"\n",
       "7: service \"web2\": cache-version-path: targets-path \"/web\" is shared with service \"web\""},
      {"shared-version-unset", head + web + web2 + "cache-version-path = \"/v2\"\n",
       "6: service \"web2\": cache-version-path: targets-path \"/web\" is shared with service \"web\""},
      {"shared-flags-version", head + "targets-path = \"/web\"\ncache-version-path = \"/v\"\n" +
                                   "[[service]]\nname = \"web\"\ntargets-path = \"/web\"\n",
       "5: service \"web\": cache-version-path: targets-path \"/web\" is shared with --targets-path"},
      {"shared-flags", head + "targets-path = \"/web\"\n" + "[[service]]\nname = \"web\"\ntargets-path = \"/web\"\n"
                           "targets-format = \"nerve\"\n",
       "4: service \"web\": targets-format: targets-path \"/web\" is shared with --targets-path"},
      {"counts-clash", head + web + "targets-format = \"nerve\"\ncounts-path = \"/c\"\n" +
                           "[[service]]\nname = \"b\"\nhosts = [\"b\"]\ntargets-path = \"/b\"\n"
                           "targets-format = \"curator\"\ncounts-path = \"/c\"\n",
       "3: service \"web\": counts-path: \"/c\" overlaps the counts path of service \"b\""},
      {"counts-in-other-targets", head + web + "targets-format = \"nerve\"\ncounts-path = \"/b/c\"\n" +
                                      "[[service]]\nname = \"b\"\nhosts = [\"b\"]\ntargets-path = \"/b\"\n",
       "3: service \"web\": counts-path: \"/b/c\" overlaps the targets path of service \"b\""},
  };
  expect_errors(cases);
}

TEST(Services, ZooKeeperSourcesNeedZk) {
  std::string path = write_file("nozk.toml", "listen = \"127.0.0.1:8080\"\n[[service]]\nname = \"a\"\n"
                                             "targets-path = \"/a\"\n");
  EXPECT_TRUE(error_of(path).starts_with(path + ":2: service \"a\": targets-path: needs zk")) << error_of(path);
}

}  // namespace
}  // namespace ringmaster::config
