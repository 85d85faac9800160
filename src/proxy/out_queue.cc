#include "out_queue.h"

#include <algorithm>

#include "ringmaster/base/check.h"

namespace ringmaster::proxy {

base::ByteBuffer BufferPool::take() {
  if (spare_.empty()) return base::ByteBuffer();
  base::ByteBuffer b = std::move(spare_.back());
  spare_.pop_back();
  return b;
}

void BufferPool::give(base::ByteBuffer&& buffer) {
  if (buffer.capacity() == 0) return;
  if (spare_.size() >= kSpareMax || buffer.capacity() > kKeptBytesMax) {
    buffer.release();
    return;
  }
  buffer.clear();
  spare_.push_back(std::move(buffer));
}

std::vector<OutChunk> BufferPool::take_chunks() {
  if (spare_chunks_.empty()) return {};
  std::vector<OutChunk> chunks = std::move(spare_chunks_.back());
  spare_chunks_.pop_back();
  return chunks;
}

void BufferPool::give_chunks(std::vector<OutChunk>&& chunks) {
  if (chunks.capacity() == 0 || chunks.capacity() > kKeptChunksMax || spare_chunks_.size() >= kSpareMax) {
    std::vector<OutChunk>().swap(chunks);
    return;
  }
  chunks.clear();
  spare_chunks_.push_back(std::move(chunks));
}

OutQueue::Chunk& OutQueue::new_chunk() {
  if (chunks_.capacity() == 0 && pool_ != nullptr) chunks_ = pool_->take_chunks();
  return chunks_.emplace_back();
}

OutQueue::Chunk& OutQueue::open_owned_chunk() {
  if (!chunks_.empty() && !chunks_.back().is_shared && !chunks_.back().sealed) return chunks_.back();
  Chunk& c = new_chunk();
  if (pool_ != nullptr) c.owned = pool_->take();
  return c;
}

void OutQueue::recycle(Chunk& chunk) {
  if (chunk.is_shared) return;
  if (pool_ != nullptr) {
    pool_->give(std::move(chunk.owned));
  } else {
    chunk.owned.release();
  }
}

base::ByteBuffer& OutQueue::pending() { return open_owned_chunk().owned; }

void OutQueue::append_shared(cache::EntryRef owner, const char* data, size_t len) {
  if (len == 0) return;
  Chunk& c = new_chunk();
  c.shared = std::move(owner);
  c.shared_data = data;
  c.shared_len = len;
  c.is_shared = true;
}

size_t OutQueue::size() const {
  size_t total = 0;
  for (const Chunk& c : chunks_) total += c.length();
  return total;
}

bool OutQueue::backed_up(size_t bytes) const {
  if (chunks_.size() > 8 * static_cast<size_t>(kIovMax)) return true;
  return size() >= bytes;
}

const msghdr* OutQueue::next_send() {
  if (sending_ || chunks_.empty()) return nullptr;
  iovec iov[kIovMax];
  int n = 0;
  for (Chunk& c : chunks_) {
    if (n == kIovMax) break;
    // Sealed even when empty: on_sent then walks sealed chunks only, in order.
    c.sealed = true;
    size_t len = c.length();
    if (len == 0) continue;
    iov[n].iov_base = const_cast<char*>(c.is_shared ? c.shared_data : c.owned.data());
    iov[n].iov_len = len;
    ++n;
  }
  if (n == 0) return nullptr;
  sending_ = true;
  // One buffer (every small cache hit, most answers): prep_send makes it a plain send, so
  // the message needs no memory of the queue's own, nor a malloc and free per answer.
  thread_local SendMsg single;
  // Several: sendmsg reads the message when the ring is submitted, later. Allocated only
  // then: an idle connection that was just released (arm_between_requests) and is kicked
  // again must not get it back.
  if (n > 1 && !send_) send_ = std::make_unique<SendMsg>();
  SendMsg& m = n == 1 ? single : *send_;
  std::copy(iov, iov + n, m.iov);
  m.msg = msghdr{};
  m.msg.msg_iov = m.iov;
  m.msg.msg_iovlen = static_cast<size_t>(n);
  return &m.msg;
}

void OutQueue::on_sent(size_t bytes) {
  RM_CHECK(sending_);
  sending_ = false;
  sent_total_ += bytes;
  while (!chunks_.empty()) {
    Chunk& c = chunks_.front();
    if (!c.sealed) {
      // Bytes queued after the send was built: they go out next time.
      RM_CHECK(bytes == 0);
      return;
    }
    size_t len = c.length();
    if (bytes < len) {
      if (c.is_shared) {
        c.shared_data += bytes;
        c.shared_len -= bytes;
      } else {
        c.owned.consume(bytes);
      }
      // Partly sent: the rest goes out next, still from the same memory.
      return;
    }
    bytes -= len;
    recycle(c);
    chunks_.erase(chunks_.begin());
  }
}

void OutQueue::release() {
  if (sending_) return;
  for (Chunk& c : chunks_) recycle(c);
  if (pool_ != nullptr) {
    pool_->give_chunks(std::move(chunks_));
    chunks_ = std::vector<Chunk>();
  } else {
    std::vector<Chunk>().swap(chunks_);
  }
  send_.reset();
}

void prep_send(io_uring_sqe* sqe, int fd, const msghdr* msg) {
  if (msg->msg_iovlen == 1) {
    io_uring_prep_send(sqe, fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len, MSG_NOSIGNAL);
  } else {
    io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
  }
}

}  // namespace ringmaster::proxy
