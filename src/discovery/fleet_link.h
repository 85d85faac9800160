// The TCP link between followers and the fleet leader: a follower POSTs its batches to
// /fleet/report on the leader's fleet listener once per flush interval; the leader answers
// at once with what it has applied. Plain HTTP/1.1 with Content-Length so an operator can
// look with curl; not the data plane, so blocking sockets and poll() are the simple choice.
//
// FleetServer runs one thread of its own (poll over the listener and its connections) and
// calls the handler on that thread. FleetClient is used by the coordinator thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "ringmaster/base/host_port.h"

namespace ringmaster::discovery {

class FleetServer {
 public:
  // Returns the HTTP status; fills *answer (a JSON body).
  using Handler = std::function<int(std::string_view body, std::string* answer)>;
  static constexpr size_t kHeadBytesMax = 8192;
  static constexpr size_t kBodyBytesMax = 16u << 20;
  static constexpr size_t kConnectionsMax = 4096;

  explicit FleetServer(Handler handler);
  ~FleetServer();
  FleetServer(const FleetServer&) = delete;
  FleetServer& operator=(const FleetServer&) = delete;

  // Binds and listens (port 0: the kernel picks one). false with *error on failure.
  bool listen(const base::SocketAddress& address, std::string* error);
  uint16_t port() const { return port_; }
  void start();
  void stop();

 private:
  void run();

  Handler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop()
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

class FleetClient {
 public:
  FleetClient() = default;
  ~FleetClient();
  FleetClient(const FleetClient&) = delete;
  FleetClient& operator=(const FleetClient&) = delete;

  struct Reply {
    int status = 0;
    std::string body;
  };
  // POST /fleet/report to `address` ("host:port"), waiting at most timeout_ms in all. Keeps
  // the connection for the next call to the same address. nullopt with *error on failure.
  std::optional<Reply> post(const std::string& address, std::string_view body, int64_t timeout_ms,
                            std::string* error);
  void close();

 private:
  std::optional<Reply> exchange(std::string_view request, int64_t deadline_ms, std::string* error);

  int fd_ = -1;
  std::string address_;
};

}  // namespace ringmaster::discovery
