#pragma once

#include "ringmaster/base/host_port.h"

namespace ringmaster::io {

// A non-blocking TCP listener with SO_REUSEPORT (one per reactor: the kernel spreads new
// connections across them) and TCP_NODELAY (inherited by accepted sockets). Throws
// std::runtime_error with the reason (startup only).
int listen_tcp(const base::SocketAddress& address, int backlog);
// Binds a throwaway socket to `address` without SO_REUSEPORT and closes it: 0 when nothing
// else holds the address, else the errno (EADDRINUSE: another socket, e.g. another process's
// listener, which listen_tcp's SO_REUSEPORT would silently share).
int probe_exclusive_bind(const base::SocketAddress& address);
// A non-blocking TCP socket for connecting to `address`, with TCP_NODELAY. -errno on failure.
int connect_socket(const base::SocketAddress& address);
// The peer IP of a connected socket ("" when unknown).
void peer_ip(int fd, char* out, size_t out_bytes);

}  // namespace ringmaster::io
