#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmaster::base {

// "host:port" as written on the command line and in ZooKeeper node names. IPv6 literals are
// bracketed ("[::1]:8080"). Host names are resolved once, at startup or when a target joins.
struct HostPort {
  std::string host;
  uint16_t port = 0;

  std::string to_string() const;
  bool operator==(const HostPort&) const = default;
};

// Parses "host:port"; nullopt on anything malformed (empty host, port 0 or > 65535, junk).
std::optional<HostPort> parse_host_port(std::string_view text);

// A resolved socket address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  std::string to_string() const;
};

// Resolves numerically first, then with getaddrinfo (blocking: never call on the request path).
std::optional<SocketAddress> resolve(const HostPort& hp);

// The printable IP of a peer address, without the port ("127.0.0.1", "::1").
std::string ip_string(const sockaddr* sa);

}  // namespace ringmaster::base
