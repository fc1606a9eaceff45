// herd/unaligned.h: the short copies and loads of the hot paths read and write exactly their bytes.
// Each source sits at the very end of a page followed by an unmapped one, so a read past it faults.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "herd/unaligned.h"

namespace {

// Two pages, the second unmapped: end() is the first byte that cannot be read.
class PageEnd {
 public:
  PageEnd() {
    page_ = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    map_ = static_cast<char*>(::mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    REQUIRE(map_ != MAP_FAILED);
    REQUIRE(::mprotect(map_ + page_, page_, PROT_NONE) == 0);
  }
  ~PageEnd() { ::munmap(map_, 2 * page_); }
  PageEnd(const PageEnd&) = delete;
  PageEnd& operator=(const PageEnd&) = delete;
  char* end() const { return map_ + page_; }

 private:
  size_t page_ = 0;
  char* map_ = nullptr;
};

}  // namespace

TEST_SUITE("unaligned") {
  TEST_CASE("copy_short copies exactly n bytes, reading and writing none around them") {
    PageEnd mem;
    for (size_t n = 0; n < 16; ++n) {
      char* from = mem.end() - n;
      for (size_t k = 0; k < n; ++k) from[k] = static_cast<char>('a' + k);
      char to[32];
      std::memset(to, '#', sizeof to);
      herd::copy_short(to + 8, from, n);
      CHECK(std::string(to, 8) == std::string(8, '#'));
      CHECK(std::string(to + 8, n) == std::string(from, n));
      CHECK(std::string(to + 8 + n, 24 - n) == std::string(24 - n, '#'));
    }
  }

  TEST_CASE("load_short reads exactly n bytes, little-endian, the bytes above them zero") {
    PageEnd mem;
    for (size_t n = 0; n <= 8; ++n) {
      CAPTURE(n);
      unsigned char* from = reinterpret_cast<unsigned char*>(mem.end() - n);
      // Distinct bytes, with the top bit set in some, so that a byte in the wrong lane, a lost one or
      // a sign extension shows.
      uint64_t expected = 0;
      for (size_t k = 0; k < n; ++k) {
        from[k] = static_cast<unsigned char>(0x81 + 0x13 * k);
        expected |= uint64_t{from[k]} << (8 * k);
      }
      CHECK(herd::load_short(from, n) == expected);
    }
  }
}
