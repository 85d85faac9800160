// floor_fixed200 — the cache-hit floor (perf/README.md "Floors"): one thread, one io_uring,
// answers every request head (everything up to "\r\n\r\n"; pipelined heads are answered in
// order, one response each) with the same fixed 200 of --body-bytes bytes, and parses
// nothing else. A cache hit in ringmaster does this plus HTTP parsing and the cache lookup,
// so perf/compare's ratio of the two is what ringmaster's HTTP work costs over the kernel's.
//
//   floor_fixed200 --listen 127.0.0.1:PORT [--body-bytes N]
//
// Requests are expected without bodies (GET/HEAD, as perf/compare sends). The receive path
// is ringmaster's: one multishot receive per connection into provided buffers (a buffer
// ring shared by all connections, each buffer handed back as soon as its bytes are scanned)
// on a registered socket; at most one send in flight per connection; the response bytes
// are shared by all.
#include "floor.h"

#include <sys/mman.h>

#include <string>
#include <vector>

namespace {

using namespace perf_floor;

constexpr const char* kProgram = "floor_fixed200";
// A request head longer than this closes the connection (not a request we serve).
constexpr std::size_t kHeadBytesMax = 16 * 1024;
// Pipelined heads answered ahead of the sends: a client that owes us more reads than this
// (it only writes) is closed, so it cannot grow our state.
constexpr std::uint64_t kMaxOwedResponses = 1024;
constexpr std::size_t kDefaultBodyBytes = 44;  // perf/compare's backend body
constexpr std::string_view kHeadEnd = "\r\n\r\n";
// Provided receive buffers (ringmaster's are 16 KiB; a request head fits in far less). Every
// buffer goes back to the ring when its completion is handled, so they run out only when
// more receives complete in one batch than there are buffers: the receive then ends with
// ENOBUFS and is armed again, the bytes waiting in the socket.
constexpr unsigned kBufferCount = 4096;  // a power of two
constexpr std::size_t kBufferBytes = 4096;
constexpr unsigned kBufferGroup = 0;

enum Op : unsigned { kAccept = 1, kReceive = 2, kSend = 3 };

struct Connection {
  int fd = -1;                      // also its registered slot
  std::uint64_t owed = 0;           // responses to send, in order
  std::size_t sent_of_current = 0;  // bytes of the first owed response already sent
  std::size_t head_bytes = 0;       // bytes since the last complete head
  unsigned matched = 0;             // bytes of "\r\n\r\n" matched at the end of what came
  bool receiving = false;           // the multishot receive is armed
  bool sending = false;
  bool read_done = false;           // the client closed its side
  bool failed = false;
};

io_uring g_ring;
int g_listen_fd = -1;
std::string g_response;
io_uring_buf_ring* g_buffers = nullptr;
std::vector<char> g_buffer_memory;

void give_back(unsigned id) {
  io_uring_buf_ring_add(g_buffers, g_buffer_memory.data() + std::size_t{id} * kBufferBytes, kBufferBytes,
                        static_cast<unsigned short>(id), io_uring_buf_ring_mask(kBufferCount), 0);
  io_uring_buf_ring_advance(g_buffers, 1);
}

// liburing 2.3 has no io_uring_setup_buf_ring: the ring's memory is mapped and registered here.
void set_up_buffers() {
  void* memory = mmap(nullptr, sizeof(io_uring_buf) * kBufferCount, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (memory == MAP_FAILED) fatal(kProgram, "mmap", errno);
  g_buffers = static_cast<io_uring_buf_ring*>(memory);
  io_uring_buf_ring_init(g_buffers);
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<std::uintptr_t>(memory);
  registration.ring_entries = kBufferCount;
  registration.bgid = kBufferGroup;
  const int rc = io_uring_register_buf_ring(&g_ring, &registration, 0);
  if (rc < 0) fatal(kProgram, "io_uring_register_buf_ring", -rc);
  g_buffer_memory.resize(std::size_t{kBufferCount} * kBufferBytes);
  for (unsigned id = 0; id < kBufferCount; ++id) give_back(id);
}

void arm_receive(Connection* c) {
  io_uring_sqe* sqe = sqe_for(&g_ring);
  io_uring_prep_recv_multishot(sqe, c->fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, tag(c, kReceive));
  c->receiving = true;
}

void arm_send(Connection* c) {
  io_uring_sqe* sqe = sqe_for(&g_ring);
  io_uring_prep_send(sqe, c->fd, g_response.data() + c->sent_of_current,
                     g_response.size() - c->sent_of_current, MSG_NOSIGNAL);
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, tag(c, kSend));
  c->sending = true;
}

// Closes once nothing is in flight; a failure first wakes what is (shutdown ends the
// multishot receive and fails a pending send).
void maybe_close(Connection* c) {
  if (c->failed && (c->receiving || c->sending)) {
    shutdown(c->fd, SHUT_RDWR);
    return;
  }
  const bool finished = c->failed || (c->read_done && c->owed == 0);
  if (finished && !c->receiving && !c->sending) {
    close_socket(&g_ring, c->fd);
    delete c;
  }
}

void fail(Connection* c) {
  c->failed = true;
  maybe_close(c);
}

// Counts the heads that end in these bytes; a terminator may be split across receives.
void take_heads(Connection* c, const char* data, std::size_t length) {
  for (std::size_t i = 0; i < length; ++i) {
    const char ch = data[i];
    if (ch == kHeadEnd[c->matched]) {
      if (++c->matched == kHeadEnd.size()) {
        ++c->owed;
        c->matched = 0;
        c->head_bytes = 0;
        continue;
      }
    } else {
      c->matched = ch == '\r' ? 1 : 0;
    }
    ++c->head_bytes;
  }
}

void on_receive(Connection* c, io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) c->receiving = false;
  const int res = cqe->res;
  if (cqe->flags & IORING_CQE_F_BUFFER) {
    const unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (res > 0 && !c->failed) {
      take_heads(c, g_buffer_memory.data() + std::size_t{id} * kBufferBytes, static_cast<std::size_t>(res));
    }
    give_back(id);
  }
  if (c->failed) return maybe_close(c);
  if (res == 0) {
    c->read_done = true;
    return maybe_close(c);
  }
  if (res < 0 && res != -ENOBUFS) return fail(c);
  if (c->head_bytes > kHeadBytesMax || c->owed > kMaxOwedResponses) return fail(c);
  if (c->owed > 0 && !c->sending) arm_send(c);
  if (!c->receiving) arm_receive(c);
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
    maybe_close(c);
  }
}

void on_accept(io_uring_cqe* cqe) {
  const int fd = take_accepted(kProgram, &g_ring, g_listen_fd, kAccept, cqe);
  if (fd < 0) return;
  auto* c = new Connection;
  c->fd = fd;
  set_nodelay(c->fd);
  arm_receive(c);
}

void on_completion(io_uring_cqe* cqe) {
  const std::uint64_t data = io_uring_cqe_get_data64(cqe);
  if (op_of(data) == kAccept) return on_accept(cqe);
  auto* c = object_of<Connection>(data);
  if (op_of(data) == kReceive) return on_receive(c, cqe);
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
  set_up_buffers();
  std::fprintf(stderr, "%s: listening, %zu-byte body\n", kProgram, body_bytes);
  run_loop(kProgram, &g_ring, on_completion);
}
