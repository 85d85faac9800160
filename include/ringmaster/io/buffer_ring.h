#pragma once

#include <cstdint>
#include <vector>

#include "ringmaster/io/ring.h"

namespace ringmaster::io {

// A registered provided-buffer ring (one buffer group) that multishot receives pick buffers
// from. liburing 2.3 has no io_uring_setup_buf_ring, so the ring memory is mmap'd here and
// registered with io_uring_register_buf_ring.
//
// Incremental consumption (IOU_PBUF_RING_INC, kernel 6.12+; probed at construction, with a
// fallback): a receive takes only the bytes it needs from the buffer at the head of the
// ring, and the next receive — of any socket — continues in the same buffer. Small requests
// from thousands of clients then pack into a few buffers instead of touching the first page
// of one buffer each (issue 13: 0.8 KB per burst client), and a large body is received in
// pieces as big as a whole buffer. A buffer is shared by the receives that landed in it: it
// goes back to the ring once the kernel has moved past it and every piece was released.
//
// Usage per completion with IORING_CQE_F_BUFFER: received(id, bytes, flags) gives where the
// bytes are; release(id) once per received() when those bytes are consumed (or at once when
// they are not wanted).
class BufferRing {
 public:
  // count must be a power of two (≤ 32768). Throws std::runtime_error on failure (startup).
  // incremental=false forces the classic mode (one receive per buffer).
  BufferRing(Ring& ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes, bool incremental = true);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_bytes() const { return buffer_bytes_; }
  bool incremental() const { return incremental_; }
  char* buffer(uint16_t buffer_id) { return memory_ + static_cast<size_t>(buffer_id) * buffer_bytes_; }
  // A completion put `bytes` (≥ 0) into buffer_id: returns their offset in the buffer. Each
  // call must be matched by one release(buffer_id).
  uint32_t received(uint16_t buffer_id, uint32_t bytes, uint32_t cqe_flags);
  void release(uint16_t buffer_id);
  // Buffers currently available to the kernel.
  uint32_t available() const { return available_; }
  uint32_t count() const { return count_; }
  // Gives the buffers' pages back to the kernel (they read as zeros and are faulted in again
  // when next used). Only while no receive of this group can be in flight: the kernel writes
  // into a buffer before its completion is seen, so "all buffers available" is not enough.
  void release_memory();

 private:
  void recycle(uint16_t buffer_id);

  Ring& ring_;
  io_uring_buf_ring* ring_memory_ = nullptr;
  char* memory_ = nullptr;
  uint16_t group_id_;
  uint32_t count_;
  uint32_t buffer_bytes_;
  uint32_t available_;
  int mask_;
  bool incremental_ = false;
  // Per buffer: where the kernel writes next (incremental), pieces not yet released, and
  // whether the kernel has moved past it (it is then ours until recycled).
  std::vector<uint32_t> next_offset_;
  std::vector<uint16_t> users_;
  std::vector<uint8_t> kernel_done_;
};

}  // namespace ringmaster::io
