// base: the vocabulary every module shares — always-on assertions, byte buffers, addresses,
// clocks and logging. No threads live here; everything is usable from any thread unless a
// type says otherwise. Depends on nothing but libc.
#pragma once

#include <cstdio>
#include <cstdlib>

// A broken invariant is a bug, not an input error: stop loudly, in release builds too.
#define RM_CHECK(cond)                                                              \
  do {                                                                              \
    if (__builtin_expect(!(cond), 0)) {                                             \
      std::fprintf(stderr, "ringmaster: check failed: %s at %s:%d\n", #cond,        \
                   __FILE__, __LINE__);                                             \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
