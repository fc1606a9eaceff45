// SipHash (Aumasson and Bernstein): a keyed 64-bit hash of a byte string. Without the key, nobody
// can predict where an input lands, so crafted client IDs cannot pile into one bucket of the
// location table. SipKey::random() draws a key from the kernel (getrandom). Pure functions; any
// thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace herd {

struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  // 128 bits from getrandom(2); aborts the process if the kernel cannot give them (it always can
  // on Linux once booted).
  static SipKey random();
};

// SipHash with `c` compression rounds per 8-byte word and `d` finalisation rounds. The table uses
// SipHash-1-3 (as Rust's and Python's hash tables do); SipHash-2-4 is the paper's reference
// parameterisation, whose published test vectors check this implementation.
template <int c, int d>
uint64_t siphash(const SipKey& key, std::string_view data);

inline uint64_t siphash13(const SipKey& key, std::string_view data) { return siphash<1, 3>(key, data); }
inline uint64_t siphash24(const SipKey& key, std::string_view data) { return siphash<2, 4>(key, data); }

extern template uint64_t siphash<1, 3>(const SipKey&, std::string_view);
extern template uint64_t siphash<2, 4>(const SipKey&, std::string_view);

}  // namespace herd
