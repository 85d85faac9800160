// io: the io_uring plumbing of one reactor thread — the ring itself, the provided-buffer ring
// that multishot receives fill, and socket helpers. Everything here is owned by exactly one
// thread (the ring is created with SINGLE_ISSUER | DEFER_TASKRUN, so completions are only
// ever run when that thread asks for them) and nothing here knows about HTTP.
#pragma once

#include <liburing.h>

#include <cstdint>

#include "ringmaster/base/check.h"

namespace ringmaster::io {

// Completion routing: every SQE carries a pointer to its owner with a small tag in the low
// bits (owners are at least 8-byte aligned).
enum class OpTag : uint8_t {
  ignore = 0,  // cancels, link timeouts: nobody waits for the result
  accept = 1,
  client_recv = 2,
  client_send = 3,
  upstream_connect = 4,
  upstream_recv = 5,
  upstream_send = 6,
  wake = 7,
};

inline uint64_t pack_user_data(const void* owner, OpTag tag) {
  auto bits = reinterpret_cast<uintptr_t>(owner);
  RM_CHECK((bits & 7) == 0);
  return static_cast<uint64_t>(bits | static_cast<uintptr_t>(tag));
}
inline OpTag tag_of(uint64_t user_data) { return static_cast<OpTag>(user_data & 7); }
template <typename T>
T* owner_of(uint64_t user_data) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(user_data & ~uint64_t{7}));
}

class Ring {
 public:
  // Must be called on the thread that will use the ring (SINGLE_ISSUER). Throws
  // std::runtime_error when the kernel refuses (startup only).
  explicit Ring(unsigned entries);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // A free SQE; when the submission queue is full, submits what is queued first. Never null.
  io_uring_sqe* get_sqe();
  // Submits everything queued and waits for at least one completion or the timeout.
  void submit_and_wait(int timeout_ms);
  // Submits without waiting.
  void submit();
  io_uring* raw() { return &ring_; }

  // Registered ("direct") descriptors: an operation on a registered socket skips the
  // kernel's per-operation file lookup and reference count (fget/fput, ~1.5% of the proxied
  // path's samples). The table is sparse and indexed by the descriptor's own number, so no
  // slot allocator is needed: descriptors below the table size are registered, others are
  // used as plain descriptors. Returns false (and registers nothing) when the kernel refuses.
  bool register_files(unsigned slots);
  bool registered(int fd) const { return fd >= 0 && static_cast<unsigned>(fd) < file_slots_; }
  // Queues the registration of *fd (read when the queue is submitted, so the int must live
  // until then; SQEs run in order, so operations queued after it may use the slot).
  void install_file(const int* fd);
  // Queues the slot's release. The table holds its own reference to the socket, so this
  // must accompany every close(2) of a registered descriptor or the socket stays open.
  void remove_file(int fd);
  // Makes sqe (already prepared on fd) go through the registered slot when there is one.
  void use_registered(io_uring_sqe* sqe, int fd) const {
    if (registered(fd)) sqe->flags |= IOSQE_FIXED_FILE;
  }

  // Visits every ready completion, then marks them all seen in one step.
  template <typename F>
  unsigned drain(F&& on_cqe) {
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      on_cqe(cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    return seen;
  }

 private:
  io_uring ring_{};
  unsigned file_slots_ = 0;
};

}  // namespace ringmaster::io
