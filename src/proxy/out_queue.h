// OutQueue: the bytes waiting to go out on one socket, as a queue of chunks. A chunk is
// either bytes the connection owns (a ByteBuffer it appends to) or a shared, immutable
// segment of a cache entry, kept alive by an EntryRef until it is sent — that is how a large
// cache hit's head and body reach the socket without being copied per request.
//
// The kernel reads every chunk of an outstanding send, so those chunks are sealed: nothing
// appends to them and nothing moves them; new bytes open a new chunk at the back. One send
// (sendmsg over up to kIovMax chunks) is outstanding at a time.
//
// Memory: the owned buffers come from the reactor's BufferPool and go back to it once sent,
// and release() gives back even the chunk list, so a connection with nothing to send (an
// idle keep-alive client) holds no buffer at all (issue: 10,000 idle clients).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <liburing.h>

#include <memory>
#include <vector>

#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/cache/cache.h"

namespace ringmaster::proxy {

// One piece of an OutQueue: bytes the connection owns, or a shared segment of a cache entry.
struct OutChunk {
  base::ByteBuffer owned;
  cache::EntryRef shared;
  const char* shared_data = nullptr;
  size_t shared_len = 0;
  bool is_shared = false;
  bool sealed = false;
  size_t length() const { return is_shared ? shared_len : owned.size(); }
};

// Emptied output buffers shared by one reactor's connections (single thread), and the
// storage of released queues' chunk lists: a keep-alive client releases its queue after
// every answer (so that idle it holds nothing), and without the pool each answer paid a
// malloc and a free for its chunk list.
class BufferPool {
 public:
  // Spare buffers (and chunk lists) kept at most, and the largest one kept: a buffer that
  // grew for a large answer is freed rather than held by the pool.
  static constexpr size_t kSpareMax = 32;
  static constexpr size_t kKeptBytesMax = 64 * 1024;
  static constexpr size_t kKeptChunksMax = 8;

  base::ByteBuffer take();
  void give(base::ByteBuffer&& buffer);
  // An empty chunk list, with room for a few chunks when the pool has one.
  std::vector<OutChunk> take_chunks();
  void give_chunks(std::vector<OutChunk>&& chunks);
  size_t spare() const { return spare_.size(); }
  size_t spare_chunk_lists() const { return spare_chunks_.size(); }
  // The spares and the lists' own memory: a list grown by a burst would otherwise stay on a
  // heap page of that burst (worker.cc release_vacant_memory).
  void clear() {
    std::vector<base::ByteBuffer>().swap(spare_);
    std::vector<std::vector<OutChunk>>().swap(spare_chunks_);
  }

 private:
  std::vector<base::ByteBuffer> spare_;
  std::vector<std::vector<OutChunk>> spare_chunks_;
};

class OutQueue {
 public:
  static constexpr int kIovMax = 8;

  // Without a pool, buffers are allocated per chunk and freed once sent.
  explicit OutQueue(BufferPool* pool = nullptr) : pool_(pool) {}
  void set_pool(BufferPool* pool) { pool_ = pool; }
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;

  // The owned chunk at the back, open for appending.
  base::ByteBuffer& pending();
  // Queues `len` bytes at `data`, owned by `owner`, without copying them.
  void append_shared(cache::EntryRef owner, const char* data, size_t len);

  // Queued bytes over all chunks (a handful of chunks: the loop is short).
  size_t size() const;
  // True when `bytes` or more are queued, or more chunks than a send takes several times
  // over (small answers queued one after another); bounded work either way.
  bool backed_up(size_t bytes) const;
  bool empty() const { return size() == 0; }
  // Bytes ever queued (sent + queued now): the access log's bytes out, by difference.
  uint64_t queued_total() const { return sent_total_ + size(); }
  bool sending() const { return sending_; }
  // The message for the next send (and marks a send outstanding); null when a send is
  // already outstanding or there is nothing to send. Pass it to prep_send at once: a
  // message of one buffer is the reactor thread's scratch, valid until the next call on any
  // queue (prep_send copies its address and length into the SQE; nothing reads it later).
  const msghdr* next_send();
  void on_sent(size_t bytes);
  // Drops everything queued and gives memory back: buffers to the pool, the chunk list to
  // the allocator (not while sending).
  void release();

 private:
  using Chunk = OutChunk;
  Chunk& new_chunk();
  Chunk& open_owned_chunk();
  void recycle(Chunk& chunk);

  // Front = oldest. A vector: a deque allocates even when empty, and the list stays short
  // (backed_up() stops producers at a few dozen chunks).
  std::vector<Chunk> chunks_;
  BufferPool* pool_ = nullptr;
  bool sending_ = false;
  uint64_t sent_total_ = 0;
  // The message of the outstanding sendmsg (two buffers or more); allocated on the first
  // one and freed by release(), so an idle connection does not carry it (a sixth of an idle
  // client's memory).
  struct SendMsg {
    iovec iov[kIovMax];
    msghdr msg;
  };
  std::unique_ptr<SendMsg> send_;
};

// One socket send for what next_send() returned: a plain send when it is one buffer (the
// common case: cheaper in the kernel than sendmsg's iovec import), sendmsg otherwise.
void prep_send(io_uring_sqe* sqe, int fd, const msghdr* msg);

}  // namespace ringmaster::proxy
