// Catch-up line parsing and formatting.
#include "protocol/sync_line.h"

#include <charconv>

#include "protocol/fields.h"

namespace protocol {
namespace {

bool parse_u64(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  for (unsigned char c : text) {
    if (!is_digit(c)) return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

void append_u64(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, static_cast<size_t>(end - buf));
}

}  // namespace

bool is_run_id(std::string_view run) {
  if (run.empty() || run.size() > kMaxRunLength) return false;
  for (unsigned char c : run) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!ok) return false;
  }
  return true;
}

SyncLine parse_sync_line(std::string_view line) {
  SyncLine out;
  // Most peer lines are AT records: tell them apart by the verb's first bytes before splitting.
  if (!may_be_sync_line(line)) return out;
  constexpr size_t kMaxFields = 2 + SyncLine::kMaxHistory;
  std::string_view f[kMaxFields];
  size_t n = split_fields(line, f, kMaxFields);
  if (n == 0) return out;
  const std::string_view verb = f[0];
  if (verb == "SYNC") {
    out.kind = SyncKind::kBad;
    if (n < 2 || n > kMaxFields || !is_run_id(f[1])) return out;
    out.run = f[1];
    for (size_t i = 2; i < n; ++i) {
      size_t colon = f[i].find(':');
      if (colon == std::string_view::npos) return out;
      RunHead h{f[i].substr(0, colon), 0};
      if (!is_run_id(h.run) || !parse_u64(f[i].substr(colon + 1), &h.seq)) return out;
      out.history[out.history_size++] = h;
    }
    out.kind = SyncKind::kSync;
  } else if (verb == "SYNC-FROM") {
    out.kind = SyncKind::kBad;
    if (n < 3 || n > 4 || !(f[1] == "-" || is_run_id(f[1])) || !parse_u64(f[2], &out.number)) return out;
    if (n == 4 && f[3] != "ALL") return out;
    out.run = f[1];
    out.everything = n == 4;
    out.kind = SyncKind::kSyncFrom;
  } else if (verb == "BULK" || verb == "MARK") {
    out.kind = SyncKind::kBad;
    if (n != 2 || !parse_u64(f[1], &out.number)) return out;
    out.kind = verb == "BULK" ? SyncKind::kBulk : SyncKind::kMark;
  }
  return out;
}

void append_sync(std::string& out, std::string_view run, const RunHead* history, size_t history_size) {
  out.append("SYNC ").append(run);
  for (size_t i = 0; i < history_size && i < SyncLine::kMaxHistory; ++i) {
    out.push_back(' ');
    out.append(history[i].run).push_back(':');
    append_u64(out, history[i].seq);
  }
  out.push_back('\n');
}

void append_sync_from(std::string& out, std::string_view run, uint64_t seq, bool everything) {
  out.append("SYNC-FROM ").append(run).push_back(' ');
  append_u64(out, seq);
  if (everything) out.append(" ALL");
  out.push_back('\n');
}

void append_bulk(std::string& out, uint64_t count) {
  out.append("BULK ");
  append_u64(out, count);
  out.push_back('\n');
}

void append_mark(std::string& out, uint64_t seq) {
  out.append("MARK ");
  append_u64(out, seq);
  out.push_back('\n');
}

}  // namespace protocol
