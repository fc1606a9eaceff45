// XorShift: a seeded xorshift64 sequence, so that the random cases of a test are the same on every run.
#pragma once

#include <cstdint>

struct XorShift {
  uint64_t x;
  uint64_t operator()() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};
