// Reply formatting.
#include "protocol/reply.h"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace protocol {

namespace {

// Whether `next` starts one space past the end of `field`.
bool one_space_after(std::string_view field, std::string_view next) {
  return next.data() == field.data() + field.size() + 1 && next.data()[-1] == ' ';
}

// "AT <server> <diff> <client_id> <location> <time>": every IAMAT a server takes is answered with
// one, so the line is sized once and its pieces copied in; the last three in one piece when they
// stand one space apart where they come from, as a client nearly always sends them.
RecordForm append_at_fields(std::string& out, std::string_view server, std::string_view diff,
                            std::string_view client_id, std::string_view location, std::string_view time) {
  const size_t start = out.size();
  out.resize(start + 3 + server.size() + 1 + diff.size() + 1 + client_id.size() + 1 + location.size() +
             1 + time.size());
  char* const begin = out.data() + start;
  char* p = begin;
  const auto put = [&p](std::string_view piece, bool space_after) {
    char* const at = p;
    std::memcpy(p, piece.data(), piece.size());
    p += piece.size();
    if (space_after) *p++ = ' ';
    return at;
  };
  put("AT", true);
  const char* const server_at = put(server, true);
  const char* const diff_at = put(diff, true);
  const char* const id_at = p;
  if (one_space_after(client_id, location) && one_space_after(location, time)) {
    put(std::string_view(client_id.data(), static_cast<size_t>(time.data() + time.size() - client_id.data())), false);
  } else {
    put(client_id, true);
    put(location, true);
    put(time, false);
  }
  const char* const tail_at = id_at + client_id.size() + 1;
  return RecordForm(std::string_view(begin, static_cast<size_t>(p - begin)), std::string_view(server_at, server.size()),
                    std::string_view(diff_at, diff.size()), std::string_view(id_at, client_id.size()),
                    std::string_view(tail_at, static_cast<size_t>(p - tail_at)));
}

}  // namespace

RecordForm append_at_line(std::string& out, std::string_view server, Timestamp received,
                          const Iamat& cmd) {
  char diff[kMaxTimeDiffSize];
  return append_at_fields(out, server, std::string_view(diff, format_time_diff(diff, received, cmd.time)),
                          cmd.client_id, cmd.location_text, cmd.time_text);
}

RecordForm append_at_record(std::string& out, const At& at) {
  return append_at_fields(out, at.server, at.diff, at.client_id, at.location_text, at.time_text);
}

RecordForm at_record(std::string_view line, const At& at, std::string* scratch) {
  // Each field must begin one byte past the end of the one before it, the first at "AT ". (The
  // parser's fields are never empty and hold no whitespace, so these are the parts RecordForm
  // would find.)
  const char* p = line.data();
  if (line.size() > 3 && p[0] == 'A' && p[1] == 'T' && p[2] == ' ' && at.server.data() == p + 3 &&
      one_space_after(at.server, at.diff) && one_space_after(at.diff, at.client_id) &&
      one_space_after(at.client_id, at.location_text) && one_space_after(at.location_text, at.time_text)) {
    const char* end = at.time_text.data() + at.time_text.size();
    return RecordForm(std::string_view(p, static_cast<size_t>(end - p)), at.server, at.diff, at.client_id,
                      std::string_view(at.location_text.data(), static_cast<size_t>(end - at.location_text.data())));
  }
  scratch->clear();
  return append_at_record(*scratch, at);
}

std::string_view at_record_id(std::string_view record) {
  const char* p = record.data();
  const size_t n = record.size();
  size_t start = 0;  // just past the third space
#if defined(__SSE2__)
  if (n >= 32) {
    // The spaces of the first 32 bytes as bits: the third and fourth lowest are the ID's bounds.
    const __m128i sp = _mm_set1_epi8(' ');
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    uint32_t mask = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(lo, sp))) |
                    static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(hi, sp))) << 16;
    mask &= mask - 1;
    mask &= mask - 1;
    if (mask != 0) {
      start = static_cast<size_t>(__builtin_ctz(mask)) + 1;
      mask &= mask - 1;
      if (mask != 0) return record.substr(start, static_cast<size_t>(__builtin_ctz(mask)) - start);
      const size_t stop = record.find(' ', 32);
      return record.substr(start, stop == std::string_view::npos ? std::string_view::npos : stop - start);
    }
    // Fewer than three spaces in the first 32 bytes: the plain search below.
  }
#endif
  size_t spaces = 0;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != ' ') continue;
    if (++spaces == 3) {
      start = i + 1;
      break;
    }
  }
  if (spaces < 3) return {};
  const size_t stop = record.find(' ', start);
  return record.substr(start, stop == std::string_view::npos ? std::string_view::npos : stop - start);
}

std::optional<Timestamp> at_record_time(std::string_view record) {
  const size_t space = record.rfind(' ');
  if (space == std::string_view::npos) return std::nullopt;
  return parse_timestamp(record.substr(space + 1));
}

void append_invalid(std::string& out, std::string_view line) {
  out.append("? ");
  out.append(line);
  out.push_back('\n');
}

void append_places_reply(std::string& out, std::string_view at_line, std::string_view json) {
  out.append(at_line);
  out.push_back('\n');
  size_t begin = 0;
  size_t end = json.size();
  while (begin < end && json[begin] == '\n') ++begin;
  while (end > begin && json[end - 1] == '\n') --end;
  size_t run_start = begin;  // start of the current stretch copied verbatim
  for (size_t i = begin; i < end; ++i) {
    if (json[i] == '\n' && json[i - 1] == '\n') {
      out.append(json.substr(run_start, i - run_start));
      run_start = i + 1;
    }
  }
  out.append(json.substr(run_start, end - run_start));
  out.append("\n\n");
}

}  // namespace protocol
