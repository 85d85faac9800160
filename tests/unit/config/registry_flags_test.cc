// The registry-format flags (README "Other registries"), on the command line and in the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "ringmaster/config/config.h"

namespace ringmaster::config {
namespace {

using Words = std::vector<std::string>;

ProxyConfig proxy(const Words& words) { return parse_proxy_args({words.begin(), words.end()}); }
AgentConfig agent(const Words& words) { return parse_agent_args({words.begin(), words.end()}); }

template <typename Parse>
std::string error_of(Parse parse, const Words& words) {
  try {
    parse(words);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

const Words kProxy = {"--listen", "127.0.0.1:8080", "--zk", "127.0.0.1:2181"};
Words with(Words words, const Words& more) {
  words.insert(words.end(), more.begin(), more.end());
  return words;
}

TEST(RegistryFlags, ProxyDefaultsAreOurOwnLayoutWithCountsUnderTheFleetPath) {
  ProxyConfig c = proxy(kProxy);
  EXPECT_EQ(c.targets_format, "ringmaster");
  EXPECT_EQ(c.serverset_endpoint, "");
  EXPECT_EQ(c.counts_path, "/ringmaster/counts/default");
  c = proxy(with(kProxy, {"--fleet-path", "/rm", "--targets-format", "serverset", "--serverset-endpoint", "http"}));
  EXPECT_EQ(c.targets_format, "serverset");
  EXPECT_EQ(c.serverset_endpoint, "http");
  EXPECT_EQ(c.counts_path, "/rm/counts/default");
  c = proxy(with(kProxy, {"--targets-format=curator", "--counts-path", "/counts/web"}));
  EXPECT_EQ(c.counts_path, "/counts/web");
}

TEST(RegistryFlags, BadValuesNameTheFlag) {
  EXPECT_NE(error_of(proxy, with(kProxy, {"--targets-format", "eureka"})).find("--targets-format"), std::string::npos);
  EXPECT_NE(error_of(proxy, with(kProxy, {"--serverset-endpoint", "http"})).find("--serverset-endpoint"),
            std::string::npos);
  for (const char* counts : {"/targets", "/targets/counts", "/"}) {
    EXPECT_NE(error_of(proxy, with(kProxy, {"--targets-format", "nerve", "--counts-path", counts})).find("--counts-path"),
              std::string::npos)
        << counts;
  }
  const Words a = {"--zk", "127.0.0.1:2181", "--target", "127.0.0.1:9001"};
  EXPECT_NE(error_of(agent, with(a, {"--format", "zk"})).find("--format"), std::string::npos);
  EXPECT_NE(error_of(agent, with(a, {"--weight", "2"})).find("--weight"), std::string::npos);
  EXPECT_NE(error_of(agent, with(a, {"--format", "nerve", "--weight", "10001"})).find("--weight"), std::string::npos);
  EXPECT_NE(error_of(agent, with(a, {"--format", "serverset", "--name", "x"})).find("--name"), std::string::npos);
  AgentConfig c = agent(with(a, {"--format", "nerve", "--weight", "0", "--name", "i-1"}));
  EXPECT_EQ(c.format, "nerve");
  EXPECT_EQ(c.weight, 0u);
  EXPECT_EQ(c.name, "i-1");
}

TEST(RegistryFlags, TheConfigFileTakesTheFormatNextToTheTargetsPath) {
  std::string path = testing::TempDir() + "ringmaster-" + std::to_string(getpid()) + "-registry.toml";
  std::ofstream(path) << "listen = \"127.0.0.1:8080\"\nzk = \"127.0.0.1:2181\"\n"
                         "targets-path = \"/nerve/services/web/services\"\ntargets-format = \"nerve\"\n"
                         "counts-path = \"/ringmaster/counts/web\"\n";
  ProxyConfig c = proxy({"--config", path});
  EXPECT_EQ(c.targets_path, "/nerve/services/web/services");
  EXPECT_EQ(c.targets_format, "nerve");
  EXPECT_EQ(c.counts_path, "/ringmaster/counts/web");
  std::ofstream(path) << "listen = \"127.0.0.1:8080\"\nzk = \"127.0.0.1:2181\"\ntargets-format = \"consul\"\n";
  std::string error = error_of(proxy, {"--config", path});
  EXPECT_NE(error.find(":3: targets-format"), std::string::npos) << error;
}

}  // namespace
}  // namespace ringmaster::config
