// Fuzz harness: the line splitter shared by client and peer sessions (herd/line_splitter.h), fed the
// input in two pieces as a connection would be, with a handler that stops now and then as a session
// with full output does. Properties: it consumes only whole lines, never more than it was given; every
// line it reports is newline-free, within the limit and found at the front of the unconsumed bytes; an
// oversize report is exactly the first max_line bytes of the offending line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "herd/line_splitter.h"
#include "test/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first byte picks the limit (1..256), the second the split point and the EOF flag.
  const size_t max_line = 1 + data[0];
  const bool at_eof = data[1] & 1;
  const std::string input(reinterpret_cast<const char*>(data + 2), size - 2);
  const size_t split = (data[1] >> 1) % (input.size() + 1);

  std::string pending;  // what a connection keeps between reads
  size_t arrived = 0;   // pieces of the input offered so far
  size_t lines = 0;
  for (int round = 0; round < 100000; ++round) {
    const bool eof_now = at_eof && arrived == 2;
    size_t consumed = 0;
    size_t offset = 0;  // where the next reported line must start in `pending`
    std::string_view oversize;
    herd::LineStop stop = herd::split_lines(
        std::string_view(pending), max_line, eof_now,
        [&](std::string_view line) {
          FUZZ_CHECK(line.find('\n') == std::string_view::npos);
          FUZZ_CHECK(line.size() <= max_line);  // a last line's final "\r" at EOF counts too
          FUZZ_CHECK(std::string_view(pending).substr(offset, line.size()) == line);
          size_t end = pending.find('\n', offset);
          offset = end == std::string::npos ? pending.size() : end + 1;
          ++lines;
          return lines % 7 != 0;
        },
        &consumed, &oversize);
    FUZZ_CHECK(consumed <= pending.size());
    if (stop == herd::LineStop::kOversize) {
      FUZZ_CHECK(oversize.size() == max_line);
      FUZZ_CHECK(consumed == pending.size());
      return 0;  // the session answers and closes
    }
    FUZZ_CHECK(consumed == offset);
    if (consumed > 0 && !(eof_now && consumed == pending.size())) FUZZ_CHECK(pending[consumed - 1] == '\n');
    if (stop == herd::LineStop::kNeedMore) {
      if (eof_now) FUZZ_CHECK(consumed == pending.size());
      else FUZZ_CHECK(pending.find('\n', consumed) == std::string::npos);
    }
    pending.erase(0, consumed);
    if (stop == herd::LineStop::kStopped) continue;  // offered again before new bytes arrive
    if (arrived == 2) return 0;
    pending += arrived == 0 ? input.substr(0, split) : input.substr(split);
    ++arrived;
  }
  FUZZ_CHECK(false && "the splitter made no progress");
  return 0;
}
