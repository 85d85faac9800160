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
