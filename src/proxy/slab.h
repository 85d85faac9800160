// Slab<T>: one reactor's objects of one type (its connections), packed in chunks of their
// own that are mapped from the kernel and unmapped once empty.
//
// Why not the heap: a burst allocates thousands of connections together with their
// transient request state (parsers, output buffers) of similar sizes, so the allocator puts
// them on the same pages; once the transient state is freed, every long-lived connection
// left on a page keeps the whole page resident (issue 13 measured 1-2 KB per burst client
// and megabytes after the clients went, pinned by the few pooled upstream connections).
// Here connections share pages only with connections, and a chunk that empties goes back
// to the kernel (one empty chunk is kept so that a single client coming and going does not
// map and unmap every time; release_empty() drops it too).
//
// Single-threaded (one reactor). Under AddressSanitizer objects come from new/delete, so
// that use after free is still caught (the slab would hide it); the memory tests that rely
// on the slab do not run there.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include "ringmaster/base/check.h"

#if defined(__SANITIZE_ADDRESS__)
#define RINGMASTER_SLAB_USES_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RINGMASTER_SLAB_USES_HEAP 1
#endif
#endif

namespace ringmaster::proxy {

template <typename T>
class Slab {
 public:
  // Chunk size and alignment: an object finds its chunk by masking its address.
  static constexpr size_t kChunkBytes = 64 * 1024;

  Slab() = default;
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  // Objects still alive (a reactor that did not drain) keep their chunks: never unmapped
  // under them.
  ~Slab() { release_empty(); }

  template <typename... Args>
  T* make(Args&&... args) {
    ++live_;
#ifdef RINGMASTER_SLAB_USES_HEAP
    return new T(std::forward<Args>(args)...);
#else
    Chunk* chunk = partial_.next != &partial_ ? partial_.next : fresh_chunk();
    void* slot;
    if (chunk->free_list != nullptr) {
      slot = chunk->free_list;
      chunk->free_list = *static_cast<void**>(slot);
    } else {
      slot = chunk->slot(chunk->untouched++);
    }
    if (++chunk->live == kSlotsPerChunk) unlink(chunk);  // full: no longer a candidate
    return new (slot) T(std::forward<Args>(args)...);
#endif
  }

  void destroy(T* object) {
    RM_CHECK(live_ > 0);
    --live_;
#ifdef RINGMASTER_SLAB_USES_HEAP
    delete object;
#else
    object->~T();
    Chunk* chunk = chunk_of(object);
    *reinterpret_cast<void**>(object) = chunk->free_list;
    chunk->free_list = object;
    if (chunk->live-- == kSlotsPerChunk) link_back(chunk);  // was full: has room again
    if (chunk->live > 0) return;
    unlink(chunk);
    if (empty_ != nullptr) {
      unmap(chunk);
      return;
    }
    empty_ = chunk;  // kept for the next object
#endif
  }

  // Unmaps the kept empty chunk (after a burst, with nothing in use).
  void release_empty() {
    if (empty_ == nullptr) return;
    unmap(empty_);
    empty_ = nullptr;
  }

  size_t live() const { return live_; }
  size_t chunks() const { return chunks_; }
  static constexpr size_t slots_per_chunk() { return kSlotsPerChunk; }

 private:
  struct Chunk {
    Chunk* prev;
    Chunk* next;
    void* free_list;     // freed slots, most recent first
    uint32_t live;       // objects in this chunk
    uint32_t untouched;  // slots [untouched, kSlotsPerChunk) were never used (pages not faulted)
    char* slot(uint32_t i) { return reinterpret_cast<char*>(this) + kFirstSlot + static_cast<size_t>(i) * kSlotBytes; }
  };
  static constexpr size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
  static constexpr size_t kSlotAlign = alignof(T) > alignof(void*) ? alignof(T) : alignof(void*);
  static constexpr size_t kSlotBytes = round_up(sizeof(T) > sizeof(void*) ? sizeof(T) : sizeof(void*), kSlotAlign);
  static constexpr size_t kFirstSlot = round_up(sizeof(Chunk), kSlotAlign);
  static constexpr uint32_t kSlotsPerChunk = static_cast<uint32_t>((kChunkBytes - kFirstSlot) / kSlotBytes);
  static_assert(kSlotsPerChunk >= 8, "a slab chunk holds too few objects");
  static_assert(kSlotAlign <= 4096, "over-aligned type");

  static Chunk* chunk_of(T* object) {
    return reinterpret_cast<Chunk*>(reinterpret_cast<uintptr_t>(object) & ~(uintptr_t{kChunkBytes} - 1));
  }

  Chunk* fresh_chunk() {
    Chunk* chunk = empty_;
    empty_ = nullptr;
    if (chunk == nullptr) {
      // mmap aligns to pages only: map twice the size and trim to an aligned chunk.
      void* p = mmap(nullptr, 2 * kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      RM_CHECK(p != MAP_FAILED);
      uintptr_t start = reinterpret_cast<uintptr_t>(p);
      uintptr_t aligned = (start + kChunkBytes - 1) & ~(uintptr_t{kChunkBytes} - 1);
      if (aligned > start) munmap(p, aligned - start);
      uintptr_t end = start + 2 * kChunkBytes;
      if (end > aligned + kChunkBytes) munmap(reinterpret_cast<void*>(aligned + kChunkBytes), end - aligned - kChunkBytes);
      chunk = reinterpret_cast<Chunk*>(aligned);
      chunk->untouched = 0;
      chunk->free_list = nullptr;
      chunk->live = 0;
      ++chunks_;
    }
    link_back(chunk);
    return chunk;
  }

  void unmap(Chunk* chunk) {
    munmap(chunk, kChunkBytes);
    --chunks_;
  }

  // Chunks with room, oldest first: new objects fill the oldest chunks, so that the newer
  // ones empty out and go back to the kernel.
  void link_back(Chunk* chunk) {
    chunk->prev = partial_.prev;
    chunk->next = &partial_;
    partial_.prev->next = chunk;
    partial_.prev = chunk;
  }
  void unlink(Chunk* chunk) {
    if (chunk->next == nullptr) return;
    chunk->prev->next = chunk->next;
    chunk->next->prev = chunk->prev;
    chunk->prev = chunk->next = nullptr;
  }

  Chunk partial_{&partial_, &partial_, nullptr, 0, 0};
  Chunk* empty_ = nullptr;
  size_t live_ = 0;
  size_t chunks_ = 0;
};

}  // namespace ringmaster::proxy

namespace ringmaster::proxy {

// Fixed-size I/O buffers (an upstream connection's read buffer while it has a request in
// flight), mapped a region of `per_region` buffers at a time instead of one mapping each:
// under connection churn a new connection takes a free buffer, and a region is mapped once
// per `per_region` connections open at the same time (issue 13 measured 8,776 mmaps in 4 s
// with one mapping per buffer). Free buffers are handed out lowest region first, so that the
// last regions empty out; trim() gives the pages of free buffers back (MADV_DONTNEED) beyond
// the `warm` most recently freed, and unmaps regions with none in use. Single-threaded.
class BufferSlab {
 public:
  BufferSlab(size_t buffer_bytes, size_t per_region) : buffer_bytes_(buffer_bytes), per_region_(per_region) {
    RM_CHECK(buffer_bytes % 4096 == 0 && per_region > 0);
  }
  BufferSlab(const BufferSlab&) = delete;
  BufferSlab& operator=(const BufferSlab&) = delete;
  ~BufferSlab() {
    for (Region& r : regions_) {
      if (r.in_use == 0) munmap(r.base, region_bytes());  // in use: never unmapped under a user
    }
  }

  char* take() {
    for (Region& r : regions_) {
      if (r.free.empty()) continue;
      Free f = r.free.back();
      r.free.pop_back();
      ++r.in_use;
      ++in_use_;
      if (f.warm) --warm_free_;
      return f.buffer;
    }
    void* p = mmap(nullptr, region_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    RM_CHECK(p != MAP_FAILED);
    ++maps_;
    Region& r = regions_.emplace_back();
    r.base = static_cast<char*>(p);
    // Untouched buffers are cold: their pages are not resident until used.
    for (size_t i = per_region_; i-- > 1;) r.free.push_back(Free{r.base + i * buffer_bytes_, false});
    r.in_use = 1;
    ++in_use_;
    return r.base;
  }

  void give(char* buffer) {
    Region& r = region_of(buffer);
    --r.in_use;
    --in_use_;
    r.free.push_back(Free{buffer, true});
    ++warm_free_;
  }

  // Gives back the pages of free buffers beyond the `warm` kept resident and unmaps regions
  // with no buffer in use; returns the bytes given back.
  size_t trim(size_t warm) {
    size_t released = 0;
    for (size_t i = regions_.size(); i-- > 0;) {
      Region& r = regions_[i];
      if (r.in_use == 0 && warm_free_ - warm_count(r) >= warm) {
        warm_free_ -= warm_count(r);
        released += warm_count(r) * buffer_bytes_;
        munmap(r.base, region_bytes());
        regions_.erase(regions_.begin() + static_cast<std::ptrdiff_t>(i));
        if (regions_.empty()) std::vector<Region>().swap(regions_);  // nor its list's memory
        continue;
      }
      for (Free& f : r.free) {
        if (warm_free_ <= warm) break;
        if (!f.warm) continue;
        madvise(f.buffer, buffer_bytes_, MADV_DONTNEED);
        f.warm = false;
        --warm_free_;
        released += buffer_bytes_;
      }
    }
    return released;
  }

  size_t regions() const { return regions_.size(); }
  uint64_t maps() const { return maps_; }  // regions ever mapped
  size_t warm_free() const { return warm_free_; }
  size_t in_use() const { return in_use_; }

 private:
  struct Free {
    char* buffer;
    bool warm;  // touched since mapped or last given back to the kernel
  };
  struct Region {
    char* base = nullptr;
    size_t in_use = 0;
    std::vector<Free> free;  // most recently freed last (taken first)
  };
  size_t region_bytes() const { return buffer_bytes_ * per_region_; }
  size_t warm_count(const Region& r) const {
    size_t n = 0;
    for (const Free& f : r.free) n += f.warm ? 1 : 0;
    return n;
  }
  Region& region_of(char* buffer) {
    for (Region& r : regions_) {
      if (buffer >= r.base && buffer < r.base + region_bytes()) return r;
    }
    RM_CHECK(false && "buffer from another slab");
    __builtin_unreachable();
  }

  size_t buffer_bytes_;
  size_t per_region_;
  std::vector<Region> regions_;
  size_t warm_free_ = 0;
  size_t in_use_ = 0;
  uint64_t maps_ = 0;
};

}  // namespace ringmaster::proxy
