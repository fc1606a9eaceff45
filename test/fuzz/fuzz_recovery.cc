// Fuzz harness: recovery of a data directory (herd/recovery.h) from damaged or hand-made files. The
// input is a flag byte, then the files, each after a "\n====\n" line: a snapshot first when bit 0
// is set, then up to three record logs (bits 1-2), each named after the first seq its header gives
// (or an invented one); bit 3 makes the checksums of the frames that chain from each file's start
// right, so the search reaches past them; bits 4-5 pick the backlog's size. The files go into a
// directory of this process under $TMPDIR.
// Properties: recover() either refuses, with a message that names a file of the directory, or
// accepts, and then: the history continues at a seq >= 1 (0 means "nothing" to the backlog); the
// backlog holds consecutive entries below that seq, within its size; the earlier runs are at most
// kMaxHistory, newest first, each a run id, so the SYNC line that carries them parses back to them
// at a neighbour; what it holds of each neighbour's history names a run id; and recovering the
// directory it left (a torn tail cut off, an empty log removed) again accepts with nothing more to
// repair and the same result.
// Dictionary: record_file.dict
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "herd/flood_log.h"
#include "herd/location_table.h"
#include "herd/recovery.h"
#include "herd/sync_state.h"
#include "protocol/fields.h"
#include "protocol/sync_line.h"
#include "test/fuzz/fuzz_check.h"
#include "test/fuzz/record_frames.h"

namespace {

void clear_directory();

// Made at the first input and removed at exit (held past the statics' destruction, for the atexit).
const std::string& directory() {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    auto* d = new std::string(std::string(tmp && *tmp ? tmp : "/tmp") + "/fuzz_recovery.XXXXXX");
    FUZZ_CHECK(::mkdtemp(d->data()) != nullptr);
    std::atexit([] {
      clear_directory();
      ::rmdir(directory().c_str());
    });
    return d;
  }();
  return *dir;
}

void clear_directory() {
  DIR* d = ::opendir(directory().c_str());
  FUZZ_CHECK(d != nullptr);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& n : names) ::unlink((directory() + "/" + n).c_str());
}

void write_file(const std::string& name, std::string_view bytes) {
  FILE* f = std::fopen((directory() + "/" + name).c_str(), "wb");
  FUZZ_CHECK(f != nullptr);
  FUZZ_CHECK(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
  FUZZ_CHECK(std::fclose(f) == 0);
}

using fuzz_frames::fix_checksums;
using fuzz_frames::get32;

// The first seq a record log's header frame names ("herd-log 1 server run first links"), if any.
bool header_first_seq(std::string_view file, uint64_t* first) {
  if (file.size() < 32) return false;
  const uint32_t len = get32(file, 0);
  if (len < 24 || len > file.size() - 8) return false;
  std::string_view f[6];
  if (protocol::split_fields(file.substr(32, len - 24), f, 6) != 6) return false;
  uint64_t v = 0;
  for (char c : f[4]) {
    if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *first = v;
  return !f[4].empty();
}

struct Result {
  bool ok;
  std::string error;
  herd::Recovered r;
  size_t clients;
};

Result run(const std::vector<std::string>& neighbours, size_t backlog_bytes) {
  Result out;
  herd::LocationTable table(SIZE_MAX, SIZE_MAX, herd::SipKey{1, 2});
  out.ok = herd::recover(directory(), "Goloman", neighbours, backlog_bytes, &table, &out.r, &out.error);
  out.clients = table.size();
  return out;
}

bool same_history(const std::vector<herd::SyncState::EarlierRun>& a, const std::vector<herd::SyncState::EarlierRun>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].run != b[i].run || a[i].last_seq != b[i].last_seq) return false;
  }
  return true;
}

void check_accepted(const herd::Recovered& r, size_t backlog_bytes) {
  FUZZ_CHECK(r.next_seq >= 1);
  // The backlog: consecutive entries from backlog_first_seq, below next_seq, within its size.
  size_t bytes = 0;
  uint64_t seq = r.backlog_first_seq;
  for (const std::string& raw : r.backlog) {
    std::string_view v = raw;
    herd::FloodLog::Entry e;
    FUZZ_CHECK(herd::FloodLog::next_entry(&v, &e) && v.empty());
    FUZZ_CHECK(e.seq == seq);
    FUZZ_CHECK(e.kind == herd::FloodLog::Kind::kRecord || e.kind == herd::FloodLog::Kind::kProgress);
    FUZZ_CHECK(e.seq < r.next_seq);
    ++seq;
    bytes += raw.size();
  }
  FUZZ_CHECK(bytes <= backlog_bytes);
  // The earlier runs: as a neighbour will read them in this server's SYNC line.
  FUZZ_CHECK(r.history.size() <= protocol::SyncLine::kMaxHistory);
  for (size_t i = 0; i < r.history.size(); ++i) {
    FUZZ_CHECK(protocol::is_run_id(r.history[i].run));
    if (i > 0) FUZZ_CHECK(r.history[i - 1].last_seq >= r.history[i].last_seq);
  }
  herd::SyncState sync(herd::SyncState::new_run_id(), r.history);
  std::string line;
  sync.append_sync_line(line);
  const protocol::SyncLine s = protocol::parse_sync_line(std::string_view(line).substr(0, line.size() - 1));
  FUZZ_CHECK(s.kind == protocol::SyncKind::kSync);
  FUZZ_CHECK(s.history_size == r.history.size());
  for (size_t i = 0; i < s.history_size; ++i) {
    FUZZ_CHECK(s.history[i].run == r.history[i].run && s.history[i].seq == r.history[i].last_seq);
  }
  for (const auto& [peer, held] : r.held) {
    FUZZ_CHECK(!peer.empty() && protocol::is_run_id(held.run));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t backlog_bytes = size_t{64} << (2 * ((flags >> 4) & 3));
  const std::vector<std::string> neighbours = {"Hands", "Holiday"};

  // The files: the pieces after each separator.
  std::vector<std::string> pieces;
  constexpr std::string_view kSeparator = "\n====\n";
  size_t at = input.find(kSeparator);
  while (at != std::string_view::npos) {
    const size_t from = at + kSeparator.size();
    at = input.find(kSeparator, from);
    pieces.emplace_back(input.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
  }
  clear_directory();
  size_t next = 0;
  if ((flags & 1) && next < pieces.size()) {
    if (flags & 8) fix_checksums(&pieces[next]);
    write_file(herd::kSnapshotFile, pieces[next++]);
  }
  const size_t logs = (flags >> 1) & 3;
  for (size_t i = 0; i < logs && next < pieces.size(); ++i) {
    std::string& file = pieces[next++];
    if (flags & 8) fix_checksums(&file);
    uint64_t first = 0;
    if (!header_first_seq(file, &first)) first = 1 + 100 * i;
    write_file(herd::record_log_name(first), file);  // two logs with one name: the later one stays
  }

  const Result a = run(neighbours, backlog_bytes);
  if (!a.ok) {
    FUZZ_CHECK(!a.error.empty());
    FUZZ_CHECK(a.error.rfind(directory() + "/", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(a.error.empty());
  check_accepted(a.r, backlog_bytes);
  FUZZ_CHECK(a.clients <= a.r.records_from_snapshot + a.r.entries_from_logs);

  // What it left is whole: a second start repairs nothing and recovers the same.
  const Result b = run(neighbours, backlog_bytes);
  FUZZ_CHECK(b.ok);
  for (const std::string& note : b.r.notes) {
    FUZZ_CHECK(note.find("torn") == std::string::npos && note.find("removed") == std::string::npos);
  }
  FUZZ_CHECK(b.r.next_seq == a.r.next_seq);
  FUZZ_CHECK(same_history(b.r.history, a.r.history));
  FUZZ_CHECK(b.r.backlog == a.r.backlog && b.r.backlog_first_seq == a.r.backlog_first_seq);
  FUZZ_CHECK(b.r.held.size() == a.r.held.size());
  FUZZ_CHECK(b.clients == a.clients);
  FUZZ_CHECK(b.r.records_from_snapshot == a.r.records_from_snapshot);
  FUZZ_CHECK(b.r.entries_from_logs == a.r.entries_from_logs);
  return 0;
}
