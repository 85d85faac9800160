// floor_fixed200 — the cache-hit floor (perf/README.md "Floors"): one thread, one io_uring,
// answers every request head (everything up to "\r\n\r\n"; pipelined heads are answered in
// order, one response each) with the same fixed 200 of --body-bytes bytes, and parses
// nothing else. A cache hit in ringmaster does this plus HTTP parsing and the cache lookup,
// so perf/compare's ratio of the two is what ringmaster's HTTP work costs over the kernel's.
//
//   floor_fixed200 --listen 127.0.0.1:PORT [--body-bytes N]
//
// Requests are expected without bodies (GET/HEAD, as perf/compare sends). Each connection
// has one receive and at most one send in flight; the response bytes are shared by all.
#include "floor.h"

#include <unistd.h>

#include <algorithm>
#include <string>

namespace {

using namespace perf_floor;

constexpr const char* kProgram = "floor_fixed200";
// A request head longer than this closes the connection (no head fits: not HTTP we serve).
constexpr std::size_t kReceiveBytes = 16 * 1024;
// Pipelined heads answered ahead of the sends: past this many owed responses we stop
// reading until sends catch up, so a client that only writes cannot grow our state.
constexpr std::uint64_t kMaxOwedResponses = 1024;
constexpr std::size_t kDefaultBodyBytes = 44;  // perf/compare's backend body
constexpr std::string_view kHeadEnd = "\r\n\r\n";

enum Op : unsigned { kAccept = 1, kReceive = 2, kSend = 3 };

struct Connection {
  int fd = -1;
  std::size_t used = 0;            // bytes in buffer not yet part of a complete head
  std::uint64_t owed = 0;          // responses to send, in order
  std::size_t sent_of_current = 0;  // bytes of the first owed response already sent
  bool receiving = false;
  bool sending = false;
  bool read_done = false;          // the client closed its side (or we stopped reading)
  bool failed = false;
  char buffer[kReceiveBytes];
};

io_uring g_ring;
int g_listen_fd = -1;
std::string g_response;

void arm_receive(Connection* c) {
  io_uring_sqe* sqe = sqe_for(&g_ring);
  io_uring_prep_recv(sqe, c->fd, c->buffer + c->used, kReceiveBytes - c->used, 0);
  io_uring_sqe_set_data64(sqe, tag(c, kReceive));
  c->receiving = true;
}

void arm_send(Connection* c) {
  io_uring_sqe* sqe = sqe_for(&g_ring);
  io_uring_prep_send(sqe, c->fd, g_response.data() + c->sent_of_current,
                     g_response.size() - c->sent_of_current, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, tag(c, kSend));
  c->sending = true;
}

// Closes once nothing is in flight; a failure first wakes what is (shutdown completes a
// pending receive with 0 and a pending send with an error).
void maybe_close(Connection* c) {
  if (c->failed && (c->receiving || c->sending)) {
    shutdown(c->fd, SHUT_RDWR);
    return;
  }
  const bool finished = c->failed || (c->read_done && c->owed == 0);
  if (finished && !c->receiving && !c->sending) {
    close(c->fd);
    delete c;
  }
}

void fail(Connection* c) {
  const bool first = !c->failed;
  c->failed = true;
  if (first && (c->receiving || c->sending)) shutdown(c->fd, SHUT_RDWR);
  maybe_close(c);
}

// Counts the complete heads in the buffer and keeps only the bytes after the last one.
void take_heads(Connection* c) {
  const std::string_view data(c->buffer, c->used);
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = data.find(kHeadEnd, start);
    if (end == std::string_view::npos) break;
    ++c->owed;
    start = end + kHeadEnd.size();
  }
  if (start > 0) {
    std::memmove(c->buffer, c->buffer + start, c->used - start);
    c->used -= start;
  }
}

void on_receive(Connection* c, int res) {
  c->receiving = false;
  if (c->failed) return maybe_close(c);
  if (res < 0) return fail(c);
  if (res == 0) {
    c->read_done = true;
    return maybe_close(c);
  }
  c->used += static_cast<std::size_t>(res);
  take_heads(c);
  if (c->used == kReceiveBytes) return fail(c);  // a head larger than the buffer
  if (c->owed > 0 && !c->sending) arm_send(c);
  if (c->owed < kMaxOwedResponses) arm_receive(c);
}

void on_send(Connection* c, int res) {
  c->sending = false;
  if (c->failed) return maybe_close(c);
  if (res <= 0) return fail(c);
  c->sent_of_current += static_cast<std::size_t>(res);
  if (c->sent_of_current == g_response.size()) {
    c->sent_of_current = 0;
    --c->owed;
  }
  if (c->owed > 0) {
    arm_send(c);
  } else if (c->read_done) {
    return maybe_close(c);
  }
  if (!c->receiving && !c->read_done && c->owed < kMaxOwedResponses) arm_receive(c);
}

void on_accept(io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(&g_ring, g_listen_fd, kAccept);
  if (cqe->res < 0) {
    std::fprintf(stderr, "%s: accept: %s\n", kProgram, std::strerror(-cqe->res));
    return;
  }
  auto* c = new Connection;
  c->fd = cqe->res;
  set_nodelay(c->fd);
  arm_receive(c);
}

void on_completion(io_uring_cqe* cqe) {
  const std::uint64_t data = io_uring_cqe_get_data64(cqe);
  if (op_of(data) == kAccept) return on_accept(cqe);
  auto* c = object_of<Connection>(data);
  if (op_of(data) == kReceive) return on_receive(c, cqe->res);
  on_send(c, cqe->res);
}

}  // namespace

int main(int argc, char** argv) {
  sockaddr_in listen_address{};
  bool have_listen = false;
  std::size_t body_bytes = kDefaultBodyBytes;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage_error(kProgram, "flag " + std::string(flag) + " needs a value");
    const std::string_view value = argv[++i];
    if (flag == "--listen") {
      if (!parse_address(value, &listen_address)) usage_error(kProgram, "--listen: want A.B.C.D:PORT");
      have_listen = true;
    } else if (flag == "--body-bytes") {
      if (!parse_size(value, &body_bytes)) usage_error(kProgram, "--body-bytes: want a byte count");
    } else {
      usage_error(kProgram, "unknown flag " + std::string(flag));
    }
  }
  if (!have_listen) usage_error(kProgram, "--listen HOST:PORT is required");

  g_response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body_bytes) +
               "\r\nContent-Type: text/plain\r\n\r\n";
  for (std::size_t i = 0; i < body_bytes; ++i) {
    g_response.push_back(static_cast<char>('a' + i % 26));
  }
  g_listen_fd = start_serving(kProgram, listen_address, &g_ring, kAccept);
  std::fprintf(stderr, "%s: listening, %zu-byte body\n", kProgram, body_bytes);
  run_loop(kProgram, &g_ring, on_completion);
}
