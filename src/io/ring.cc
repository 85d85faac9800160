#include "ringmaster/io/ring.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace ringmaster::io {

Ring::Ring(unsigned entries) {
  io_uring_params params{};
  // SINGLE_ISSUER + DEFER_TASKRUN: completions run only inside our own io_uring_enter, so
  // there are no task-work interrupts in the middle of request processing.
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  params.flags |= IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring_, &params);
  if (rc < 0) throw std::runtime_error(std::string("io_uring_queue_init: ") + std::strerror(-rc));
  // A registered ring descriptor spares every io_uring_enter its file lookup (fget/fput
  // showed in the proxied flame graph once the sockets were registered). Optional.
  io_uring_register_ring_fd(&ring_);
}

Ring::~Ring() { io_uring_queue_exit(&ring_); }

io_uring_sqe* Ring::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  RM_CHECK(sqe != nullptr);
  return sqe;
}

void Ring::submit_and_wait(int timeout_ms) {
  __kernel_timespec ts{};
  ts.tv_sec = timeout_ms / 1000;
  ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
  io_uring_cqe* cqe = nullptr;
  // -ETIME and -EINTR are normal wake-ups; anything else is a broken ring.
  int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  RM_CHECK(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
}

void Ring::submit() { io_uring_submit(&ring_); }

bool Ring::register_files(unsigned slots) {
  if (slots == 0 || io_uring_register_files_sparse(&ring_, slots) < 0) return false;
  file_slots_ = slots;
  return true;
}

namespace {
// The value a slot release writes; static so that it outlives the queued SQE.
const int kNoFile = -1;

void prep_files_update(io_uring_sqe* sqe, const int* fds, int slot) {
  // liburing 2.3 takes a non-const pointer; the kernel only reads it.
  io_uring_prep_files_update(sqe, const_cast<int*>(fds), 1, slot);
  // Nobody waits for the result: a failed install surfaces as EBADF on the next operation.
  io_uring_sqe_set_data64(sqe, 0);
}
}  // namespace

void Ring::install_file(const int* fd) {
  if (!registered(*fd)) return;
  prep_files_update(get_sqe(), fd, *fd);
}

void Ring::remove_file(int fd) {
  if (!registered(fd)) return;
  prep_files_update(get_sqe(), &kNoFile, fd);
}

}  // namespace ringmaster::io
