// SipHash: the paper's SipHash-2-4 test vectors (which check the shared round code), SipHash-1-3's
// own behaviour, and random keys.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "herd/siphash.h"

namespace {
herd::SipKey paper_key() {
  // Key bytes 00 01 02 ... 0f, read little-endian.
  return herd::SipKey{0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
}
std::string counting(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(i));
  return s;
}
}  // namespace

TEST_SUITE("siphash") {
  TEST_CASE("SipHash-2-4 matches the paper's test vectors") {
    // Appendix A of the paper: key 00..0f, message 00..0e.
    CHECK(herd::siphash24(paper_key(), counting(15)) == 0xa129ca6149be45e5ull);
    // The reference implementation's vectors for the messages 00..(n-1), n from 0 to 16: every length
    // of the last word's tail, with and without a whole word before it.
    const uint64_t reference[17] = {
        0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull, 0x0d6c8009d9a94f5aull, 0x85676696d7fb7e2dull,
        0xcf2794e0277187b7ull, 0x18765564cd99a68dull, 0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull,
        0x93f5f5799a932462ull, 0x9e0082df0ba9e4b0ull, 0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
        0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull, 0xf723ca908e7af2eeull, 0xa129ca6149be45e5ull,
        0x3f2acc7f57c29bdbull};
    for (size_t n = 0; n <= 16; ++n) {
      CAPTURE(n);
      CHECK(herd::siphash24(paper_key(), counting(n)) == reference[n]);
    }
  }

  TEST_CASE("SipHash-1-3 depends on every byte, the length and the key") {
    herd::SipKey k = paper_key();
    std::set<uint64_t> seen;
    for (size_t n = 0; n < 40; ++n) seen.insert(herd::siphash13(k, counting(n)));
    CHECK(seen.size() == 40);
    std::string a = counting(23);
    for (size_t i = 0; i < a.size(); ++i) {
      std::string b = a;
      b[i] ^= 1;
      CHECK(herd::siphash13(k, b) != herd::siphash13(k, a));
    }
    CHECK(herd::siphash13(k, std::string(9, '\0')) != herd::siphash13(k, std::string(10, '\0')));
    herd::SipKey other{k.k0, k.k1 ^ 1};
    CHECK(herd::siphash13(other, a) != herd::siphash13(k, a));
    CHECK(herd::siphash13(k, a) != herd::siphash24(k, a));
  }

  TEST_CASE("random keys differ") {
    herd::SipKey a = herd::SipKey::random(), b = herd::SipKey::random();
    CHECK((a.k0 != b.k0 || a.k1 != b.k1));
  }
}
