#include "ringmaster/admin/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/base/log.h"
#include "ringmaster/http/message.h"
#include "ringmaster/io/socket.h"

namespace ringmaster::admin {
namespace {

constexpr int kAdminIoTimeoutMs = 2000;
constexpr size_t kAdminBodyBytesMax = 64 * 1024;

void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Every byte of the answer comes from http's one writer of our own responses.
void send_response(int fd, const Response& r) {
  http::LocalResponse answer;
  answer.status = static_cast<uint16_t>(r.status);
  answer.content_type = r.content_type;
  answer.body = r.body;
  answer.close = true;  // one request per connection
  base::ByteBuffer out;
  http::write_response(answer, out);
  send_all(fd, out.view());
}

}  // namespace

Server::Server(const base::SocketAddress& address) {
  listen_fd_ = io::listen_tcp(address, 64);
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) throw std::runtime_error("eventfd failed");
}

Server::~Server() {
  stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void Server::route(std::string method, std::string path, Handler handler) {
  routes_.push_back(Route{std::move(method), std::move(path), std::move(handler)});
}

void Server::start() {
  thread_ = std::thread([this] {
    base::set_thread_name("admin");
    serve();
  });
}

void Server::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  thread_.join();
}

void Server::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // Blocking with timeouts: a stuck admin client can delay other admin clients, never
    // the data plane.
    ::fcntl(fd, F_SETFL, 0);
    timeval tv{kAdminIoTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    handle(fd);
    ::close(fd);
  }
}

void Server::handle(int fd) {
  http::Limits limits;
  limits.body_bytes_max = kAdminBodyBytesMax;
  http::RequestParser parser(limits);
  base::ByteBuffer body;
  char buf[4096];
  bool head_done = false;
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    const char* p = buf;
    size_t left = static_cast<size_t>(n);
    if (!head_done) {
      http::ParseResult r = parser.parse_head(p, left);
      if (r.status == http::ParseStatus::error) {
        send_response(fd, Response{parser.error_status(), "text/plain", "bad request\n"});
        return;
      }
      p += r.consumed;
      left -= r.consumed;
      if (r.status != http::ParseStatus::head_done) continue;
      head_done = true;
    }
    if (!parser.body_done()) {
      http::ParseResult r = parser.parse_body(p, left, body);
      if (r.status == http::ParseStatus::error) {
        send_response(fd, Response{parser.error_status(), "text/plain", "bad request body\n"});
        return;
      }
    }
    if (parser.body_done()) break;
  }
  const http::RequestHead& head = parser.head();
  Request req;
  req.method = std::string(head.method_text);
  std::string_view target = head.target;
  size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  req.body = std::string(body.view());
  bool path_known = false;
  for (const Route& r : routes_) {
    if (r.path != req.path) continue;
    path_known = true;
    if (r.method == req.method) {
      send_response(fd, r.handler(req));
      return;
    }
  }
  send_response(fd, path_known ? Response{405, "text/plain", "method not allowed\n"}
                               : Response{404, "text/plain", "not found\n"});
}

}  // namespace ringmaster::admin
