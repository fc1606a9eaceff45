// Recovery implementation.
#include "herd/recovery.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "herd/record_file.h"
#include "protocol/command.h"
#include "protocol/fields.h"
#include "protocol/reply.h"
#include "protocol/sync_line.h"

namespace herd {
namespace {

bool parse_u64(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out.empty() ? "-" : out;
}

// Offers the AT record at the front of `line` (a flood line, or a bare record) to the table.
bool load_record(std::string_view line, LocationTable* table, std::string* scratch) {
  protocol::Command cmd = protocol::parse_command(line);
  if (cmd.kind != protocol::CommandKind::kAt) return false;
  table->offer(cmd.at.client_id, cmd.at.time, protocol::at_record(line, cmd.at, scratch),
               LocationTable::Source::kPeer, nullptr);
  return true;
}

// "peer run seq"
bool parse_progress(std::string_view line, std::string* peer, SyncState::Held* held) {
  std::string_view f[3];
  if (protocol::split_fields(line, f, 3) != 3 || !protocol::is_run_id(f[1]) || !parse_u64(f[2], &held->seq)) {
    return false;
  }
  peer->assign(f[0]);
  held->run.assign(f[1]);
  return true;
}

struct LogFile {
  uint64_t first_seq;
  std::string path;
};

std::string at_offset(const RecordReader& r) {
  return r.path() + ": at offset " + std::to_string(r.offset());
}

}  // namespace

std::string record_log_name(uint64_t first_seq) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "records-%016llx.log", static_cast<unsigned long long>(first_seq));
  return buf;
}

std::string log_header_line(const std::string& server, const std::string& run, uint64_t first_seq,
                            const std::vector<std::string>& neighbours) {
  return "herd-log 1 " + server + " " + run + " " + std::to_string(first_seq) + " " + join(neighbours);
}

std::string snapshot_header_line(const std::string& server, const std::string& run, uint64_t log_start,
                                 const std::vector<SyncState::EarlierRun>& history) {
  std::string h;
  for (const auto& e : history) h += (h.empty() ? "" : ",") + e.run + ":" + std::to_string(e.last_seq);
  return "herd-snapshot 1 " + server + " " + run + " " + std::to_string(log_start) + " " + (h.empty() ? "-" : h);
}

bool recover(const std::string& dir, const std::string& server, const std::vector<std::string>& neighbours,
             size_t backlog_bytes, LocationTable* table, Recovered* out, std::string* error) {
  std::map<std::string, uint64_t> last_of_run;  // run -> the last seq of it held
  std::string scratch;
  uint64_t log_start = 1;
  uint64_t highest = 0;  // the highest seq known to have been used

  // A rewrite that did not finish.
  std::string tmp = dir + "/" + kSnapshotTmpFile;
  if (::unlink(tmp.c_str()) == 0) out->notes.push_back(tmp + ": an unfinished rewrite, removed");

  // The snapshot.
  std::string snap = dir + "/" + kSnapshotFile;
  struct stat st;
  if (::stat(snap.c_str(), &st) == 0) {
    auto r = RecordReader::open(snap, error);
    if (!r) return false;
    FloodLog::Entry e;
    auto damaged = [&](const std::string& what) {
      *error = at_offset(*r) + ": " + what + "; the snapshot is written whole and renamed into place, so "
               "this is not a crash: move the data directory away (or remove this file) to start anyway";
      return false;
    };
    if (r->next(&e) != RecordReader::Status::kEntry || static_cast<uint8_t>(e.kind) != kFileHeaderKind) {
      return damaged("no valid snapshot header");
    }
    std::string_view f[6];
    // Runs are run ids (they go into the SYNC line, which a neighbour refuses otherwise) and a log
    // starts at seq 1 or later (seq 0 means "nothing" to the backlog): what a start writes.
    if (protocol::split_fields(e.line, f, 6) != 6 || f[0] != "herd-snapshot" || f[1] != "1" ||
        !protocol::is_run_id(f[3]) || !parse_u64(f[4], &log_start) || log_start == 0) {
      return damaged("not a herd snapshot header: " + std::string(e.line));
    }
    if (f[2] != server) return damaged("a snapshot of server " + std::string(f[2]) + ", not " + server);
    for (std::string_view rest = f[5]; rest != "-" && !rest.empty();) {
      std::string_view item = rest.substr(0, rest.find(','));
      rest = item.size() < rest.size() ? rest.substr(item.size() + 1) : std::string_view();
      size_t colon = item.find(':');
      uint64_t seq;
      if (colon == std::string_view::npos || !protocol::is_run_id(item.substr(0, colon)) ||
          !parse_u64(item.substr(colon + 1), &seq)) {
        return damaged("bad history in the header: " + std::string(item));
      }
      uint64_t& last = last_of_run[std::string(item.substr(0, colon))];
      last = std::max(last, seq);
    }
    if (log_start > 1) {
      uint64_t& last = last_of_run[std::string(f[3])];
      last = std::max(last, log_start - 1);
    }
    highest = log_start - 1;
    uint64_t records = 0;
    bool ended = false;
    for (;;) {
      RecordReader::Status s = r->next(&e);
      if (s == RecordReader::Status::kEnd) break;
      if (s == RecordReader::Status::kDamaged) return damaged("a frame is damaged (length or checksum)");
      if (ended) return damaged("frames after the end frame");
      const uint8_t kind = static_cast<uint8_t>(e.kind);
      if (kind == static_cast<uint8_t>(FloodLog::Kind::kRecord)) {
        if (!load_record(e.line, table, &scratch)) return damaged("not an AT record: " + std::string(e.line));
        ++records;
      } else if (kind == static_cast<uint8_t>(FloodLog::Kind::kProgress)) {
        std::string peer;
        SyncState::Held h;
        if (!parse_progress(e.line, &peer, &h)) return damaged("bad progress entry: " + std::string(e.line));
        out->held[peer] = h;
      } else if (kind == kSnapshotEndKind) {
        uint64_t count;
        if (!parse_u64(e.line, &count) || count != records) {
          return damaged("the end frame counts " + std::string(e.line) + " records, the file holds " +
                         std::to_string(records));
        }
        ended = true;
      } else {
        return damaged("an unexpected frame");
      }
    }
    if (!ended) return damaged("no end frame (the snapshot is incomplete)");
    out->records_from_snapshot = records;
    out->snapshot_bytes = r->size();
  } else if (errno != ENOENT) {
    *error = snap + ": cannot read: " + std::strerror(errno);
    return false;
  }

  // The record logs, oldest first.
  std::vector<LogFile> logs;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    *error = dir + ": cannot list: " + std::strerror(errno);
    return false;
  }
  while (dirent* ent = ::readdir(d)) {
    std::string_view n = ent->d_name;
    if (n.size() != 8 + 16 + 4 || n.substr(0, 8) != "records-" || n.substr(24) != ".log") continue;
    uint64_t seq;
    auto [end, ec] = std::from_chars(n.data() + 8, n.data() + 24, seq, 16);
    if (ec != std::errc() || end != n.data() + 24) continue;
    logs.push_back({seq, dir + "/" + std::string(n)});
  }
  ::closedir(d);
  std::sort(logs.begin(), logs.end(), [](const LogFile& a, const LogFile& b) { return a.first_seq < b.first_seq; });

  size_t backlog_held = 0;
  uint64_t next_expected = 0;  // the seq the backlog's next entry must have (0: none yet)
  bool gap = false;            // a log started past where the one before ended
  for (size_t i = 0; i < logs.size(); ++i) {
    const bool last_file = i + 1 == logs.size();
    auto r = RecordReader::open(logs[i].path, error);
    if (!r) return false;
    FloodLog::Entry e;
    RecordReader::Status s = r->next(&e);
    if (last_file && (s == RecordReader::Status::kEnd ||
                      (s == RecordReader::Status::kDamaged && !r->valid_frame_follows()))) {
      // A file whose header never made it to the disk (empty, or cut inside it): the crash came right
      // after it was created, before anything was written to it.
      out->notes.push_back(logs[i].path + ": " + (s == RecordReader::Status::kEnd ? "empty" : "only a torn header") +
                           " (" + std::to_string(r->size()) + " bytes); removed");
      ::unlink(logs[i].path.c_str());
      break;
    }
    std::string_view f[6];
    if (s != RecordReader::Status::kEntry || static_cast<uint8_t>(e.kind) != kFileHeaderKind ||
        protocol::split_fields(e.line, f, 6) != 6 || f[0] != "herd-log" || f[1] != "1") {
      *error = at_offset(*r) + ": not a herd record log header";
      return false;
    }
    uint64_t first = 0;
    const bool has_first = parse_u64(f[4], &first);
    // As in the snapshot's header: a run id, and a first seq of 1 or more.
    if (!protocol::is_run_id(f[3]) || (has_first && first == 0)) {
      *error = at_offset(*r) + ": not a herd record log header (its run or first seq): " + std::string(e.line);
      return false;
    }
    if (f[2] != server || !has_first || first != logs[i].first_seq) {
      *error = at_offset(*r) + ": the header (" + std::string(e.line) + ") does not match server " + server +
               " and the file's name";
      return false;
    }
    const std::string run(f[3]);
    const bool same_links = f[5] == join(neighbours);
    if (next_expected && first != next_expected) {
      out->notes.push_back(logs[i].path + ": starts at seq " + std::to_string(first) + ", the previous log ended at " +
                           std::to_string(next_expected - 1) + " (records in between were never written)");
      out->backlog.clear();
      backlog_held = 0;
      gap = true;
    }
    // The run numbered on from first - 1: a neighbour holding it up to there holds the same records.
    if (first > 1) last_of_run[run] = std::max(last_of_run[run], first - 1);
    highest = std::max(highest, first - 1);
    uint64_t expect = first;
    for (;;) {
      s = r->next(&e);
      if (s == RecordReader::Status::kEnd) break;
      if (s == RecordReader::Status::kDamaged) {
        if (!last_file || r->valid_frame_follows()) {
          *error = at_offset(*r) + ": a damaged frame " +
                   (last_file ? std::string("with valid frames after it") : std::string("in a record log that is not the last")) +
                   ": this is not a torn tail; move the data directory away (or repair it) to start";
          return false;
        }
        uint64_t cut = r->size() - r->offset();
        if (::truncate(logs[i].path.c_str(), static_cast<off_t>(r->offset())) != 0) {
          *error = logs[i].path + ": cannot cut off its torn tail: " + std::strerror(errno);
          return false;
        }
        out->notes.push_back(logs[i].path + ": a torn tail of " + std::to_string(cut) + " bytes at offset " +
                             std::to_string(r->offset()) + " (a write cut short by a crash) was cut off");
        break;
      }
      const uint8_t kind = static_cast<uint8_t>(e.kind);
      // The last seq would leave the history nowhere to go on (the next would be 0: "nothing").
      if (e.seq == ~uint64_t{0}) {
        *error = at_offset(*r) + ": an entry with the last seq there is (" + std::to_string(e.seq) + ")";
        return false;
      }
      if (e.seq != expect || (kind != 1 && kind != 2)) {
        *error = at_offset(*r) + ": expected the entry with seq " + std::to_string(expect) + ", found " +
                 (kind == 1 || kind == 2 ? "seq " + std::to_string(e.seq) : std::string("another kind of frame"));
        return false;
      }
      ++expect;
      if (kind == 1) {
        if (e.seq >= log_start && !load_record(e.line, table, &scratch)) {
          *error = at_offset(*r) + ": not an AT record: " + std::string(e.line);
          return false;
        }
      } else if (e.seq >= log_start) {
        std::string peer;
        SyncState::Held h;
        if (!parse_progress(e.line, &peer, &h)) {
          *error = at_offset(*r) + ": bad progress entry: " + std::string(e.line);
          return false;
        }
        out->held[peer] = h;
      }
      if (e.seq >= log_start) {
        ++out->entries_from_logs;
        out->log_bytes += kFrameHeader + FloodLog::kEntryHeader + e.line.size();
      }
      last_of_run[run] = std::max(last_of_run[run], e.seq);
      highest = std::max(highest, e.seq);
      // The newest entries go back into the backlog, for neighbours that resume.
      std::string entry;
      FloodLog::encode(&entry, e.kind, e.seq, same_links ? e.mask : ~uint64_t{0}, e.line);
      if (out->backlog.empty()) out->backlog_first_seq = e.seq;
      backlog_held += entry.size();
      out->backlog.push_back(std::move(entry));
      while (backlog_held > backlog_bytes && !out->backlog.empty()) {
        backlog_held -= out->backlog.front().size();
        out->backlog.pop_front();
        ++out->backlog_first_seq;
      }
    }
    next_expected = expect;
  }
  out->next_seq = highest + 1;
  if (gap && !out->held.empty()) {
    // The gap's records were never written, and the rewrite that would have saved them did not
    // finish (it would have removed the older logs): records a neighbour sent in the gap are gone,
    // though progress entries after it say they were held. Holding nothing of anyone's history,
    // this server gets every neighbour's whole table again at the first catch-up.
    out->notes.push_back("records were lost in a gap between the record logs: how far this server held its "
                         "neighbours' histories is forgotten, so each sends its whole table again");
    out->held.clear();
  }
  for (const auto& [run, last] : last_of_run) out->history.push_back({run, last});
  std::sort(out->history.begin(), out->history.end(),
            [](const SyncState::EarlierRun& a, const SyncState::EarlierRun& b) { return a.last_seq > b.last_seq; });
  if (out->history.size() > protocol::SyncLine::kMaxHistory) out->history.resize(protocol::SyncLine::kMaxHistory);
  return true;
}

}  // namespace herd
