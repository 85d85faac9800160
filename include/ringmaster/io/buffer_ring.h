#pragma once

#include <cstdint>

#include "ringmaster/io/ring.h"

namespace ringmaster::io {

// A registered provided-buffer ring (one buffer group) that multishot receives pick buffers
// from. liburing 2.3 has no io_uring_setup_buf_ring, so the ring memory is mmap'd here and
// registered with io_uring_register_buf_ring. A buffer picked by the kernel belongs to the
// caller until recycle(); buffers go back one at a time (cheap: one release-store).
class BufferRing {
 public:
  // count must be a power of two (≤ 32768). Throws std::runtime_error on failure (startup).
  BufferRing(Ring& ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_bytes() const { return buffer_bytes_; }
  char* buffer(uint16_t buffer_id) { return memory_ + static_cast<size_t>(buffer_id) * buffer_bytes_; }
  void recycle(uint16_t buffer_id);
  // Buffers currently available to the kernel.
  uint32_t available() const { return available_; }
  // Called for every completion that consumed a buffer.
  void on_picked() { --available_; }
  uint32_t count() const { return count_; }
  // Gives the buffers' pages back to the kernel (they read as zeros and are faulted in again
  // when next used). Only while no receive of this group can be in flight: the kernel writes
  // into a buffer before its completion is seen, so "all buffers available" is not enough.
  void release_memory();

 private:
  Ring& ring_;
  io_uring_buf_ring* ring_memory_ = nullptr;
  char* memory_ = nullptr;
  uint16_t group_id_;
  uint32_t count_;
  uint32_t buffer_bytes_;
  uint32_t available_;
  int mask_;
};

}  // namespace ringmaster::io
