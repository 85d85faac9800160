#include "ringmaster/io/buffer_ring.h"

#include <sys/mman.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace ringmaster::io {

BufferRing::BufferRing(Ring& ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes)
    : ring_(ring), group_id_(group_id), count_(count), buffer_bytes_(buffer_bytes), available_(count) {
  RM_CHECK(count > 0 && count <= 32768 && (count & (count - 1)) == 0);
  size_t ring_bytes = sizeof(io_uring_buf) * count;
  void* mem = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap of buffer ring failed");
  ring_memory_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(ring_memory_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(ring_memory_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(ring_.raw(), &reg, 0);
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

void BufferRing::recycle(uint16_t buffer_id) {
  io_uring_buf_ring_add(ring_memory_, buffer(buffer_id), buffer_bytes_, buffer_id, mask_, 0);
  io_uring_buf_ring_advance(ring_memory_, 1);
  ++available_;
  RM_CHECK(available_ <= count_);
}

}  // namespace ringmaster::io
