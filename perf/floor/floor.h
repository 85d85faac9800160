// The pieces both physical-floor programs share (perf/README.md "Floors"): flag parsing, the
// listening socket, the ring and its loop. The floors are measuring instruments for
// perf/compare, not part of the product: they link liburing only and none of ringmaster's
// modules, so they show what this kernel's io_uring costs with no HTTP work on top.
//
// Style follows ARCHITECTURE.md §4 where it applies (no exceptions, named limits, units in
// names); errors on a connection close that connection, a bad flag exits 2 with one line.
#pragma once

#include <liburing.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace perf_floor {

// Ring sizes: enough submission entries for a burst of completions that each queue one or
// two operations; the completion queue is larger so multishot accepts never overflow it.
inline constexpr unsigned kRingEntries = 4096;
inline constexpr unsigned kCompletionEntries = 4 * kRingEntries;
inline constexpr int kListenBacklog = 4096;

// user_data: an object pointer (aligned to at least 8) with the operation in the low bits.
inline constexpr std::uintptr_t kOpMask = 7;

inline std::uint64_t tag(const void* object, unsigned op) {
  return reinterpret_cast<std::uintptr_t>(object) | op;
}
template <typename T>
T* object_of(std::uint64_t user_data) {
  return reinterpret_cast<T*>(static_cast<std::uintptr_t>(user_data) & ~kOpMask);
}
inline unsigned op_of(std::uint64_t user_data) {
  return static_cast<unsigned>(user_data & kOpMask);
}

[[noreturn]] inline void usage_error(const char* program, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program, what.c_str());
  std::exit(2);
}

[[noreturn]] inline void fatal(const char* program, const char* what, int error) {
  std::fprintf(stderr, "%s: %s: %s\n", program, what, std::strerror(error));
  std::exit(1);
}

// "A.B.C.D:PORT" (numeric IPv4: the floors run on loopback).
inline bool parse_address(std::string_view text, sockaddr_in* out) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string host(text.substr(0, colon));
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return false;
  }
  std::memset(out, 0, sizeof(*out));
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<std::uint16_t>(port));
  return inet_pton(AF_INET, host.c_str(), &out->sin_addr) == 1;
}

inline bool parse_size(std::string_view text, std::size_t* out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

inline int listen_on(const char* program, const sockaddr_in& address) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fatal(program, "socket", errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    fatal(program, "bind", errno);
  }
  if (listen(fd, kListenBacklog) != 0) fatal(program, "listen", errno);
  return fd;
}

// Small responses and requests go out at once, as every contender does (nginx tcp_nodelay).
inline void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// The same ring set-up as ringmaster's reactors (src/io/ring.cc): one issuer, task work run
// only when we wait, the ring descriptor registered, and a registered-file table in which a
// socket's slot is its descriptor number (so operations skip the per-call file lookup, as
// ringmaster's do), as large as the descriptor limit.
inline void init_ring(const char* program, io_uring* ring) {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
                 IORING_SETUP_CQSIZE;
  params.cq_entries = kCompletionEntries;
  int rc = io_uring_queue_init_params(kRingEntries, ring, &params);
  if (rc < 0) fatal(program, "io_uring_queue_init_params", -rc);
  io_uring_register_ring_fd(ring);
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  rc = io_uring_register_files_sparse(ring, static_cast<unsigned>(limit.rlim_cur));
  if (rc < 0) fatal(program, "io_uring_register_files_sparse", -rc);
  std::signal(SIGPIPE, SIG_IGN);
}

// A socket enters the registered table at its own number and leaves it before it is closed.
inline bool register_socket(io_uring* ring, int fd) {
  return io_uring_register_files_update(ring, static_cast<unsigned>(fd), &fd, 1) == 1;
}
inline void close_socket(io_uring* ring, int fd) {
  int empty = -1;
  io_uring_register_files_update(ring, static_cast<unsigned>(fd), &empty, 1);
  close(fd);
}

// A submission entry, submitting what is queued first when the queue is full.
inline io_uring_sqe* sqe_for(io_uring* ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  while (sqe == nullptr) {
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
  }
  return sqe;
}

inline void arm_accept(io_uring* ring, int listen_fd, unsigned op) {
  io_uring_sqe* sqe = sqe_for(ring);
  io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, op);
}

// An accept completion: re-arms the multishot accept when it ended, and returns the new
// socket, registered, or -1 (an accept error is logged; the listener keeps going).
inline int take_accepted(const char* program, io_uring* ring, int listen_fd, unsigned accept_op,
                         const io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(ring, listen_fd, accept_op);
  if (cqe->res < 0) {
    std::fprintf(stderr, "%s: accept: %s\n", program, std::strerror(-cqe->res));
    return -1;
  }
  if (!register_socket(ring, cqe->res)) {
    close(cqe->res);
    return -1;
  }
  return cqe->res;
}

// The listener, the ring and a multishot accept on it; returns the listening descriptor.
inline int start_serving(const char* program, const sockaddr_in& address, io_uring* ring, unsigned accept_op) {
  const int listen_fd = listen_on(program, address);
  init_ring(program, ring);
  arm_accept(ring, listen_fd, accept_op);
  return listen_fd;
}

// Submits, waits for at least one completion, hands every completion to `handle`; forever.
template <typename Handler>
[[noreturn]] void run_loop(const char* program, io_uring* ring, Handler&& handle) {
  for (;;) {
    const int rc = io_uring_submit_and_wait(ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) fatal(program, "io_uring_submit_and_wait", -rc);
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(ring, head, cqe) {
      handle(cqe);
      ++seen;
    }
    io_uring_cq_advance(ring, seen);
  }
}

}  // namespace perf_floor
