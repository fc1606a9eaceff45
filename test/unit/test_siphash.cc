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
    // The reference implementation's vectors for the empty message and for 00..07 (one whole word).
    CHECK(herd::siphash24(paper_key(), counting(0)) == 0x726fdb47dd0e0e31ull);
    CHECK(herd::siphash24(paper_key(), counting(8)) == 0x93f5f5799a932462ull);
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
