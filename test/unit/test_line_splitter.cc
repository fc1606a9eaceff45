// The line splitter shared by client and peer sessions (herd/line_splitter.h) at the limit's edge:
// a "\r" is part of a line's ending only when a "\n" follows it or may still follow it.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "herd/line_splitter.h"

namespace {

struct Split {
  herd::LineStop stop;
  std::vector<std::string> lines;
  size_t consumed = 0;
  std::string oversize;
};

Split split(std::string_view data, size_t max_line, bool at_eof) {
  Split s;
  std::string_view oversize;
  s.stop = herd::split_lines(
      data, max_line, at_eof,
      [&](std::string_view line) {
        s.lines.emplace_back(line);
        return true;
      },
      &s.consumed, &oversize);
  s.oversize = oversize;
  return s;
}

}  // namespace

TEST_SUITE("line splitter") {
  TEST_CASE("a line of exactly the limit is a line, with either ending") {
    const std::string line(8, 'x');
    for (const char* ending : {"\n", "\r\n"}) {
      const Split s = split(line + ending + "y", 8, false);
      CHECK(s.stop == herd::LineStop::kNeedMore);
      CHECK(s.lines == std::vector<std::string>{line});
      CHECK(s.consumed == line.size() + std::string_view(ending).size());
    }
  }

  TEST_CASE("a line of the limit whose \\r\\n is still on its way waits for it") {
    const Split s = split(std::string(8, 'x') + "\r", 8, false);
    CHECK(s.stop == herd::LineStop::kNeedMore);
    CHECK(s.lines.empty());
    CHECK(s.consumed == 0);
  }

  TEST_CASE("at the end of the stream a final \\r is part of the line, and counts") {
    // Nothing more can come: the unterminated line is the limit's bytes and a "\r", one too many.
    const std::string over = std::string(8, 'x') + "\r";
    const Split s = split(over, 8, true);
    CHECK(s.stop == herd::LineStop::kOversize);
    CHECK(s.oversize == std::string(8, 'x'));
    CHECK(s.lines.empty());
    // One byte shorter, it is an ordinary last line, its "\r" kept (only "\r\n" is an ending).
    const Split fits = split(std::string(7, 'x') + "\r", 8, true);
    CHECK(fits.stop == herd::LineStop::kNeedMore);
    CHECK(fits.lines == std::vector<std::string>{std::string(7, 'x') + "\r"});
    CHECK(fits.consumed == 8);
  }

  TEST_CASE("a line one byte over the limit is reported, terminated or not") {
    for (bool at_eof : {false, true}) {
      const Split s = split(std::string(9, 'x'), 8, at_eof);
      CHECK(s.stop == herd::LineStop::kOversize);
      CHECK(s.oversize == std::string(8, 'x'));
    }
    const Split s = split(std::string(9, 'x') + "\n", 8, false);
    CHECK(s.stop == herd::LineStop::kOversize);
  }
}
