#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ringmaster/base/host_port.h"

namespace ringmaster::proxy {

struct AdminRequest {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', raw
  std::string body;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

// The operator's listener (--admin): GET /metrics, GET /targets, POST /cache/purge, ...
// It runs on its own thread with plain blocking sockets, one request per connection: it is
// for humans and scrapers, never on the request path. Handlers run on that thread, so they
// read data-plane state only through atomics or thread-safe accessors.
class AdminServer {
 public:
  explicit AdminServer(const base::SocketAddress& address);  // binds; throws on failure
  ~AdminServer();
  void route(std::string method, std::string path, AdminHandler handler);
  void start();
  void stop();

 private:
  void serve();
  void handle(int fd);

  struct Route {
    std::string method;
    std::string path;
    AdminHandler handler;
  };
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::vector<Route> routes_;
  std::thread thread_;
};

}  // namespace ringmaster::proxy
