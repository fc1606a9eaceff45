// FUZZ_CHECK: the fuzz harnesses' assertion. A failed property is reported on stderr and aborts,
// which libFuzzer records as a crash with the input that caused it. Harness-only; no state.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)
