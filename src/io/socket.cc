#include "ringmaster/io/socket.h"

#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ringmaster::io {

int listen_tcp(const base::SocketAddress& address, int backlog) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(fd, address.get(), address.length) < 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error("bind " + address.to_string() + ": " + std::strerror(err));
  }
  if (listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error("listen " + address.to_string() + ": " + std::strerror(err));
  }
  return fd;
}

int probe_exclusive_bind(const base::SocketAddress& address) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  // SO_REUSEADDR only: our own TIME_WAIT leftovers do not count, a listener does.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int err = bind(fd, address.get(), address.length) < 0 ? errno : 0;
  close(fd);
  return err;
}

int connect_socket(const base::SocketAddress& address) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void peer_ip(int fd, char* out, size_t out_bytes) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  out[0] = '\0';
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
  std::string ip = base::ip_string(reinterpret_cast<sockaddr*>(&ss));
  std::snprintf(out, out_bytes, "%s", ip.c_str());
}

}  // namespace ringmaster::io
