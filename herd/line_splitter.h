// split_lines: finds the complete command lines in a run of received bytes, for client and peer
// sessions alike. A line ends in "\n"; one "\r" before it is part of the ending. Lines longer than
// the limit are reported instead of buffered. Pure; no state.
#pragma once

#include <cstring>
#include <string_view>

namespace herd {

enum class LineStop {
  kNeedMore,  // the remaining bytes are an unterminated line: wait for more
  kStopped,   // on_line asked to stop
  kOversize,  // a line (terminated or not) is longer than max_line; its first max_line bytes are given
};

// Calls on_line(line) for each complete line at the front of `data`, without its ending, until the
// bytes run out, on_line returns false, or a line exceeds `max_line`. Sets *consumed to the bytes of
// whole lines handled (a stopped-at line included: on_line handled it before asking to stop). With
// `at_eof`, a final unterminated line counts as complete.
template <typename OnLine>
LineStop split_lines(std::string_view data, size_t max_line, bool at_eof, OnLine&& on_line,
                     size_t* consumed, std::string_view* oversize) {
  size_t pos = 0;
  LineStop stop = LineStop::kNeedMore;
  while (pos < data.size()) {
    const void* nl = std::memchr(data.data() + pos, '\n', data.size() - pos);
    size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - data.data()) : data.size();
    size_t length = end - pos;
    std::string_view line = data.substr(pos, length);
    if (!line.empty() && line.back() == '\r' && nl) line.remove_suffix(1);
    // An unterminated line ending in "\r" may be a line of exactly max_line whose "\n" is still
    // on its way: its "\r" does not count against the limit yet (at the end of the stream no "\n"
    // can come, and the "\r" is part of the line).
    size_t measured = line.size();
    if (!nl && !at_eof && measured > 0 && line.back() == '\r') --measured;
    if (measured > max_line) {
      *oversize = data.substr(pos, max_line);
      stop = LineStop::kOversize;
      pos = data.size();
      break;
    }
    if (!nl && !at_eof) break;
    pos = nl ? end + 1 : end;
    if (!on_line(line)) {
      stop = LineStop::kStopped;
      break;
    }
  }
  *consumed = pos;
  return stop;
}

}  // namespace herd
