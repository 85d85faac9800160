#include "ringmaster/base/byte_buffer.h"

#include <cstdlib>
#include <utility>

#include "ringmaster/base/check.h"

namespace ringmaster::base {

char* ByteBuffer::reserve_back(size_t n) {
  if (capacity_ - end_ >= n) return data_ + end_;
  size_t live = end_ - begin_;
  // Slide the live bytes to the front when that makes room: cheaper than growing, and a
  // FIFO that is drained as fast as it is filled never grows at all.
  if (begin_ > 0 && capacity_ - live >= n) {
    std::memmove(data_, data_ + begin_, live);
    begin_ = 0;
    end_ = live;
    return data_ + end_;
  }
  size_t want = capacity_ ? capacity_ * 2 : 4096;
  while (want < live + n) want *= 2;
  char* fresh = static_cast<char*>(std::malloc(want));
  RM_CHECK(fresh != nullptr);
  if (live) std::memcpy(fresh, data_ + begin_, live);
  std::free(data_);
  data_ = fresh;
  capacity_ = want;
  begin_ = 0;
  end_ = live;
  return data_ + end_;
}

void ByteBuffer::consume(size_t n) {
  RM_CHECK(n <= size());
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

void ByteBuffer::release() {
  std::free(data_);
  data_ = nullptr;
  begin_ = end_ = capacity_ = 0;
}

void ByteBuffer::append_decimal(uint64_t v) {
  char tmp[20];
  int i = 20;
  do {
    tmp[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  append(tmp + i, static_cast<size_t>(20 - i));
}

void ByteBuffer::append_hex(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char tmp[16];
  int i = 16;
  do {
    tmp[--i] = kDigits[v & 15];
    v >>= 4;
  } while (v);
  append(tmp + i, static_cast<size_t>(16 - i));
}

void ByteBuffer::swap(ByteBuffer& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(begin_, other.begin_);
  std::swap(end_, other.end_);
  std::swap(capacity_, other.capacity_);
}

}  // namespace ringmaster::base
