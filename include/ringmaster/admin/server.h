// admin: the operator's HTTP listener (--admin) and what it serves: GET /metrics (the
// metrics registry, metrics/registry.h), GET /targets (JSON), POST /config/reload,
// POST /cache/purge. Its own module above http, io and metrics and beside proxy: the data
// plane never includes it, and it sees the data plane only through what main registers
// (ARCHITECTURE.md §3).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ringmaster/base/host_port.h"

namespace ringmaster::admin {

struct Request {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', raw
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response(const Request&)>;

// The operator's listener (--admin): GET /metrics, GET /targets, POST /cache/purge, ...
// It runs on its own thread with plain blocking sockets, one request per connection: it is
// for humans and scrapers, never on the request path. Handlers run on that thread, so they
// read data-plane state only through atomics or thread-safe accessors.
class Server {
 public:
  explicit Server(const base::SocketAddress& address);  // binds; throws on failure
  ~Server();
  void route(std::string method, std::string path, Handler handler);
  void start();
  void stop();

 private:
  void serve();
  void handle(int fd);

  struct Route {
    std::string method;
    std::string path;
    Handler handler;
  };
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::vector<Route> routes_;
  std::thread thread_;
};

}  // namespace ringmaster::admin
