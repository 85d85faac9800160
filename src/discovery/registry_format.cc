#include "registry_format.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "ringmaster/base/host_port.h"

namespace ringmaster::discovery {
namespace {

using json = nlohmann::json;
using Kind = RegistryEntry::Kind;

RegistryEntry malformed(std::string why) {
  RegistryEntry e;
  e.kind = Kind::malformed;
  e.why = std::move(why);
  return e;
}

// nerve writes the port as its config had it: a number, or a string of digits.
std::optional<uint16_t> port_of(const json& value) {
  uint64_t port = 0;
  if (value.is_number_unsigned()) {
    port = value.get<uint64_t>();
  } else if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    port = std::stoul(text);
  } else {
    return std::nullopt;
  }
  if (port == 0 || port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

// host and port as found in the JSON → "host:port" (IPv6 literals bracketed), validated the
// same way as a ringmaster child name.
std::optional<std::string> endpoint_of(const json& host, const json& port) {
  if (!host.is_string()) return std::nullopt;
  auto p = port_of(port);
  if (!p) return std::nullopt;
  const std::string& h = host.get_ref<const std::string&>();
  std::string text = h.find(':') != std::string::npos ? "[" + h + "]" : h;
  auto hp = base::parse_host_port(text + ":" + std::to_string(*p));
  if (!hp) return std::nullopt;
  return hp->to_string();
}

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

json parse_object(std::string_view data) {
  if (data.size() > kRegistryNodeBytesMax) return json(json::value_t::discarded);
  json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return json(json::value_t::discarded);
  return j;
}

// nerve (lib/nerve/reporter/base.rb, zookeeper.rb): {"host", "port", "name", "weight"?, ...}.
RegistryEntry from_nerve_json(const json& j) {
  const json* host = member(j, "host");
  const json* port = member(j, "port");
  if (host == nullptr || port == nullptr) return malformed("no host or port");
  auto endpoint = endpoint_of(*host, *port);
  if (!endpoint) return malformed("bad host or port");
  RegistryEntry e;
  e.kind = Kind::routed;
  e.endpoint = *endpoint;
  if (const json* name = member(j, "name"); name != nullptr && !name->is_string()) return malformed("name is not a string");
  if (const json* weight = member(j, "weight"); weight != nullptr && !weight->is_null()) {
    if (!weight->is_number_unsigned() || weight->get<uint64_t>() > kRegistryWeightMax) {
      return malformed("weight is not an integer in 0.." + std::to_string(kRegistryWeightMax));
    }
    e.weight = static_cast<uint32_t>(weight->get<uint64_t>());
    if (e.weight == 0) {
      e.kind = Kind::not_routed;
      e.why = "weight 0";
    }
  }
  return e;
}

RegistryEntry parse_nerve(std::string_view name, std::string_view data) {
  // use_path_encoding: "base64_<length>_<base64url of the JSON>_<sequence>"; the same JSON is
  // in the data too, but the name is what synapse reads, so the name wins.
  constexpr std::string_view kPrefix = "base64_";
  if (name.starts_with(kPrefix)) {
    std::string_view rest = name.substr(kPrefix.size());
    size_t us = rest.find('_');
    size_t last = rest.rfind('_');
    if (us == std::string_view::npos || last == us) return malformed("base64 name without length or sequence");
    std::string_view encoded = rest.substr(us + 1, last - us - 1);
    std::string_view length = rest.substr(0, us);
    if (length != std::to_string(encoded.size())) return malformed("base64 name whose length does not match");
    auto decoded = decode_base64_url(encoded);
    if (!decoded) return malformed("base64 name that does not decode");
    json j = parse_object(*decoded);
    if (j.is_discarded()) return malformed("base64 name that is not a JSON object");
    return from_nerve_json(j);
  }
  json j = parse_object(data);
  if (j.is_discarded()) return malformed("data is not a JSON object");
  return from_nerve_json(j);
}

// ServerSets (com.twitter.common.zookeeper ServerSetImpl's JSON codec, Finagle serverset2):
// {"serviceEndpoint": {"host", "port"}, "additionalEndpoints": {NAME: {"host", "port"}},
//  "status": "ALIVE", "shard": N}.
RegistryEntry parse_serverset(std::string_view name, std::string_view data, std::string_view endpoint_name) {
  // Finagle reads only "member_" children (serverset2 keeps other entries, e.g. "vector_",
  // in the same directory).
  if (!name.starts_with("member_")) {
    RegistryEntry e;
    e.kind = Kind::ignored;
    e.why = "not a member_ node";
    return e;
  }
  json j = parse_object(data);
  if (j.is_discarded()) return malformed("data is not a JSON object (thrift-encoded ServerSets are not read)");
  const json* chosen = nullptr;
  if (endpoint_name.empty()) {
    chosen = member(j, "serviceEndpoint");
  } else if (const json* extra = member(j, "additionalEndpoints"); extra != nullptr && extra->is_object()) {
    chosen = member(*extra, std::string(endpoint_name).c_str());
  }
  if (chosen == nullptr || !chosen->is_object()) {
    return malformed(endpoint_name.empty() ? "no serviceEndpoint" : "no additional endpoint " + std::string(endpoint_name));
  }
  const json* host = member(*chosen, "host");
  const json* port = member(*chosen, "port");
  auto endpoint = host && port ? endpoint_of(*host, *port) : std::nullopt;
  if (!endpoint) return malformed("bad endpoint host or port");
  const json* status = member(j, "status");
  if (status == nullptr || !status->is_string()) return malformed("no status");
  if (const json* shard = member(j, "shard"); shard != nullptr && !shard->is_null() && !shard->is_number_integer()) {
    return malformed("shard is not an integer");
  }
  RegistryEntry e;
  e.endpoint = *endpoint;
  if (status->get_ref<const std::string&>() == "ALIVE") {
    e.kind = Kind::routed;
  } else {
    e.kind = Kind::not_routed;
    e.why = "status " + status->get<std::string>();
  }
  return e;
}

// Curator x-discovery (ServiceInstance through JsonInstanceSerializer), node
// <base>/<service>/<id>: {"name", "id", "address", "port", "sslPort", "payload",
// "registrationTimeUTC", "serviceType", "uriSpec", "enabled"}.
RegistryEntry parse_curator(std::string_view data) {
  json j = parse_object(data);
  if (j.is_discarded()) return malformed("data is not a JSON object");
  for (const char* key : {"name", "id"}) {
    const json* v = member(j, key);
    if (v == nullptr || !v->is_string()) return malformed(std::string("no ") + key);
  }
  const json* address = member(j, "address");
  if (address == nullptr || !address->is_string()) return malformed("no address");
  const json* port = member(j, "port");
  const json* ssl_port = member(j, "sslPort");
  const json* enabled = member(j, "enabled");
  if (enabled != nullptr && !enabled->is_null() && !enabled->is_boolean()) return malformed("enabled is not a boolean");
  RegistryEntry e;
  if (port == nullptr || port->is_null()) {
    // Only an sslPort: ringmaster speaks plain HTTP to backends, so this one is not routed.
    if (ssl_port == nullptr || ssl_port->is_null()) return malformed("neither port nor sslPort");
    auto ssl = endpoint_of(*address, *ssl_port);
    if (!ssl) return malformed("bad address or sslPort");
    e.kind = Kind::not_routed;
    e.endpoint = *ssl;
    e.why = "sslPort only";
    return e;
  }
  auto endpoint = port->is_number_unsigned() ? endpoint_of(*address, *port) : std::nullopt;
  if (!endpoint) return malformed("bad address or port");
  e.endpoint = *endpoint;
  e.kind = Kind::routed;
  if (enabled != nullptr && enabled->is_boolean() && !enabled->get<bool>()) {
    e.kind = Kind::not_routed;
    e.why = "enabled false";
  }
  return e;
}

}  // namespace

std::optional<RegistryFormat> parse_registry_format(std::string_view text) {
  for (RegistryFormat f : {RegistryFormat::ringmaster, RegistryFormat::nerve, RegistryFormat::serverset,
                           RegistryFormat::curator}) {
    if (text == registry_format_name(f)) return f;
  }
  return std::nullopt;
}

const char* registry_format_name(RegistryFormat format) {
  switch (format) {
    case RegistryFormat::ringmaster: return "ringmaster";
    case RegistryFormat::nerve: return "nerve";
    case RegistryFormat::serverset: return "serverset";
    case RegistryFormat::curator: return "curator";
  }
  return "?";
}

RegistryEntry parse_registry_node(RegistryFormat format, std::string_view child_name, std::string_view data,
                                  std::string_view serverset_endpoint) {
  switch (format) {
    case RegistryFormat::nerve: return parse_nerve(child_name, data);
    case RegistryFormat::serverset: return parse_serverset(child_name, data, serverset_endpoint);
    case RegistryFormat::curator: return parse_curator(data);
    case RegistryFormat::ringmaster: break;
  }
  return malformed("ringmaster's own layout is not a foreign registry");
}

std::vector<RegistryMember> merge_registry(const std::map<std::string, RegistryEntry>& nodes, RegistryTally* tally) {
  *tally = RegistryTally{};
  std::map<std::string, uint32_t> weights;
  for (const auto& [name, entry] : nodes) {
    switch (entry.kind) {
      case Kind::routed: {
        auto [it, fresh] = weights.emplace(entry.endpoint, entry.weight);
        if (!fresh) {
          ++tally->duplicates;
          it->second = std::max(it->second, entry.weight);
        }
        break;
      }
      case Kind::not_routed: ++tally->not_routed; break;
      case Kind::ignored: ++tally->ignored; break;
      case Kind::malformed: ++tally->malformed; break;
    }
  }
  std::vector<RegistryMember> members;
  members.reserve(weights.size());
  for (const auto& [endpoint, weight] : weights) members.push_back(RegistryMember{endpoint, weight});
  tally->routed = members.size();
  return members;
}

namespace {
constexpr std::string_view kBase64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
}

std::optional<std::string> decode_base64_url(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int have = 0;
  for (char c : text) {
    size_t v = kBase64Url.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    have += 6;
    if (have >= 8) {
      have -= 8;
      out.push_back(static_cast<char>((bits >> have) & 0xff));
    }
  }
  return out;
}

std::string encode_base64_url(std::string_view bytes) {
  std::string out;
  uint32_t bits = 0;
  int have = 0;
  for (unsigned char c : bytes) {
    bits = (bits << 8) | c;
    have += 8;
    while (have >= 6) {
      have -= 6;
      out.push_back(kBase64Url[(bits >> have) & 0x3f]);
    }
  }
  if (have > 0) out.push_back(kBase64Url[(bits << (6 - have)) & 0x3f]);
  while (out.size() % 4 != 0) out.push_back('=');
  return out;
}

}  // namespace ringmaster::discovery
