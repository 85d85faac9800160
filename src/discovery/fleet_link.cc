#include "fleet_link.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <vector>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/base/clock.h"
#include "ringmaster/base/log.h"
#include "ringmaster/http/message.h"

namespace ringmaster::discovery {
namespace {

// "Content-Length: N" in a head (case-insensitive name); nullopt when absent or malformed.
std::optional<size_t> content_length(std::string_view head) {
  static constexpr std::string_view kName = "content-length:";
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    std::string_view line = head.substr(pos, head.find("\r\n", pos) - pos);
    if (line.size() < kName.size()) continue;
    bool match = true;
    for (size_t i = 0; i < kName.size() && match; ++i) match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    if (!match) continue;
    std::string_view value = line.substr(kName.size());
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    size_t n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return n;
  }
  return std::nullopt;
}

// A complete message in `buffer` (head + Content-Length body): its size, 0 when more bytes are
// needed, nullopt when it can never be complete (too big, no length).
std::optional<size_t> message_size(std::string_view buffer, size_t body_max) {
  size_t end = buffer.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (buffer.size() > FleetServer::kHeadBytesMax) return std::nullopt;
    return 0;
  }
  auto length = content_length(buffer.substr(0, end + 2));
  if (!length || *length > body_max) return std::nullopt;
  size_t total = end + 4 + *length;
  return buffer.size() >= total ? total : 0;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void set_timeouts(int fd, int64_t ms) {
  if (ms < 1) ms = 1;
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// The leader's answer; its head comes from http's one writer of our own responses.
std::string response(int status, std::string_view body) {
  http::LocalResponse answer;
  answer.status = static_cast<uint16_t>(status);
  answer.content_type = "application/json";
  answer.body = body;
  base::ByteBuffer out;
  http::write_response(answer, out);
  return std::string(out.view());
}

}  // namespace

// ---- FleetServer ------------------------------------------------------------------------

FleetServer::FleetServer(Handler handler) : handler_(std::move(handler)) {}

FleetServer::~FleetServer() {
  stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

bool FleetServer::listen(const base::SocketAddress& address, std::string* error) {
  listen_fd_ = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (listen_fd_ < 0 || wake_fd_ < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, address.get(), address.length) != 0 || ::listen(listen_fd_, 1024) != 0) {
    *error = "bind " + address.to_string() + ": " + std::strerror(errno);
    return false;
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return true;
}

void FleetServer::start() {
  thread_ = std::thread([this] {
    base::set_thread_name("fleet-link");
    run();
  });
}

void FleetServer::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  thread_.join();
}

void FleetServer::run() {
  std::map<int, std::string> conns;  // fd -> bytes received, not yet a whole request
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& [fd, buffer] : conns) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) break;
        if (conns.size() >= kConnectionsMax) {
          ::close(fd);
          continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_timeouts(fd, 1000);  // a follower that does not read its answer is cut
        conns.emplace(fd, std::string());
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      int fd = fds[i].fd;
      std::string& buffer = conns[fd];
      char chunk[16384];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
      bool close_it = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
      if (n > 0) buffer.append(chunk, static_cast<size_t>(n));
      while (!close_it) {
        std::optional<size_t> size = message_size(buffer, kBodyBytesMax);
        if (!size) {
          send_all(fd, response(413, "{}"));
          close_it = true;
          break;
        }
        if (*size == 0) break;
        std::string_view message(buffer.data(), *size);
        size_t head_end = message.find("\r\n\r\n");
        std::string answer = "{}";
        int status = 404;
        if (message.starts_with("POST /fleet/report ")) status = handler_(message.substr(head_end + 4), &answer);
        close_it = !send_all(fd, response(status, answer));
        buffer.erase(0, *size);
      }
      if (close_it) {
        ::close(fd);
        conns.erase(fd);
      }
    }
  }
  for (const auto& [fd, buffer] : conns) ::close(fd);
}

// ---- FleetClient ------------------------------------------------------------------------

FleetClient::~FleetClient() { close(); }

void FleetClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  address_.clear();
}

std::optional<FleetClient::Reply> FleetClient::post(const std::string& address, std::string_view body,
                                                    int64_t timeout_ms, std::string* error) {
  int64_t deadline = base::now_ms() + timeout_ms;
  const http::LocalRequest report{"POST", "/fleet/report", address, /*user_agent=*/{}, "application/json", body,
                                  /*close=*/false};
  base::ByteBuffer bytes;
  http::write_request(report, bytes);
  std::string_view request = bytes.view();
  bool reused = fd_ >= 0 && address_ == address;
  if (!reused) {
    close();
    auto hp = base::parse_host_port(address);
    auto resolved = hp ? base::resolve(*hp) : std::nullopt;
    if (!resolved) {
      *error = "cannot resolve " + address;
      return std::nullopt;
    }
    fd_ = ::socket(resolved->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      *error = std::string("socket: ") + std::strerror(errno);
      return std::nullopt;
    }
    set_timeouts(fd_, timeout_ms);  // bounds connect() too on Linux
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, resolved->get(), resolved->length) != 0) {
      *error = "connect " + address + ": " + std::strerror(errno);
      close();
      return std::nullopt;
    }
    address_ = address;
  }
  auto reply = exchange(request, deadline, error);
  if (!reply && reused) {
    // The kept connection may have been closed by the leader meanwhile: one fresh try.
    close();
    return post(address, body, deadline - base::now_ms(), error);
  }
  return reply;
}

std::optional<FleetClient::Reply> FleetClient::exchange(std::string_view request, int64_t deadline_ms,
                                                        std::string* error) {
  if (!send_all(fd_, request)) {
    *error = std::string("send: ") + std::strerror(errno);
    close();
    return std::nullopt;
  }
  std::string buffer;
  for (;;) {
    std::optional<size_t> size = message_size(buffer, FleetServer::kBodyBytesMax);
    if (!size) {
      *error = "malformed answer";
      close();
      return std::nullopt;
    }
    if (*size > 0) break;
    int64_t left = deadline_ms - base::now_ms();
    if (left <= 0) {
      *error = "timed out";
      close();
      return std::nullopt;
    }
    set_timeouts(fd_, left);
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n == 0 ? "connection closed" : std::string("recv: ") + std::strerror(errno);
      close();
      return std::nullopt;
    }
    buffer.append(chunk, static_cast<size_t>(n));
  }
  std::string_view message(buffer);
  size_t head_end = message.find("\r\n\r\n");
  Reply reply;
  // "HTTP/1.1 200 OK"
  if (message.size() < 12 || !message.starts_with("HTTP/1.1 ")) {
    *error = "not an HTTP response";
    close();
    return std::nullopt;
  }
  std::from_chars(message.data() + 9, message.data() + 12, reply.status);
  reply.body = std::string(message.substr(head_end + 4, content_length(message.substr(0, head_end + 2)).value_or(0)));
  return reply;
}

}  // namespace ringmaster::discovery
