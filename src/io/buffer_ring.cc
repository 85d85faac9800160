#include "ringmaster/io/buffer_ring.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ringmaster::io {

namespace {
// From the kernel's uapi (6.12+); liburing 2.3's headers predate them. The flag goes in
// io_uring_buf_reg's 16-bit field after bgid (named `flags` in newer headers, `pad` here).
constexpr uint16_t kPbufRingIncremental = 2;     // IOU_PBUF_RING_INC
constexpr uint32_t kCqeBufferMore = 1u << 4;     // IORING_CQE_F_BUF_MORE

int register_ring(Ring& ring, io_uring_buf_ring* memory, uint32_t count, uint16_t group_id, uint16_t flags) {
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(memory);
  reg.ring_entries = count;
  reg.bgid = group_id;
  reg.pad = flags;
  return io_uring_register_buf_ring(ring.raw(), &reg, 0);
}
}  // namespace

BufferRing::BufferRing(Ring& ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes, bool incremental)
    : ring_(ring),
      group_id_(group_id),
      count_(count),
      buffer_bytes_(buffer_bytes),
      available_(count),
      next_offset_(count, 0),
      users_(count, 0),
      kernel_done_(count, 0) {
  RM_CHECK(count > 0 && count <= 32768 && (count & (count - 1)) == 0);
  size_t ring_bytes = sizeof(io_uring_buf) * count;
  void* mem = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap of buffer ring failed");
  ring_memory_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(ring_memory_);
  int rc = -EINVAL;
  if (incremental) {
    rc = register_ring(ring_, ring_memory_, count, group_id, kPbufRingIncremental);
    incremental_ = rc == 0;
  }
  // An older kernel refuses the flag (EINVAL): one receive per buffer, as before.
  if (rc != 0) rc = register_ring(ring_, ring_memory_, count, group_id, 0);
  if (rc < 0) throw std::runtime_error(std::string("io_uring_register_buf_ring: ") + std::strerror(-rc));
  size_t data_bytes = static_cast<size_t>(count) * buffer_bytes;
  void* data = mmap(nullptr, data_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (data == MAP_FAILED) throw std::runtime_error("mmap of receive buffers failed");
  memory_ = static_cast<char*>(data);
  mask_ = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(ring_memory_, buffer(static_cast<uint16_t>(i)), buffer_bytes, static_cast<uint16_t>(i), mask_,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(ring_memory_, static_cast<int>(count));
}

BufferRing::~BufferRing() {
  io_uring_unregister_buf_ring(ring_.raw(), group_id_);
  munmap(ring_memory_, sizeof(io_uring_buf) * count_);
  munmap(memory_, static_cast<size_t>(count_) * buffer_bytes_);
}

void BufferRing::release_memory() {
  RM_CHECK(available_ == count_);
  madvise(memory_, static_cast<size_t>(count_) * buffer_bytes_, MADV_DONTNEED);
}

uint32_t BufferRing::received(uint16_t buffer_id, uint32_t bytes, uint32_t cqe_flags) {
  RM_CHECK(buffer_id < count_ && !kernel_done_[buffer_id]);
  uint32_t offset = 0;
  bool done = true;
  if (incremental_) {
    offset = next_offset_[buffer_id];
    next_offset_[buffer_id] = offset + bytes;
    RM_CHECK(next_offset_[buffer_id] <= buffer_bytes_);
    done = !(cqe_flags & kCqeBufferMore);
  }
  ++users_[buffer_id];
  if (done) {
    kernel_done_[buffer_id] = 1;
    --available_;
  }
  return offset;
}

void BufferRing::release(uint16_t buffer_id) {
  RM_CHECK(users_[buffer_id] > 0);
  if (--users_[buffer_id] == 0 && kernel_done_[buffer_id]) recycle(buffer_id);
}

void BufferRing::recycle(uint16_t buffer_id) {
  kernel_done_[buffer_id] = 0;
  next_offset_[buffer_id] = 0;
  io_uring_buf_ring_add(ring_memory_, buffer(buffer_id), buffer_bytes_, buffer_id, mask_, 0);
  io_uring_buf_ring_advance(ring_memory_, 1);
  ++available_;
  RM_CHECK(available_ <= count_);
}

}  // namespace ringmaster::io
