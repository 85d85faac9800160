// ByteBuffer: a contiguous FIFO of bytes — append at the back, consume from the front.
// Used for everything the data plane writes to a socket. Owned by one connection on one
// reactor thread; not thread-safe. Its growth is bounded by the callers, who stop feeding it
// (backpressure) once size() passes their soft limit; capacity is kept across reuse so the
// steady state allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace ringmaster::base {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ~ByteBuffer() { std::free(data_); }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& other) noexcept { swap(other); }
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    swap(other);
    return *this;
  }

  const char* data() const { return data_ + begin_; }
  char* data() { return data_ + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::string_view view() const { return {data(), size()}; }

  void append(const char* bytes, size_t n) {
    if (n == 0) return;
    std::memcpy(reserve_back(n), bytes, n);
    end_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void append_char(char c) {
    *reserve_back(1) = c;
    end_ += 1;
  }
  // Appends the decimal form of v.
  void append_decimal(uint64_t v);
  // Appends the lowercase hexadecimal form of v (chunk sizes).
  void append_hex(uint64_t v);

  // Writable space of at least n bytes at the back; commit(k) makes k of them part of the data.
  char* reserve_back(size_t n);
  void commit(size_t n) { end_ += n; }
  // Bytes writable at the back without growing.
  size_t tail_room() const { return capacity_ - end_; }

  // Drops n bytes from the front.
  void consume(size_t n);
  void clear() { begin_ = end_ = 0; }
  // Gives the memory back (for connections going idle).
  void release();
  size_t capacity() const { return capacity_; }

 private:
  void swap(ByteBuffer& other) noexcept;

  char* data_ = nullptr;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t capacity_ = 0;
};

}  // namespace ringmaster::base
