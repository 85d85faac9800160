// Registry formats: how the children of a service's targets path are read when another tool
// registered them (README "Other registries"). ringmaster's own layout names each child
// "<host>:<port>" and keeps the request count in its data; nerve, Finagle ServerSets and
// Curator's service discovery each write their own node names and JSON, and own those nodes,
// so ringmaster only reads them and keeps its counts elsewhere (Coordinator: counts path).
//
// Plain functions over (child name, node data), no ZooKeeper I/O, so every case is
// unit-tested from tables. A node that does not parse is "malformed": skipped and counted by
// the caller, never fatal (ARCHITECTURE.md §1). Coordinator thread only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster::discovery {

enum class RegistryFormat { ringmaster, nerve, serverset, curator };

std::optional<RegistryFormat> parse_registry_format(std::string_view text);
const char* registry_format_name(RegistryFormat format);

// Node data larger than this is malformed: a registration is a few hundred bytes; ZooKeeper's
// own default limit is 1 MiB (jute.maxbuffer).
inline constexpr size_t kRegistryNodeBytesMax = 64 * 1024;
// Weights above this are malformed (HAProxy, which nerve's weights were made for, stops at
// 256; a little room beyond costs nothing).
inline constexpr uint32_t kRegistryWeightMax = 10000;

struct RegistryEntry {
  enum class Kind {
    routed,      // an endpoint to send traffic to
    not_routed,  // well-formed but not for traffic now: ServerSet status other than ALIVE,
                 // Curator "enabled": false or no plain port, nerve weight 0
    ignored,     // not a registration of this format (a ServerSet child not named member_*)
    malformed,   // does not parse: skipped and counted
  };
  Kind kind = Kind::malformed;
  std::string endpoint;  // "host:port" as base::HostPort writes it (routed and not_routed)
  uint32_t weight = 1;
  std::string why;       // for logs: what did not parse, or why not routed
};

// Reads one child of a foreign-format targets path. `serverset_endpoint`: empty for a
// ServerSet member's serviceEndpoint, else the name of one of its additionalEndpoints.
RegistryEntry parse_registry_node(RegistryFormat format, std::string_view child_name, std::string_view data,
                                  std::string_view serverset_endpoint = {});

// What a children list routes to: one member per distinct endpoint (two nodes for one
// host:port, e.g. a restarted registrar's old node still alive, route once; the larger weight
// wins), sorted by endpoint.
struct RegistryMember {
  std::string endpoint;
  uint32_t weight = 1;
  bool operator==(const RegistryMember&) const = default;
};
struct RegistryTally {
  uint64_t routed = 0;      // distinct endpoints routed
  uint64_t duplicates = 0;  // routed nodes whose endpoint another node already had
  uint64_t not_routed = 0;
  uint64_t ignored = 0;
  uint64_t malformed = 0;
};
std::vector<RegistryMember> merge_registry(const std::map<std::string, RegistryEntry>& nodes, RegistryTally* tally);

// RFC 4648 §5 (URL- and filename-safe) base64, padding optional; nullopt on anything else.
std::optional<std::string> decode_base64_url(std::string_view text);
std::string encode_base64_url(std::string_view bytes);

}  // namespace ringmaster::discovery
