#include "discovery/registry_format.h"

#include <gtest/gtest.h>

namespace ringmaster::discovery {
namespace {

using Kind = RegistryEntry::Kind;

struct Case {
  const char* what;
  const char* name;
  std::string data;
  Kind kind;
  const char* endpoint;  // for routed / not_routed
  uint32_t weight = 1;
};

void check(RegistryFormat format, const std::vector<Case>& cases, std::string_view serverset_endpoint = {}) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    RegistryEntry e = parse_registry_node(format, c.name, c.data, serverset_endpoint);
    EXPECT_EQ(e.kind, c.kind) << e.why;
    if (c.kind == Kind::routed || c.kind == Kind::not_routed) {
      EXPECT_EQ(e.endpoint, c.endpoint);
      EXPECT_EQ(e.weight, c.weight);
    }
  }
}

std::string nerve_b64_name(const std::string& json, const char* sequence = "0000000003") {
  std::string encoded = encode_base64_url(json);
  return "base64_" + std::to_string(encoded.size()) + "_" + encoded + "_" + sequence;
}

TEST(RegistryFormat, NamesRoundTrip) {
  for (const char* n : {"ringmaster", "nerve", "serverset", "curator"}) {
    auto f = parse_registry_format(n);
    ASSERT_TRUE(f) << n;
    EXPECT_STREQ(registry_format_name(*f), n);
  }
  EXPECT_FALSE(parse_registry_format("Nerve"));
  EXPECT_FALSE(parse_registry_format(""));
}

TEST(RegistryFormat, Base64UrlRoundTripsAndRejectsOtherAlphabets) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", "{\"host\":\"1\"}", std::string("\xff\xfe\x00", 3)}) {
    EXPECT_EQ(decode_base64_url(encode_base64_url(s)), s);
  }
  EXPECT_EQ(decode_base64_url("_-8"), std::string("\xff\xef", 2));
  EXPECT_FALSE(decode_base64_url("ab+/"));  // the standard alphabet is not nerve's
  EXPECT_FALSE(decode_base64_url("a"));
  EXPECT_FALSE(decode_base64_url("ab c"));
}

TEST(RegistryFormat, Nerve) {
  const std::string ok = R"({"host":"10.0.0.1","port":8080,"name":"i-abc"})";
  check(RegistryFormat::nerve,
        {
            {"plain", "i-abc_0000000001", ok, Kind::routed, "10.0.0.1:8080"},
            {"port as a string of digits", "i-abc_0000000002", R"({"host":"h1","port":"9000","name":"i"})",
             Kind::routed, "h1:9000"},
            {"weight", "i_0000000003", R"({"host":"10.0.0.2","port":1,"name":"i","weight":3})", Kind::routed,
             "10.0.0.2:1", 3},
            {"weight 0 drains", "i_0000000004", R"({"host":"10.0.0.2","port":1,"name":"i","weight":0})",
             Kind::not_routed, "10.0.0.2:1", 0},
            {"extra fields ignored", "i_5",
             R"({"host":"10.0.0.3","port":2,"name":"i","labels":{"az":"a"},"haproxy_server_options":"backup"})",
             Kind::routed, "10.0.0.3:2"},
            {"IPv6 literal", "i_6", R"({"host":"::1","port":80,"name":"i"})", Kind::routed, "[::1]:80"},
            {"path-encoded name wins over data", nerve_b64_name(R"({"host":"10.1.1.1","port":"3000","name":"x"})").c_str(),
             ok, Kind::routed, "10.1.1.1:3000"},
            {"path-encoded with empty data", nerve_b64_name(R"({"host":"10.1.1.2","port":3001})").c_str(), "",
             Kind::routed, "10.1.1.2:3001"},
            {"empty data", "i_7", "", Kind::malformed, ""},
            {"not JSON", "i_8", "10.0.0.1:80", Kind::malformed, ""},
            {"JSON array", "i_9", "[1,2]", Kind::malformed, ""},
            {"no host", "i_10", R"({"port":1,"name":"i"})", Kind::malformed, ""},
            {"no port", "i_11", R"({"host":"h","name":"i"})", Kind::malformed, ""},
            {"port 0", "i_12", R"({"host":"h","port":0})", Kind::malformed, ""},
            {"port too big", "i_13", R"({"host":"h","port":65536})", Kind::malformed, ""},
            {"negative port", "i_14", R"({"host":"h","port":-1})", Kind::malformed, ""},
            {"port not digits", "i_15", R"({"host":"h","port":"80a"})", Kind::malformed, ""},
            {"host not a string", "i_16", R"({"host":1,"port":80})", Kind::malformed, ""},
            {"empty host", "i_17", R"({"host":"","port":80})", Kind::malformed, ""},
            {"negative weight", "i_18", R"({"host":"h","port":80,"weight":-1})", Kind::malformed, ""},
            {"weight as text", "i_19", R"({"host":"h","port":80,"weight":"2"})", Kind::malformed, ""},
            {"weight too big", "i_20", R"({"host":"h","port":80,"weight":10001})", Kind::malformed, ""},
            {"name not a string", "i_21", R"({"host":"h","port":80,"name":7})", Kind::malformed, ""},
            {"truncated JSON", "i_22", R"({"host":"h","port":8)", Kind::malformed, ""},
            {"oversized", "i_23", std::string(kRegistryNodeBytesMax + 1, ' '), Kind::malformed, ""},
            {"base64 name, bad length", "base64_3_e30=_0000000001", "", Kind::malformed, ""},
            {"base64 name, bad alphabet", "base64_4_e30+_0000000001", "", Kind::malformed, ""},
            {"base64 name, no sequence", "base64_4_e30=", "", Kind::malformed, ""},
            {"base64 name, not an object", nerve_b64_name("[]").c_str(), ok, Kind::malformed, ""},
        });
}

TEST(RegistryFormat, ServerSet) {
  auto member = [](const std::string& status, const std::string& extra = "") {
    return R"({"serviceEndpoint":{"host":"10.0.0.1","port":31337},"additionalEndpoints":{"http":{"host":"10.0.0.1","port":8080},"admin":{"host":"10.0.0.1","port":9990}},"status":")" +
           status + "\"" + extra + "}";
  };
  check(RegistryFormat::serverset,
        {
            {"alive", "member_0000000000", member("ALIVE"), Kind::routed, "10.0.0.1:31337"},
            {"alive with shard", "member_0000000001", member("ALIVE", ",\"shard\":3"), Kind::routed,
             "10.0.0.1:31337"},
            {"shard null", "member_0000000001", member("ALIVE", ",\"shard\":null"), Kind::routed, "10.0.0.1:31337"},
            {"dead", "member_0000000002", member("DEAD"), Kind::not_routed, "10.0.0.1:31337"},
            {"starting", "member_0000000003", member("STARTING"), Kind::not_routed, "10.0.0.1:31337"},
            {"stopping", "member_0000000004", member("STOPPING"), Kind::not_routed, "10.0.0.1:31337"},
            {"warning", "member_0000000005", member("WARNING"), Kind::not_routed, "10.0.0.1:31337"},
            {"not a member node", "vector_0000000000", member("ALIVE"), Kind::ignored, ""},
            {"no status", "member_6", R"({"serviceEndpoint":{"host":"h","port":1}})", Kind::malformed, ""},
            {"status not a string", "member_7", R"({"serviceEndpoint":{"host":"h","port":1},"status":2})",
             Kind::malformed, ""},
            {"no serviceEndpoint", "member_8", R"({"status":"ALIVE"})", Kind::malformed, ""},
            {"serviceEndpoint without port", "member_9", R"({"serviceEndpoint":{"host":"h"},"status":"ALIVE"})",
             Kind::malformed, ""},
            {"shard not an integer", "member_10", member("ALIVE", ",\"shard\":\"x\""), Kind::malformed, ""},
            {"thrift-encoded", "member_11", std::string("\x0c\x00\x01", 3), Kind::malformed, ""},
        });
  // A named additional endpoint instead of the service endpoint.
  check(RegistryFormat::serverset,
        {
            {"named endpoint", "member_0000000000", member("ALIVE"), Kind::routed, "10.0.0.1:8080"},
            {"named endpoint, dead", "member_0000000001", member("DEAD"), Kind::not_routed, "10.0.0.1:8080"},
            {"named endpoint missing", "member_0000000002",
             R"({"serviceEndpoint":{"host":"h","port":1},"additionalEndpoints":{},"status":"ALIVE"})",
             Kind::malformed, ""},
            {"no additionalEndpoints", "member_0000000003",
             R"({"serviceEndpoint":{"host":"h","port":1},"status":"ALIVE"})", Kind::malformed, ""},
        },
        "http");
}

TEST(RegistryFormat, Curator) {
  auto instance = [](const std::string& fields) {
    return R"({"name":"web","id":"0c5f4e3e-7b8c-4f6e-9d0a-1b2c3d4e5f60","address":"10.0.0.7",)" + fields +
           R"(,"payload":{"@class":"com.example.Details","zone":"a"},"registrationTimeUTC":1325129459728,"serviceType":"DYNAMIC","uriSpec":null})";
  };
  check(RegistryFormat::curator,
        {
            {"plain, no enabled field (Curator before 4.x)", "0c5f", instance(R"("port":8080,"sslPort":null)"),
             Kind::routed, "10.0.0.7:8080"},
            {"enabled true", "a", instance(R"("port":8080,"sslPort":null,"enabled":true)"), Kind::routed,
             "10.0.0.7:8080"},
            {"enabled false", "b", instance(R"("port":8080,"sslPort":null,"enabled":false)"), Kind::not_routed,
             "10.0.0.7:8080"},
            {"port and sslPort", "c", instance(R"("port":8080,"sslPort":8443)"), Kind::routed, "10.0.0.7:8080"},
            {"sslPort only", "d", instance(R"("port":null,"sslPort":8443)"), Kind::not_routed, "10.0.0.7:8443"},
            {"neither port", "e", instance(R"("port":null,"sslPort":null)"), Kind::malformed, ""},
            {"port as text", "f", instance(R"("port":"8080")"), Kind::malformed, ""},
            {"enabled as text", "g", instance(R"("port":8080,"enabled":"yes")"), Kind::malformed, ""},
            {"no address", "h", R"({"name":"web","id":"h","port":1})", Kind::malformed, ""},
            {"no id", "i", R"({"name":"web","address":"h","port":1})", Kind::malformed, ""},
            {"no name", "j", R"({"id":"j","address":"h","port":1})", Kind::malformed, ""},
            {"not JSON", "k", "web@10.0.0.7:8080", Kind::malformed, ""},
        });
}

TEST(RegistryFormat, MergeRoutesEachEndpointOnceAndTallies) {
  auto routed = [](const char* endpoint, uint32_t weight = 1) {
    RegistryEntry e;
    e.kind = Kind::routed;
    e.endpoint = endpoint;
    e.weight = weight;
    return e;
  };
  RegistryEntry dead;
  dead.kind = Kind::not_routed;
  dead.endpoint = "10.0.0.9:1";
  RegistryEntry bad;
  RegistryEntry other;
  other.kind = Kind::ignored;
  std::map<std::string, RegistryEntry> nodes = {
      {"a_0000000001", routed("10.0.0.1:80", 1)},
      {"a_0000000007", routed("10.0.0.1:80", 3)},  // the registrar restarted; its old node lingers
      {"b_0000000002", routed("10.0.0.2:80", 2)},
      {"c_0000000003", dead},
      {"d_0000000004", bad},
      {"vector_0", other},
  };
  RegistryTally tally;
  auto members = merge_registry(nodes, &tally);
  EXPECT_EQ(members, (std::vector<RegistryMember>{{"10.0.0.1:80", 3}, {"10.0.0.2:80", 2}}));
  EXPECT_EQ(tally.routed, 2u);
  EXPECT_EQ(tally.duplicates, 1u);
  EXPECT_EQ(tally.not_routed, 1u);
  EXPECT_EQ(tally.malformed, 1u);
  EXPECT_EQ(tally.ignored, 1u);
}

}  // namespace
}  // namespace ringmaster::discovery
