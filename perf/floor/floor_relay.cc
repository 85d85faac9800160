// floor_relay — the proxied floor (perf/README.md "Floors"): one thread, one io_uring, a
// blind TCP relay. Each accepted client gets its own upstream connection (1:1, no pooling: a
// relay that parses nothing cannot tell where one request ends to share a connection), to
// the --upstream addresses in turn, and bytes are copied both ways as they come, unparsed.
// A proxied request through ringmaster costs this plus HTTP parsing, routing and pooling, so
// perf/compare's ratio of the two is what ringmaster adds over the kernel's TCP work.
//
//   floor_relay --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--upstream ...]
//
// Per direction: one receive, then sends until that chunk is all out, then the next
// receive; sockets are registered (slot = descriptor), as ringmaster's are. EOF on one side is passed on as a half-close (shutdown SHUT_WR); the pair closes
// when both directions ended, or at once on any error.
#include "floor.h"


#include <vector>

namespace {

using namespace perf_floor;

constexpr const char* kProgram = "floor_relay";
// Per direction; as large as ringmaster's upstream read buffer, so a large body takes as
// many receives through either.
constexpr std::size_t kChunkBytes = 64 * 1024;

enum Op : unsigned { kAccept = 1, kConnect = 2, kReceive = 3, kSend = 4 };

struct Pair;

struct Direction {
  Pair* pair = nullptr;
  int from = -1;
  int to = -1;
  std::size_t length = 0;  // bytes of the current chunk
  std::size_t sent = 0;    // of which already sent
  bool ended = false;      // `from` reached EOF and `to` was half-closed
  char buffer[kChunkBytes];
};

struct Pair {
  int client = -1;
  int upstream = -1;
  int in_flight = 0;
  bool failed = false;
  Direction up;    // client -> upstream
  Direction down;  // upstream -> client
};

io_uring g_ring;
int g_listen_fd = -1;
std::vector<sockaddr_in> g_upstreams;
std::size_t g_next_upstream = 0;

void arm_receive(Direction* d) {
  io_uring_sqe* sqe = sqe_for(&g_ring);
  io_uring_prep_recv(sqe, d->from, d->buffer, kChunkBytes, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, tag(d, kReceive));
  ++d->pair->in_flight;
}

void arm_send(Direction* d) {
  io_uring_sqe* sqe = sqe_for(&g_ring);
  io_uring_prep_send(sqe, d->to, d->buffer + d->sent, d->length - d->sent, MSG_NOSIGNAL);
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, tag(d, kSend));
  ++d->pair->in_flight;
}

// Frees the pair once nothing is in flight and it failed or both directions ended.
void settle(Pair* p) {
  if (p->in_flight > 0) return;
  if (p->failed || (p->up.ended && p->down.ended)) {
    close_socket(&g_ring, p->client);
    close_socket(&g_ring, p->upstream);
    delete p;
  }
}

// Any error ends both directions: shutting both sockets down completes what is in flight.
void fail(Pair* p) {
  if (!p->failed) {
    p->failed = true;
    shutdown(p->client, SHUT_RDWR);
    shutdown(p->upstream, SHUT_RDWR);
  }
  settle(p);
}

void on_connect(Pair* p, int res) {
  --p->in_flight;
  if (res < 0) return fail(p);
  set_nodelay(p->upstream);
  arm_receive(&p->up);
  arm_receive(&p->down);
}

void on_receive(Direction* d, int res) {
  Pair* p = d->pair;
  --p->in_flight;
  if (p->failed || res < 0) return fail(p);
  if (res == 0) {
    d->ended = true;
    shutdown(d->to, SHUT_WR);
    return settle(p);
  }
  d->length = static_cast<std::size_t>(res);
  d->sent = 0;
  arm_send(d);
}

void on_send(Direction* d, int res) {
  Pair* p = d->pair;
  --p->in_flight;
  if (p->failed || res <= 0) return fail(p);
  d->sent += static_cast<std::size_t>(res);
  if (d->sent < d->length) {
    arm_send(d);
  } else {
    arm_receive(d);
  }
}

void on_accept(io_uring_cqe* cqe) {
  const int client = take_accepted(kProgram, &g_ring, g_listen_fd, kAccept, cqe);
  if (client < 0) return;
  const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (upstream < 0 || !register_socket(&g_ring, upstream)) {
    std::fprintf(stderr, "%s: no upstream socket for a client\n", kProgram);
    close_socket(&g_ring, client);
    if (upstream >= 0) close(upstream);
    return;
  }
  auto* p = new Pair;
  p->client = client;
  p->upstream = upstream;
  set_nodelay(p->client);
  p->up.pair = p;
  p->up.from = p->client;
  p->up.to = p->upstream;
  p->down.pair = p;
  p->down.from = p->upstream;
  p->down.to = p->client;
  const sockaddr_in& target = g_upstreams[g_next_upstream++ % g_upstreams.size()];
  io_uring_sqe* sqe = sqe_for(&g_ring);
  io_uring_prep_connect(sqe, upstream, reinterpret_cast<const sockaddr*>(&target), sizeof(target));
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, tag(p, kConnect));
  ++p->in_flight;
}

}  // namespace

int main(int argc, char** argv) {
  sockaddr_in listen_address{};
  bool have_listen = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage_error(kProgram, "flag " + std::string(flag) + " needs a value");
    const std::string_view value = argv[++i];
    sockaddr_in address{};
    if (!parse_address(value, &address)) usage_error(kProgram, std::string(flag) + ": want A.B.C.D:PORT");
    if (flag == "--listen") {
      listen_address = address;
      have_listen = true;
    } else if (flag == "--upstream") {
      g_upstreams.push_back(address);
    } else {
      usage_error(kProgram, "unknown flag " + std::string(flag));
    }
  }
  if (!have_listen || g_upstreams.empty()) usage_error(kProgram, "--listen and --upstream are required");

  g_listen_fd = start_serving(kProgram, listen_address, &g_ring, kAccept);
  std::fprintf(stderr, "%s: listening, %zu upstream(s), 1:1\n", kProgram, g_upstreams.size());
  run_loop(kProgram, &g_ring, [](io_uring_cqe* cqe) {
    const std::uint64_t data = io_uring_cqe_get_data64(cqe);
    switch (op_of(data)) {
      case kAccept: return on_accept(cqe);
      case kConnect: return on_connect(object_of<Pair>(data), cqe->res);
      case kReceive: return on_receive(object_of<Direction>(data), cqe->res);
      case kSend: return on_send(object_of<Direction>(data), cqe->res);
      default: return;
    }
  });
}
