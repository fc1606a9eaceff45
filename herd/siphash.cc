// SipHash implementation, written from the algorithm's description in the SipHash paper.
#include "herd/siphash.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "herd/unaligned.h"

namespace herd {
namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct State {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
};

}  // namespace

SipKey SipKey::random() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::perror("getrandom");
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
  return SipKey{load64(bytes), load64(bytes + 8)};
}

template <int c, int d>
uint64_t siphash(const SipKey& key, std::string_view data) {
  State s{key.k0 ^ 0x736f6d6570736575ull, key.k1 ^ 0x646f72616e646f6dull,
          key.k0 ^ 0x6c7967656e657261ull, key.k1 ^ 0x7465646279746573ull};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  const size_t whole = n & ~size_t{7};
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = load64(p + i);
    s.v3 ^= m;
    for (int r = 0; r < c; ++r) s.round();
    s.v0 ^= m;
  }
  // The last word: the remaining bytes, and the length's low byte in the top byte.
  const uint64_t last = load_short(p + whole, n - whole) | static_cast<uint64_t>(n & 0xff) << 56;
  s.v3 ^= last;
  for (int r = 0; r < c; ++r) s.round();
  s.v0 ^= last;
  s.v2 ^= 0xff;
  for (int r = 0; r < d; ++r) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

template uint64_t siphash<1, 3>(const SipKey&, std::string_view);
template uint64_t siphash<2, 4>(const SipKey&, std::string_view);

}  // namespace herd
