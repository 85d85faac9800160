#include "ringmaster/config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

namespace ringmaster::config {
namespace {

// Arguments own their text so that tests can build "--flag=value" forms on the fly.
using Words = std::vector<std::string>;

Words operator+(Words a, const Words& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::string_view> views(const Words& words) { return {words.begin(), words.end()}; }

ProxyConfig proxy(const Words& words) { return parse_proxy_args(views(words)); }
AgentConfig agent(const Words& words) { return parse_agent_args(views(words)); }

// The message of the ConfigError the parse throws; a failure if it throws none or more lines.
template <typename Parse>
std::string error_of(Parse parse, const Words& words) {
  try {
    parse(views(words));
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find('\r'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

std::string proxy_error(const Words& words) { return error_of(parse_proxy_args, words); }
std::string agent_error(const Words& words) { return error_of(parse_agent_args, words); }

const Words kZkProxy = {"--listen", "127.0.0.1:8080", "--zk", "zk1:2181"};
const Words kStaticProxy = {"--listen", "127.0.0.1:8080", "--target", "127.0.0.1:9000"};
const Words kAgent = {"--zk", "zk1:2181", "--target", "127.0.0.1:9000"};

// "--flag value" and "--flag=value".
std::vector<Words> both_forms(const std::string& flag, const std::string& value) {
  return {{flag, value}, {flag + "=" + value}};
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

base::HostPort hp(const char* host, uint16_t port) { return base::HostPort{host, port}; }

// ---------------------------------------------------------------------------------------------
// parse_size

TEST(ParseSize, AcceptsPlainByteCounts) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("1"), 1u);
  EXPECT_EQ(parse_size("123456"), 123456u);
  EXPECT_EQ(parse_size("007"), 7u);
}

TEST(ParseSize, AcceptsBinarySuffixesInEitherCase) {
  EXPECT_EQ(parse_size("1K"), 1024u);
  EXPECT_EQ(parse_size("16k"), 16384u);
  EXPECT_EQ(parse_size("256M"), 256ull << 20);
  EXPECT_EQ(parse_size("3m"), 3ull << 20);
  EXPECT_EQ(parse_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_size("1g"), 1ull << 30);
  EXPECT_EQ(parse_size("0K"), 0u);
}

TEST(ParseSize, RejectsMalformedText) {
  for (const char* text : {"", "K", "M", "-1", "+1", " 1", "1 ", "1 K", "1.5K", "1KB", "256MB", "1T", "0x10", "1KK",
                           "abc"}) {
    EXPECT_EQ(parse_size(text), std::nullopt) << text;
  }
}

TEST(ParseSize, RejectsOverflow) {
  EXPECT_EQ(parse_size("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parse_size("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_size("99999999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_size("17179869183G"), (17179869183ull << 30));
  EXPECT_EQ(parse_size("17179869184G"), std::nullopt);  // exactly 2^64
  EXPECT_EQ(parse_size("18014398509481984K"), std::nullopt);
  EXPECT_EQ(parse_size("18014398509481983K"), 18014398509481983ull << 10);
}

// ---------------------------------------------------------------------------------------------
// Proxy: defaults and modes

TEST(ProxyArgs, DefaultsMatchTheContract) {
  ProxyConfig c = proxy(kZkProxy);
  EXPECT_EQ(c.listen, hp("127.0.0.1", 8080));
  EXPECT_EQ(c.zk, "zk1:2181");
  EXPECT_TRUE(c.targets.empty());
  EXPECT_FALSE(c.admin.has_value());
  EXPECT_EQ(c.targets_path, "/targets");
  EXPECT_EQ(c.cache_version_path, "/cacheAge");
  EXPECT_EQ(c.flush_interval_ms, 100u);
  EXPECT_EQ(c.cache_bytes, 256ull << 20);
  EXPECT_EQ(c.cache_ttl_s, 0u);  // off: only explicit and heuristic freshness
  EXPECT_EQ(c.cache_serve_stale_s, 3600u);
  EXPECT_FALSE(c.cache_stale_on_5xx);
  EXPECT_EQ(c.request_line_bytes_max, 8192u);
  EXPECT_EQ(c.header_bytes_max, 16384u);
  EXPECT_EQ(c.header_count_max, 100u);
  EXPECT_EQ(c.body_bytes_max, 1ull << 30);
  EXPECT_EQ(c.header_timeout_ms, 10000u);
  EXPECT_EQ(c.idle_timeout_ms, 60000u);
  EXPECT_EQ(c.client_timeout_ms, 60000u);
  EXPECT_EQ(c.connect_timeout_ms, 3000u);
  EXPECT_EQ(c.upstream_timeout_ms, 60000u);
  EXPECT_EQ(c.shutdown_timeout_ms, 10000u);
  EXPECT_EQ(c.max_connections, 10000u);
  EXPECT_EQ(c.upstream_idle_max, 64u);
  EXPECT_TRUE(c.access_log.empty());
  EXPECT_EQ(c.access_log_buffer, 1u << 20);
  EXPECT_TRUE(c.upgrade_socket.empty());
  EXPECT_FALSE(c.verbose);
}

TEST(ProxyArgs, ThreadsDefaultToOnlineCpus) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned expected = cpus < 1 ? 1u : (cpus > 1024 ? 1024u : static_cast<unsigned>(cpus));
  EXPECT_EQ(proxy(kZkProxy).threads, expected);
  EXPECT_GE(proxy(kStaticProxy).threads, 1u);
}

TEST(ProxyArgs, TargetWithoutZkIsStaticModeWithRepeatableTargets) {
  ProxyConfig c = proxy(kStaticProxy + Words{"--target=[::1]:9001", "--target", "backend.local:80"});
  EXPECT_TRUE(c.zk.empty());
  ASSERT_EQ(c.targets.size(), 3u);
  EXPECT_EQ(c.targets[0], hp("127.0.0.1", 9000));
  EXPECT_EQ(c.targets[1], hp("::1", 9001));
  EXPECT_EQ(c.targets[2], hp("backend.local", 80));
}

TEST(ProxyArgs, AcceptsArgumentsInAnyOrder) {
  ProxyConfig c = proxy({"--zk=zk1:2181", "--threads", "3", "--listen=127.0.0.1:1"});
  EXPECT_EQ(c.listen, hp("127.0.0.1", 1));
  EXPECT_EQ(c.threads, 3u);
}

TEST(ProxyArgs, RequiresListen) { EXPECT_EQ(proxy_error({"--zk", "zk1:2181"}), "--listen is required"); }

TEST(ProxyArgs, RequiresZkOrTarget) {
  EXPECT_EQ(proxy_error({"--listen", "127.0.0.1:8080"}), "one of --zk or --target is required");
}

TEST(ProxyArgs, RejectsZkTogetherWithTarget) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--target", "127.0.0.1:9000"}), "--zk and --target are mutually exclusive");
}

TEST(ProxyArgs, RejectsDuplicateStaticTarget) {
  std::string message = proxy_error(kStaticProxy + Words{"--target", "127.0.0.1:9000"});
  EXPECT_TRUE(contains(message, "--target")) << message;
  EXPECT_TRUE(contains(message, "duplicate")) << message;
}

TEST(ProxyArgs, EmptyArgumentListNamesTheMissingListen) { EXPECT_EQ(proxy_error({}), "--listen is required"); }

// ---------------------------------------------------------------------------------------------
// Proxy: every flag in both forms

struct ProxyFlagCase {
  std::string flag;
  std::string value;
  std::function<void(const ProxyConfig&)> check;
};

TEST(ProxyArgs, ParsesEveryValueFlagInBothForms) {
  const std::vector<ProxyFlagCase> cases = {
      {"--listen", "[::1]:9000", [](const ProxyConfig& c) { EXPECT_EQ(c.listen, hp("::1", 9000)); }},
      {"--threads", "7", [](const ProxyConfig& c) { EXPECT_EQ(c.threads, 7u); }},
      {"--admin", "127.0.0.1:9901", [](const ProxyConfig& c) { EXPECT_EQ(c.admin, hp("127.0.0.1", 9901)); }},
      {"--zk", "a:1,b:2/app", [](const ProxyConfig& c) { EXPECT_EQ(c.zk, "a:1,b:2/app"); }},
      {"--targets-path", "/svc/targets", [](const ProxyConfig& c) { EXPECT_EQ(c.targets_path, "/svc/targets"); }},
      {"--cache-version-path", "/svc/cacheAge",
       [](const ProxyConfig& c) { EXPECT_EQ(c.cache_version_path, "/svc/cacheAge"); }},
      {"--flush-interval-ms", "250", [](const ProxyConfig& c) { EXPECT_EQ(c.flush_interval_ms, 250u); }},
      {"--cache-bytes", "64M", [](const ProxyConfig& c) { EXPECT_EQ(c.cache_bytes, 64ull << 20); }},
      {"--cache-ttl", "30", [](const ProxyConfig& c) { EXPECT_EQ(c.cache_ttl_s, 30u); }},
      {"--request-line-bytes-max", "4K", [](const ProxyConfig& c) { EXPECT_EQ(c.request_line_bytes_max, 4096u); }},
      {"--header-bytes-max", "32k", [](const ProxyConfig& c) { EXPECT_EQ(c.header_bytes_max, 32768u); }},
      {"--header-count-max", "50", [](const ProxyConfig& c) { EXPECT_EQ(c.header_count_max, 50u); }},
      {"--body-bytes-max", "2G", [](const ProxyConfig& c) { EXPECT_EQ(c.body_bytes_max, 2ull << 30); }},
      {"--header-timeout-ms", "1500", [](const ProxyConfig& c) { EXPECT_EQ(c.header_timeout_ms, 1500u); }},
      {"--idle-timeout-ms", "2500", [](const ProxyConfig& c) { EXPECT_EQ(c.idle_timeout_ms, 2500u); }},
      {"--client-timeout-ms", "3500", [](const ProxyConfig& c) { EXPECT_EQ(c.client_timeout_ms, 3500u); }},
      {"--connect-timeout-ms", "450", [](const ProxyConfig& c) { EXPECT_EQ(c.connect_timeout_ms, 450u); }},
      {"--upstream-timeout-ms", "5500", [](const ProxyConfig& c) { EXPECT_EQ(c.upstream_timeout_ms, 5500u); }},
      {"--shutdown-timeout-ms", "6500", [](const ProxyConfig& c) { EXPECT_EQ(c.shutdown_timeout_ms, 6500u); }},
      {"--max-connections", "500", [](const ProxyConfig& c) { EXPECT_EQ(c.max_connections, 500u); }},
      {"--upstream-idle-max", "8", [](const ProxyConfig& c) { EXPECT_EQ(c.upstream_idle_max, 8u); }},
      {"--upstream-max-conns", "64", [](const ProxyConfig& c) { EXPECT_EQ(c.upstream_max_conns, 64u); }},
      {"--upstream-queue-max", "0", [](const ProxyConfig& c) { EXPECT_EQ(c.upstream_queue_max, 0u); }},
      {"--upstream-queue-timeout-ms", "250",
       [](const ProxyConfig& c) { EXPECT_EQ(c.upstream_queue_timeout_ms, 250u); }},
      {"--upstream-idle-timeout-ms", "2500",
       [](const ProxyConfig& c) { EXPECT_EQ(c.upstream_idle_timeout_ms, 2500u); }},
      {"--access-log", "/var/log/a.log", [](const ProxyConfig& c) { EXPECT_EQ(c.access_log, "/var/log/a.log"); }},
      {"--access-log-buffer", "64K", [](const ProxyConfig& c) { EXPECT_EQ(c.access_log_buffer, 65536u); }},
      {"--upgrade-socket", "/run/rm.sock", [](const ProxyConfig& c) { EXPECT_EQ(c.upgrade_socket, "/run/rm.sock"); }},
  };
  for (const auto& test_case : cases) {
    for (const Words& flag_words : both_forms(test_case.flag, test_case.value)) {
      SCOPED_TRACE(flag_words.size() == 1 ? flag_words[0] : flag_words[0] + " " + flag_words[1]);
      test_case.check(proxy(kZkProxy + flag_words));
    }
  }
}

TEST(ProxyArgs, ParsesTargetInBothForms) {
  for (const Words& flag_words : both_forms("--target", "10.0.0.1:81")) {
    ProxyConfig c = proxy(Words{"--listen", "127.0.0.1:8080"} + flag_words);
    ASSERT_EQ(c.targets.size(), 1u);
    EXPECT_EQ(c.targets[0], hp("10.0.0.1", 81));
  }
}

TEST(ProxyArgs, VerboseIsASwitchWithoutValue) {
  ProxyConfig c = proxy(kZkProxy + Words{"--verbose", "--threads", "2", "--cache-stale-on-5xx"});
  EXPECT_TRUE(c.verbose);
  EXPECT_TRUE(c.cache_stale_on_5xx);
  EXPECT_EQ(c.threads, 2u);
}

TEST(ProxyArgs, RejectsValueOnVerbose) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--verbose=true"}), "--verbose: takes no value");
}

TEST(ProxyArgs, RepeatedFlagLastOneWins) {
  ProxyConfig c = proxy(kZkProxy + Words{"--threads", "2", "--threads=5", "--zk", "zk2:2181"});
  EXPECT_EQ(c.threads, 5u);
  EXPECT_EQ(c.zk, "zk2:2181");
}

TEST(ProxyArgs, EqualsFormTakesEverythingAfterTheFirstEquals) {
  ProxyConfig c = proxy(kStaticProxy + Words{"--targets-path=/a=b"});
  EXPECT_EQ(c.targets_path, "/a=b");
}

// ---------------------------------------------------------------------------------------------
// Proxy: rejections of the argument shape

TEST(ProxyArgs, RejectsUnknownFlagWithOneLineMessage) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--foo"}), "unknown flag --foo");
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--foo=bar"}), "unknown flag --foo");
  std::string message = proxy_error(kZkProxy + Words{"--fo\no"});
  EXPECT_TRUE(contains(message, "unknown flag --fo\\x0ao")) << message;
}

TEST(ProxyArgs, RejectsAgentOnlyFlags) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--health-path", "/h"}), "unknown flag --health-path");
}

TEST(ProxyArgs, RejectsHelpBecauseMainHandlesIt) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--help"}), "unknown flag --help");
}

TEST(ProxyArgs, RejectsPositionalAndSingleDashArguments) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"extra"}), "unexpected argument \"extra\"");
  EXPECT_EQ(proxy_error(kZkProxy + Words{"-v"}), "unexpected argument \"-v\"");
  EXPECT_EQ(proxy_error(kZkProxy + Words{""}), "unexpected argument \"\"");
}

TEST(ProxyArgs, RejectsMissingValueAtTheEnd) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--threads"}), "--threads: missing value");
}

TEST(ProxyArgs, TreatsAFollowingFlagAsAMissingValue) {
  EXPECT_EQ(proxy_error({"--listen", "--zk", "zk1:2181"}), "--listen: missing value");
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--threads", "--verbose"}), "--threads: missing value");
}

TEST(ProxyArgs, RejectsEmptyValueInEqualsForm) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--threads="}), "--threads: expected an integer 1..1024, got \"\"");
}

TEST(ProxyArgs, EscapesAndCutsValuesSoTheMessageStaysOneLine) {
  std::string message = proxy_error(kZkProxy + Words{"--threads=1\n2\"\\"});
  EXPECT_EQ(message, "--threads: expected an integer 1..1024, got \"1\\x0a2\\\"\\\\\"");
  std::string long_value(10000, '9');
  message = proxy_error(kZkProxy + Words{"--threads", long_value});
  EXPECT_LT(message.size(), 200u);
  EXPECT_TRUE(contains(message, "...\"")) << message;
}

// ---------------------------------------------------------------------------------------------
// Proxy: rejections of values

TEST(ProxyArgs, RejectsBadThreadCounts) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--threads", "abc"}), "--threads: expected an integer 1..1024, got \"abc\"");
  for (const char* value : {"0", "1025", "-1", "+4", " 4", "4x", "4.0", "0x10", "99999999999999999999999"}) {
    EXPECT_EQ(proxy_error(kZkProxy + Words{"--threads", value}),
              std::string("--threads: expected an integer 1..1024, got \"") + value + "\"");
  }
  EXPECT_EQ(proxy(kZkProxy + Words{"--threads", "1"}).threads, 1u);
  EXPECT_EQ(proxy(kZkProxy + Words{"--threads", "1024"}).threads, 1024u);
}

TEST(ProxyArgs, RejectsMalformedHostPortFlags) {
  EXPECT_EQ(proxy_error({"--listen", "127.0.0.1:8080", "--target", "x"}), "--target: expected HOST:PORT, got \"x\"");
  for (const char* value : {"x", "127.0.0.1", ":80", "host:0", "host:65536", "host:http", "[::1]", "a b:80"}) {
    for (const char* flag : {"--listen", "--admin"}) {
      std::string message = proxy_error(kZkProxy + Words{flag, value});
      EXPECT_EQ(message, std::string(flag) + ": expected HOST:PORT, got \"" + value + "\"");
    }
  }
}

TEST(ProxyArgs, RejectsAdminOnTheListenAddress) {
  std::string message = proxy_error(kZkProxy + Words{"--admin", "127.0.0.1:8080"});
  EXPECT_TRUE(contains(message, "--admin")) << message;
  EXPECT_TRUE(contains(message, "--listen")) << message;
}

TEST(ProxyArgs, AcceptsZkConnectStringsWithAndWithoutChroot) {
  for (const char* value : {"zk1:2181", "zk1:2181,zk2:2181,zk3:2181", "zk1:2181/app", "zk1:2181,zk2:2181/a/b",
                            "zk1:2181/", "[::1]:2181", "127.0.0.1:2181,[::1]:2182/x"}) {
    EXPECT_EQ(proxy({"--listen", "127.0.0.1:8080", "--zk", value}).zk, value);
  }
}

TEST(ProxyArgs, RejectsMalformedZkConnectStrings) {
  for (const char* value : {"", "zk1", "zk1:", "zk1:2181,", ",zk1:2181", "zk1:2181,,zk2:2181", "/app", "zk1:0",
                            "zk1:2181 zk2:2181"}) {
    std::string message = proxy_error({"--listen", "127.0.0.1:8080", "--zk", value});
    EXPECT_EQ(message, std::string("--zk: expected HOST:PORT[,HOST:PORT...][/CHROOT], got \"") + value + "\"");
  }
}

TEST(ProxyArgs, RejectsZkChrootThatIsNotACanonicalPath) {
  EXPECT_EQ(proxy_error({"--listen", "127.0.0.1:8080", "--zk", "zk1:2181/app/"}),
            "--zk: chroot must not end with '/', got \"zk1:2181/app/\"");
  for (const char* value : {"zk1:2181//app", "zk1:2181/a//b", "zk1:2181/a/../b", "zk1:2181/.", "zk1:2181/a\tb"}) {
    std::string message = proxy_error({"--listen", "127.0.0.1:8080", "--zk", value});
    EXPECT_TRUE(message.starts_with("--zk: chroot must")) << message;
  }
}

TEST(ProxyArgs, RejectsZnodePathsThatAreNotAbsoluteAndCanonical) {
  for (const char* flag : {"--targets-path", "--cache-version-path"}) {
    EXPECT_EQ(proxy_error(kZkProxy + Words{flag, "targets"}),
              std::string(flag) + ": must start with '/', got \"targets\"");
    EXPECT_EQ(proxy_error(kZkProxy + Words{flag, "/a/"}), std::string(flag) + ": must not end with '/', got \"/a/\"");
    EXPECT_EQ(proxy_error(kZkProxy + Words{flag, "/a//b"}),
              std::string(flag) + ": must not contain an empty component, got \"/a//b\"");
    EXPECT_EQ(proxy_error(kZkProxy + Words{flag, "/"}), std::string(flag) + ": must not be the root, got \"/\"");
    for (const char* value : {"", "/a/../b", "/a/.", "/a\nb"}) {
      std::string message = proxy_error(kZkProxy + Words{flag, value});
      EXPECT_TRUE(message.starts_with(std::string(flag) + ": must")) << message;
    }
  }
}

TEST(ProxyArgs, RejectsCacheVersionPathInsideTargetsPath) {
  std::string message = proxy_error(kZkProxy + Words{"--cache-version-path", "/targets/cacheAge"});
  EXPECT_TRUE(contains(message, "--cache-version-path")) << message;
  message = proxy_error(kZkProxy + Words{"--cache-version-path", "/t", "--targets-path", "/t"});
  EXPECT_TRUE(contains(message, "--cache-version-path")) << message;
  // A sibling that merely shares a prefix is fine.
  EXPECT_EQ(proxy(kZkProxy + Words{"--cache-version-path", "/targetsAge"}).cache_version_path, "/targetsAge");
}

// --cache-ttl reaches the proxy in milliseconds: at its maximum (365 days) and just past
// 2^32 ms (4294968 s, which 32 bits turned into 704 ms) the conversion must not wrap.
TEST(ProxyArgs, CacheTtlInMillisecondsDoesNotWrapUpToItsMaximum) {
  EXPECT_EQ(cache_ttl_ms(proxy(kZkProxy + Words{"--cache-ttl", "31536000"})), int64_t{31'536'000'000});
  EXPECT_EQ(cache_ttl_ms(proxy(kZkProxy + Words{"--cache-ttl", "4294968"})), int64_t{4'294'968'000});
  EXPECT_EQ(cache_ttl_ms(proxy(kZkProxy + Words{"--cache-ttl", "1"})), 1000);
}

// Each numeric flag at both edges of its range: the edge is accepted, one past it rejected
// with a message naming the flag and the range.
struct RangeCase {
  std::string flag;
  std::string lowest;        // accepted
  std::string below_lowest;  // rejected; empty when the lowest value is 0
  std::string highest;       // accepted
  std::string above_highest; // rejected
  std::string range_text;    // as the message writes it
};

TEST(ProxyArgs, AcceptsEachNumericFlagAtItsEdgesAndRejectsBeyond) {
  const std::vector<RangeCase> cases = {
      {"--threads", "1", "0", "1024", "1025", "1..1024"},
      {"--flush-interval-ms", "1", "0", "60000", "60001", "1..60000"},
      {"--cache-ttl", "0", "", "31536000", "31536001", "0..31536000"},
      {"--cache-serve-stale", "0", "", "31536000", "31536001", "0..31536000"},
      {"--cache-bytes", "0", "", "1024G", "1099511627777", "0..1024G"},
      {"--body-bytes-max", "0", "", "1024G", "1025G", "0..1024G"},
      {"--header-bytes-max", "256", "255", "1M", "1048577", "256..1M"},
      {"--request-line-bytes-max", "64", "63", "1M", "1048577", "64..1M"},
      {"--header-count-max", "1", "0", "10000", "10001", "1..10000"},
      {"--header-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--idle-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--client-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--connect-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--upstream-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--shutdown-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--max-connections", "1", "0", "1000000", "1000001", "1..1000000"},
      {"--upstream-idle-max", "0", "", "4096", "4097", "0..4096"},
      {"--upstream-max-conns", "0", "", "1000000", "1000001", "0..1000000"},
      {"--upstream-queue-max", "0", "", "1000000", "1000001", "0..1000000"},
      {"--upstream-queue-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--upstream-idle-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
  };
  // The widest header limit, so that the request-line limit can reach its own maximum.
  const Words base = kZkProxy + Words{"--header-bytes-max", "1M"};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.flag);
    EXPECT_NO_THROW(proxy(base + Words{c.flag, c.lowest}));
    EXPECT_NO_THROW(proxy(base + Words{c.flag, c.highest}));
    std::vector<std::string> rejected = {c.above_highest, "abc"};
    if (!c.below_lowest.empty()) rejected.push_back(c.below_lowest);
    for (const std::string& value : rejected) {
      std::string message = proxy_error(base + Words{c.flag, value});
      EXPECT_TRUE(message.starts_with(c.flag + ": expected ")) << message;
      EXPECT_TRUE(contains(message, c.range_text)) << message;
      EXPECT_TRUE(contains(message, "got \"" + value + "\"")) << message;
    }
  }
}

TEST(ProxyArgs, SizeFlagsRejectOverflowingSizes) {
  for (const char* flag : {"--cache-bytes", "--body-bytes-max", "--header-bytes-max", "--request-line-bytes-max"}) {
    std::string message = proxy_error(kZkProxy + Words{flag, "17179869184G"});
    EXPECT_TRUE(message.starts_with(std::string(flag) + ": expected a size")) << message;
  }
}

TEST(ProxyArgs, CacheBytesZeroDisablesTheCache) {
  EXPECT_EQ(proxy(kZkProxy + Words{"--cache-bytes", "0"}).cache_bytes, 0u);
}

TEST(ProxyArgs, BodyBytesMaxZeroMeansNoBodyAllowed) {
  EXPECT_EQ(proxy(kZkProxy + Words{"--body-bytes-max=0"}).body_bytes_max, 0u);
}

TEST(ProxyArgs, UpstreamMaxConnsGivesEveryReactorAtLeastOne) {
  EXPECT_EQ(proxy(kZkProxy + Words{"--threads", "4", "--upstream-max-conns", "4"}).upstream_max_conns, 4u);
  EXPECT_EQ(proxy(kZkProxy + Words{"--threads", "4", "--upstream-max-conns", "0"}).upstream_max_conns, 0u);
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--threads", "4", "--upstream-max-conns", "3"}),
            "--upstream-max-conns must be 0 or at least --threads (4), got \"3\"");
}

TEST(ProxyArgs, RejectsRequestLineLimitAboveHeaderLimit) {
  std::string message =
      proxy_error(kZkProxy + Words{"--header-bytes-max", "4K", "--request-line-bytes-max", "8K"});
  EXPECT_EQ(message, "--request-line-bytes-max (8192) must not exceed --header-bytes-max (4096)");
  ProxyConfig c = proxy(kZkProxy + Words{"--header-bytes-max", "4K", "--request-line-bytes-max", "4K"});
  EXPECT_EQ(c.request_line_bytes_max, 4096u);
}

TEST(ProxyArgs, SmallHeaderLimitShrinksTheDefaultRequestLineLimit) {
  ProxyConfig c = proxy(kZkProxy + Words{"--header-bytes-max", "1K"});
  EXPECT_EQ(c.header_bytes_max, 1024u);
  EXPECT_EQ(c.request_line_bytes_max, 1024u);
}

// ---------------------------------------------------------------------------------------------
// Agent

TEST(AgentArgs, DefaultsMatchTheContract) {
  AgentConfig c = agent(kAgent);
  EXPECT_EQ(c.zk, "zk1:2181");
  EXPECT_EQ(c.target, hp("127.0.0.1", 9000));
  EXPECT_EQ(c.targets_path, "/targets");
  EXPECT_EQ(c.cache_version_path, "/cacheAge");
  EXPECT_FALSE(c.health_path.has_value());
  EXPECT_EQ(c.health_interval_ms, 1000u);
  EXPECT_EQ(c.health_timeout_ms, 1000u);
  EXPECT_EQ(c.health_rise, 2u);
  EXPECT_EQ(c.health_fall, 3u);
  EXPECT_FALSE(c.content_version.has_value());
  EXPECT_EQ(c.session_timeout_ms, 10000u);
  EXPECT_FALSE(c.verbose);
}

struct AgentFlagCase {
  std::string flag;
  std::string value;
  std::function<void(const AgentConfig&)> check;
};

TEST(AgentArgs, ParsesEveryValueFlagInBothForms) {
  const std::vector<AgentFlagCase> cases = {
      {"--zk", "a:1,b:2/chroot", [](const AgentConfig& c) { EXPECT_EQ(c.zk, "a:1,b:2/chroot"); }},
      {"--target", "[::1]:8081", [](const AgentConfig& c) { EXPECT_EQ(c.target, hp("::1", 8081)); }},
      {"--targets-path", "/x/targets", [](const AgentConfig& c) { EXPECT_EQ(c.targets_path, "/x/targets"); }},
      {"--cache-version-path", "/x/age", [](const AgentConfig& c) { EXPECT_EQ(c.cache_version_path, "/x/age"); }},
      {"--health-path", "/healthz?deep=1", [](const AgentConfig& c) { EXPECT_EQ(c.health_path, "/healthz?deep=1"); }},
      {"--health-interval-ms", "250", [](const AgentConfig& c) { EXPECT_EQ(c.health_interval_ms, 250u); }},
      {"--health-timeout-ms", "150", [](const AgentConfig& c) { EXPECT_EQ(c.health_timeout_ms, 150u); }},
      {"--health-rise", "4", [](const AgentConfig& c) { EXPECT_EQ(c.health_rise, 4u); }},
      {"--health-fall", "5", [](const AgentConfig& c) { EXPECT_EQ(c.health_fall, 5u); }},
      {"--content-version", "3f2a9c1 release 7",
       [](const AgentConfig& c) { EXPECT_EQ(c.content_version, "3f2a9c1 release 7"); }},
      {"--session-timeout-ms", "30000", [](const AgentConfig& c) { EXPECT_EQ(c.session_timeout_ms, 30000u); }},
  };
  for (const auto& test_case : cases) {
    for (const Words& flag_words : both_forms(test_case.flag, test_case.value)) {
      SCOPED_TRACE(flag_words.size() == 1 ? flag_words[0] : flag_words[0] + " " + flag_words[1]);
      test_case.check(agent(kAgent + flag_words));
    }
  }
}

TEST(AgentArgs, VerboseIsASwitchWithoutValue) {
  EXPECT_TRUE(agent(kAgent + Words{"--verbose"}).verbose);
  EXPECT_EQ(agent_error(kAgent + Words{"--verbose=1"}), "--verbose: takes no value");
}

TEST(AgentArgs, RequiresZk) { EXPECT_EQ(agent_error({"--target", "127.0.0.1:9000"}), "--zk is required"); }

TEST(AgentArgs, RequiresTarget) { EXPECT_EQ(agent_error({"--zk", "zk1:2181"}), "--target is required"); }

TEST(AgentArgs, RepeatedTargetLastOneWins) {
  EXPECT_EQ(agent(kAgent + Words{"--target", "127.0.0.1:9001"}).target, hp("127.0.0.1", 9001));
}

TEST(AgentArgs, RejectsUnknownAndProxyOnlyFlags) {
  EXPECT_EQ(agent_error(kAgent + Words{"--foo"}), "unknown flag --foo");
  EXPECT_EQ(agent_error(kAgent + Words{"--listen", "127.0.0.1:8080"}), "unknown flag --listen");
  EXPECT_EQ(agent_error(kAgent + Words{"--threads=2"}), "unknown flag --threads");
}

TEST(AgentArgs, RejectsMissingValue) {
  EXPECT_EQ(agent_error(kAgent + Words{"--health-path"}), "--health-path: missing value");
  EXPECT_EQ(agent_error({"--zk", "--target", "127.0.0.1:9000"}), "--zk: missing value");
}

TEST(AgentArgs, RejectsMalformedZkAndTarget) {
  EXPECT_EQ(agent_error({"--zk", "zk1", "--target", "127.0.0.1:9000"}),
            "--zk: expected HOST:PORT[,HOST:PORT...][/CHROOT], got \"zk1\"");
  EXPECT_EQ(agent_error({"--zk", "zk1:2181", "--target", "x"}), "--target: expected HOST:PORT, got \"x\"");
  EXPECT_EQ(agent_error({"--zk", "zk1:2181/a/", "--target", "127.0.0.1:9000"}),
            "--zk: chroot must not end with '/', got \"zk1:2181/a/\"");
}

TEST(AgentArgs, RejectsBadZnodePaths) {
  EXPECT_EQ(agent_error(kAgent + Words{"--targets-path", "x"}), "--targets-path: must start with '/', got \"x\"");
  std::string message = agent_error(kAgent + Words{"--cache-version-path", "/targets/v"});
  EXPECT_TRUE(contains(message, "--cache-version-path")) << message;
}

TEST(AgentArgs, RejectsHealthPathNotStartingWithSlash) {
  EXPECT_EQ(agent_error(kAgent + Words{"--health-path", "healthz"}),
            "--health-path: must start with '/', got \"healthz\"");
  EXPECT_EQ(agent_error(kAgent + Words{"--health-path="}), "--health-path: must not be empty");
}

TEST(AgentArgs, RejectsHealthPathThatWouldBreakTheRequestLine) {
  for (const char* value : {"/health check", "/a\r\nHost: evil", "/a\tb"}) {
    std::string message = agent_error(kAgent + Words{"--health-path", value});
    EXPECT_TRUE(message.starts_with("--health-path: must not contain")) << message;
  }
  EXPECT_TRUE(agent_error(kAgent + Words{"--health-path", "/" + std::string(1024, 'a')})
                  .starts_with("--health-path: must be at most 1024 bytes"));
}

TEST(AgentArgs, AcceptsHealthCheckNumbersAtTheirEdgesAndRejectsBeyond) {
  const std::vector<RangeCase> cases = {
      {"--health-interval-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--health-timeout-ms", "1", "0", "86400000", "86400001", "1..86400000"},
      {"--health-rise", "1", "0", "1000", "1001", "1..1000"},
      {"--health-fall", "1", "0", "1000", "1001", "1..1000"},
      {"--session-timeout-ms", "1000", "999", "120000", "120001", "1000..120000"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.flag);
    EXPECT_NO_THROW(agent(kAgent + Words{c.flag, c.lowest}));
    EXPECT_NO_THROW(agent(kAgent + Words{c.flag, c.highest}));
    for (const std::string& value : {c.below_lowest, c.above_highest, std::string("x")}) {
      EXPECT_EQ(agent_error(kAgent + Words{c.flag, value}),
                c.flag + ": expected an integer " + c.range_text + ", got \"" + value + "\"");
    }
  }
}

TEST(AgentArgs, ContentVersionIsBoundedSingleLineText) {
  EXPECT_EQ(agent_error(kAgent + Words{"--content-version="}), "--content-version: must not be empty");
  EXPECT_EQ(agent_error(kAgent + Words{"--content-version", "a\nb"}),
            "--content-version: must not contain NUL or line breaks, got \"a\\x0ab\"");
  EXPECT_TRUE(agent_error(kAgent + Words{"--content-version", std::string("a\0b", 3)})
                  .starts_with("--content-version: must not contain NUL"));
  EXPECT_TRUE(agent_error(kAgent + Words{"--content-version", "a\rb"}).starts_with("--content-version: must not"));
  EXPECT_EQ(agent_error(kAgent + Words{"--content-version", std::string(1025, 'v')}),
            "--content-version: must be at most 1024 bytes, got 1025");
  EXPECT_EQ(agent(kAgent + Words{"--content-version", std::string(1024, 'v')}).content_version->size(), 1024u);
}

TEST(AgentArgs, ValueStartingWithDashesNeedsTheEqualsForm) {
  EXPECT_EQ(agent(kAgent + Words{"--content-version=--weird"}).content_version, "--weird");
  EXPECT_EQ(agent_error(kAgent + Words{"--content-version", "--weird"}), "--content-version: missing value");
}

TEST(ProxyArgs, RejectsUnusableAccessLogAndUpgradeValues) {
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--access-log-buffer", "1K"}),
            "--access-log-buffer: expected a size 4K..1G (bytes, or K/M/G), got \"1K\"");
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--access-log="}), "--access-log: expected a file path, got \"\"");
  EXPECT_EQ(proxy_error(kZkProxy + Words{"--upgrade-socket=" + std::string(101, 'a')}).substr(0, 32),
            "--upgrade-socket: expected a soc");
}

}  // namespace
}  // namespace ringmaster::config

namespace ringmaster::config {
namespace {

TEST(ProxyFleetArgs, DefaultsToAFleetListeningOnTheListenHostAnyPort) {
  ProxyConfig c = proxy(kZkProxy);
  EXPECT_TRUE(c.fleet);
  EXPECT_EQ(c.fleet_path, "/ringmaster");
  EXPECT_FALSE(c.fleet_listen);  // main binds --listen's host, port 0
  EXPECT_FALSE(c.fleet_listen_off);
}

TEST(ProxyFleetArgs, ParsesEachFleetFlag) {
  ProxyConfig c = proxy(kZkProxy + Words{"--fleet", "off", "--fleet-path", "/a/b", "--fleet-listen", "0.0.0.0:0"});
  EXPECT_FALSE(c.fleet);
  EXPECT_EQ(c.fleet_path, "/a/b");
  ASSERT_TRUE(c.fleet_listen);
  EXPECT_EQ(*c.fleet_listen, hp("0.0.0.0", 0));
  EXPECT_TRUE(proxy(kZkProxy + Words{"--fleet-listen=off"}).fleet_listen_off);
  EXPECT_EQ(*proxy(kZkProxy + Words{"--fleet-listen", "10.0.0.1:7000"}).fleet_listen, hp("10.0.0.1", 7000));
}

TEST(ProxyFleetArgs, RejectsBadFleetValuesNamingTheFlag) {
  EXPECT_TRUE(contains(proxy_error(kZkProxy + Words{"--fleet", "yes"}), "--fleet"));
  EXPECT_TRUE(contains(proxy_error(kZkProxy + Words{"--fleet-listen", "nohost"}), "--fleet-listen"));
  EXPECT_TRUE(contains(proxy_error(kZkProxy + Words{"--fleet-path", "relative"}), "--fleet-path"));
  for (const char* path : {"/targets", "/targets/x", "/"}) {
    std::string message = proxy_error(kZkProxy + Words{"--fleet-path", path});
    EXPECT_TRUE(contains(message, "--fleet-path")) << path << ": " << message;
  }
}

}  // namespace
}  // namespace ringmaster::config
