// Herd reply framing and checking (header-only, so unit tests can use it without the tool):
// cut one reply out of a connection's input (a line for IAMAT and "? " errors; for WHATSAT the
// first line then everything up to and including the first "\n\n"), and judge it against the
// request it answers, per SPEC.md.
#pragma once

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tools/load/error_kind.h"
#include "tools/load/json_check.h"

namespace herd_load {

// A reply longer than this that has not ended is an error (the server must be babbling).
constexpr size_t kMaxReplyBytes = 4 * 1024 * 1024;

enum class Frame { kIncomplete, kComplete, kOversize };

// One "\n"-terminated line; *len includes the newline.
inline Frame frame_line(std::string_view buf, size_t* len) {
  size_t nl = buf.find('\n');
  if (nl == std::string_view::npos) return buf.size() > kMaxReplyBytes ? Frame::kOversize : Frame::kIncomplete;
  *len = nl + 1;
  return Frame::kComplete;
}

// The offset of the first "\n\n" in s at or after `from`, or npos. A WHATSAT reply has a newline
// every few dozen bytes, so a search by memchr stops at each one; this compares 16 bytes at a time
// against '\n' at offsets i and i + 1 and ANDs the two masks.
inline size_t find_blank_line(std::string_view s, size_t from) {
  size_t i = from;
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n');
  for (; i + 17 <= s.size(); i += 16) {
    const auto here = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i)), nl));
    const auto next = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i + 1)), nl));
    if (const unsigned pairs = static_cast<unsigned>(here & next)) return i + static_cast<size_t>(__builtin_ctz(pairs));
  }
#endif
  for (; i + 1 < s.size(); ++i) {
    if (s[i] == '\n' && s[i + 1] == '\n') return i;
  }
  return std::string_view::npos;
}

// A WHATSAT reply: a "? " line alone, else the first line and everything up to and including
// the first "\n\n" (searched from the first line's own newline, so an empty body still frames).
// *scanned carries the search across calls while the reply is incomplete: the caller keeps it per
// connection, starting at 0, and sets it back to 0 after each complete frame (a 10 KiB reply that
// comes in several reads is then searched once, not once per read).
inline Frame frame_whatsat(std::string_view buf, size_t* len, size_t* scanned = nullptr) {
  size_t nl = buf.find('\n');
  if (nl == std::string_view::npos) return buf.size() > kMaxReplyBytes ? Frame::kOversize : Frame::kIncomplete;
  if (buf.substr(0, 2) == "? ") {
    *len = nl + 1;
    return Frame::kComplete;
  }
  size_t end = find_blank_line(buf, scanned ? std::max(nl, *scanned) : nl);
  if (end == std::string_view::npos) {
    // The last byte may be the first half of the "\n\n" still to come.
    if (scanned) *scanned = buf.size() - 1;
    return buf.size() > kMaxReplyBytes ? Frame::kOversize : Frame::kIncomplete;
  }
  *len = end + 2;
  return Frame::kComplete;
}

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Digits from s[*i]; returns how many.
inline size_t skip_digits(std::string_view s, size_t* i) {
  size_t start = *i;
  while (*i < s.size() && is_digit(s[*i])) ++*i;
  return *i - start;
}

// [+-]D+.D{9}
inline bool valid_time_diff(std::string_view s) {
  if (s.empty() || (s[0] != '+' && s[0] != '-')) return false;
  size_t i = 1;
  if (skip_digits(s, &i) == 0 || i >= s.size() || s[i] != '.') return false;
  ++i;
  return skip_digits(s, &i) == 9 && i == s.size();
}

// One signed decimal [+-]D+.D+ starting at *i.
inline bool skip_signed_decimal(std::string_view s, size_t* i) {
  if (*i >= s.size() || (s[*i] != '+' && s[*i] != '-')) return false;
  ++*i;
  if (skip_digits(s, i) == 0 || *i >= s.size() || s[*i] != '.') return false;
  ++*i;
  return skip_digits(s, i) > 0;
}

// ISO 6709 [+-]D+.D+[+-]D+.D+ (shape only; the servers check ranges).
inline bool valid_location(std::string_view s) {
  size_t i = 0;
  return skip_signed_decimal(s, &i) && skip_signed_decimal(s, &i) && i == s.size();
}

// seconds[.fraction], digits only.
inline bool valid_client_time(std::string_view s) {
  size_t i = 0;
  if (skip_digits(s, &i) == 0) return false;
  if (i == s.size()) return true;
  if (s[i] != '.') return false;
  ++i;
  return skip_digits(s, &i) > 0 && i == s.size();
}

// Compares two valid client times numerically: <0, 0, >0.
inline int compare_client_times(std::string_view a, std::string_view b) {
  auto split = [](std::string_view t, std::string_view* whole, std::string_view* frac) {
    size_t dot = t.find('.');
    *whole = t.substr(0, dot);
    *frac = dot == std::string_view::npos ? std::string_view() : t.substr(dot + 1);
    while (whole->size() > 1 && (*whole)[0] == '0') whole->remove_prefix(1);
  };
  std::string_view aw, af, bw, bf;
  split(a, &aw, &af);
  split(b, &bw, &bf);
  if (aw.size() != bw.size()) return aw.size() < bw.size() ? -1 : 1;
  if (int c = aw.compare(bw); c != 0) return c < 0 ? -1 : 1;
  size_t n = std::max(af.size(), bf.size());
  for (size_t i = 0; i < n; ++i) {
    char x = i < af.size() ? af[i] : '0';
    char y = i < bf.size() ? bf[i] : '0';
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

// The fields of "AT <server> <diff> <id> <loc> <time>" (single spaces, nothing else).
struct AtLine {
  std::string_view server, diff, id, location, time;
};

inline bool parse_at_line(std::string_view line, AtLine* at) {
  if (line.substr(0, 3) != "AT ") return false;
  std::string_view rest = line.substr(3);
  std::string_view f[5];
  for (int i = 0; i < 5; ++i) {
    size_t sp = rest.find(' ');
    if (i < 4) {
      if (sp == std::string_view::npos) return false;
      f[i] = rest.substr(0, sp);
      rest = rest.substr(sp + 1);
    } else {
      if (sp != std::string_view::npos) return false;
      f[i] = rest;
    }
    if (f[i].empty()) return false;
  }
  for (char c : line)
    if (c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') return false;
  *at = {f[0], f[1], f[2], f[3], f[4]};
  return valid_time_diff(at->diff) && valid_location(at->location) && valid_client_time(at->time);
}

// Judges an IAMAT reply line (newline included or not) for the request (id, location, time).
// The exact echo is right; so is the stored record for the same id when it is newer (another
// request of ours overtook this one). expected_server, when not empty, must name the echoing
// server. *stale is set when the reply is such a newer record.
inline ErrorKind check_iamat_reply(std::string_view line, std::string_view id,
                                   std::string_view location, std::string_view time,
                                   std::string_view expected_server, bool* stale) {
  *stale = false;
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (line.substr(0, 2) == "? ") return ErrorKind::kInvalid;
  AtLine at;
  if (!parse_at_line(line, &at)) return ErrorKind::kMalformed;
  if (at.id != id) return ErrorKind::kMismatch;
  if (at.location == location && at.time == time) {
    if (!expected_server.empty() && at.server != expected_server) return ErrorKind::kWrongServer;
    return ErrorKind::kNone;
  }
  if (compare_client_times(at.time, time) > 0) {
    *stale = true;
    return ErrorKind::kNone;
  }
  return ErrorKind::kMismatch;
}

// What a good WHATSAT reply said, for the report.
struct WhatsatInfo {
  size_t results = 0;
  bool status_ok = false;  // "OK" or "ZERO_RESULTS"
  std::string status;
  std::string problem;     // why the reply is wrong, when it is
  bool remembered = false;  // its body was found byte for byte in a WhatsatMemo slot
};

// The WHATSAT bodies (everything after the AT line) a worker last found good, a slot per client
// (by index, modulo kSlots). Judging a body depends only on its bytes and the bound, so a body equal
// byte for byte to the one in its slot, for the same bound, is good with the same count and status:
// one compare instead of a parse. A generator asks about the same clients over and over and gets
// the same places back, and with large replies (bound 20) the parse was half of its CPU, which it
// takes from the server it measures on a shared machine. Bodies under kMinBytes are parsed every
// time: there the parse is cheap, and the memory the memo would read instead (a few MB for a
// thousand clients) is taken from the server's caches; measured at bound 5 (3.4 KB a reply on
// average), remembering them saved the generator 4% and cost the server as much.
// Memory: kSlots bodies at most.
class WhatsatMemo {
 public:
  static constexpr size_t kSlots = 1024;
  static constexpr size_t kMinBytes = 4096;
  struct Slot {
    std::string body;  // empty: nothing remembered yet
    size_t bound = 0;
    size_t results = 0;
    std::string status;
  };
  Slot* slot(size_t client) { return &slots_[client % kSlots]; }

 private:
  std::vector<Slot> slots_ = std::vector<Slot>(kSlots);
};

// Judges a framed WHATSAT reply (as cut by frame_whatsat) for a request about `id` with `bound`.
// The JSON is checked in one pass that builds and copies nothing (json_check.h), unless `memo` (the
// slot of the request's client) holds this very body, judged good for this bound; a good body is
// then remembered there.
inline ErrorKind check_whatsat_reply(std::string_view frame, std::string_view id, size_t bound,
                                     WhatsatInfo* info, WhatsatMemo::Slot* memo = nullptr) {
  if (frame.substr(0, 2) == "? ") return ErrorKind::kInvalid;
  size_t nl = frame.find('\n');
  if (nl == std::string_view::npos) return ErrorKind::kMalformed;
  AtLine at;
  if (!parse_at_line(frame.substr(0, nl), &at)) return ErrorKind::kMalformed;
  if (at.id != id) {
    info->problem = "AT line for another client";
    return ErrorKind::kMismatch;
  }
  std::string_view body = frame.substr(nl + 1);
  const std::string_view whole_body = body;
  auto good = [&](size_t results, std::string status) {
    info->results = results;
    info->status = std::move(status);
    info->status_ok = info->status == "OK" || info->status == "ZERO_RESULTS";
    return ErrorKind::kNone;
  };
  if (memo && !memo->body.empty() && memo->bound == bound && whole_body == memo->body) {
    info->remembered = true;
    return good(memo->results, memo->status);
  }
  // Must end in exactly "}\n\n", with no "\n\n" anywhere before.
  if (body.size() < 3 || body.substr(body.size() - 3) != "}\n\n") {
    info->problem = "does not end in }\\n\\n";
    return ErrorKind::kMalformed;
  }
  body.remove_suffix(2);
  if (find_blank_line(body, 0) != std::string_view::npos || body[0] == '\n') {
    info->problem = "blank line inside the reply";
    return ErrorKind::kMalformed;
  }
  JsonShape shape;
  if (!check_json_shape(body, &shape) || !shape.top_is_object) {
    info->problem = !shape.valid ? "JSON parse error at offset " + std::to_string(shape.error_offset)
                                 : "JSON is not an object";
    return ErrorKind::kBadJson;
  }
  if (shape.results != JsonShape::Seen::kPresent) {
    info->problem = "no \"results\" array";
    return ErrorKind::kBadResults;
  }
  if (shape.status != JsonShape::Seen::kPresent) {
    info->problem = "no \"status\" string";
    return ErrorKind::kBadResults;
  }
  if (shape.result_count > bound) {
    info->problem = std::to_string(shape.result_count) + " results, bound " + std::to_string(bound);
    return ErrorKind::kBadResults;
  }
  if (memo && whole_body.size() >= WhatsatMemo::kMinBytes) {
    memo->body.assign(whole_body);
    memo->bound = bound;
    memo->results = shape.result_count;
    memo->status = shape.status_text;
  }
  return good(shape.result_count, std::move(shape.status_text));
}

}  // namespace herd_load
