// Fuzz harness: the catch-up lines a neighbour sends (protocol/sync_line.h), and what the receiving
// side decides from them (herd/sync_state.h), line by line as a peer link delivers them. Properties:
// only a line whose first field is a catch-up verb is one (and may_be_sync_line never rules one
// out); every view points into the line; a parsed line formats into one that parses back to the same
// values (runs, sequence numbers, ALL), within the history bound; a SYNC's runs are run ids. Playing
// the acceptor (CatchUpReceiver): its SYNC-FROM answer to each SYNC parses back as what it holds, a
// MARK only moves what it holds within a run forward. Playing the dialler (CatchUpSender): the SYNC
// line of a SyncState with the history a SYNC named parses back to it, and resume_point() of each
// SYNC-FROM resumes within what that history held (its own run as told, an earlier run at most at
// its last seq, an unknown run not at all).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "herd/sync_state.h"
#include "protocol/fields.h"
#include "protocol/sync_line.h"
#include "test/fuzz/fuzz_check.h"

namespace {

bool within(std::string_view part, std::string_view whole) {
  return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool same(const protocol::SyncLine& a, const protocol::SyncLine& b) {
  if (a.kind != b.kind || a.run != b.run || a.number != b.number || a.everything != b.everything ||
      a.history_size != b.history_size) {
    return false;
  }
  for (size_t i = 0; i < a.history_size; ++i) {
    if (a.history[i].run != b.history[i].run || a.history[i].seq != b.history[i].seq) return false;
  }
  return true;
}

// The line `s` formats into (without its newline), for the kinds that format.
std::string format(const protocol::SyncLine& s) {
  std::string out;
  switch (s.kind) {
    case protocol::SyncKind::kSync: protocol::append_sync(out, s.run, s.history.data(), s.history_size); break;
    case protocol::SyncKind::kSyncFrom: protocol::append_sync_from(out, s.run, s.number, s.everything); break;
    case protocol::SyncKind::kBulk: protocol::append_bulk(out, s.number); break;
    case protocol::SyncKind::kMark: protocol::append_mark(out, s.number); break;
    default: return out;
  }
  FUZZ_CHECK(!out.empty() && out.back() == '\n' && out.find('\n') == out.size() - 1);
  out.pop_back();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string peer = "Hands";
  herd::SyncState acceptor("acceptorrun", {});
  std::string neighbour_run;  // the acceptor's record of the neighbour's run (CatchUpReceiver::run_)
  std::optional<herd::SyncState> dialler;
  std::string_view rest(input);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);

    const protocol::SyncLine s = protocol::parse_sync_line(line);
    std::string_view first;
    size_t pos = 0;
    first = protocol::next_field(line, &pos);
    const bool verb = first == "SYNC" || first == "SYNC-FROM" || first == "BULK" || first == "MARK";
    FUZZ_CHECK((s.kind != protocol::SyncKind::kNone) == verb);
    if (verb) FUZZ_CHECK(protocol::may_be_sync_line(line));
    FUZZ_CHECK(within(s.run, line));
    FUZZ_CHECK(s.history_size <= protocol::SyncLine::kMaxHistory);
    if (s.kind == protocol::SyncKind::kNone || s.kind == protocol::SyncKind::kBad) continue;

    // Formats and parses back to the same values; formatting is canonical.
    const std::string again = format(s);
    const protocol::SyncLine t = protocol::parse_sync_line(again);
    FUZZ_CHECK(same(s, t));
    FUZZ_CHECK(format(t) == again);

    switch (s.kind) {
      case protocol::SyncKind::kSync: {
        FUZZ_CHECK(protocol::is_run_id(s.run));
        std::vector<herd::SyncState::EarlierRun> history;
        for (size_t i = 0; i < s.history_size; ++i) {
          FUZZ_CHECK(within(s.history[i].run, line));
          FUZZ_CHECK(protocol::is_run_id(s.history[i].run));
          history.push_back({std::string(s.history[i].run), s.history[i].seq});
        }
        // The acceptor answers with what it holds of the neighbour's history.
        neighbour_run.assign(s.run);
        std::string answer;
        if (auto held = acceptor.held(peer)) {
          protocol::append_sync_from(answer, held->run, held->seq, acceptor.wants_everything_from(peer));
        } else {
          protocol::append_sync_from(answer, "-", 0);
        }
        FUZZ_CHECK(answer.back() == '\n');
        const protocol::SyncLine a = protocol::parse_sync_line(std::string_view(answer).substr(0, answer.size() - 1));
        FUZZ_CHECK(a.kind == protocol::SyncKind::kSyncFrom);
        if (auto held = acceptor.held(peer)) {
          FUZZ_CHECK(a.run == held->run && a.number == held->seq);
        } else {
          FUZZ_CHECK(a.run == "-" && a.number == 0);
        }
        // The dialler that sent it: its SyncState's line says the same.
        if (!dialler) {
          dialler.emplace(std::string(s.run), history);
          std::string mine;
          dialler->append_sync_line(mine);
          const protocol::SyncLine m = protocol::parse_sync_line(std::string_view(mine).substr(0, mine.size() - 1));
          FUZZ_CHECK(same(m, s));
        }
        break;
      }
      case protocol::SyncKind::kSyncFrom: {
        FUZZ_CHECK(s.run == "-" || protocol::is_run_id(s.run));
        if (!dialler || s.run == "-") break;
        const std::optional<uint64_t> resume = dialler->resume_point(s.run, s.number);
        if (s.run == dialler->run()) {
          FUZZ_CHECK(resume && *resume == s.number);
          break;
        }
        const auto& h = dialler->history();
        auto it = std::find_if(h.begin(), h.end(), [&](const auto& e) { return e.run == s.run; });
        if (it == h.end()) {
          FUZZ_CHECK(!resume);
        } else {
          FUZZ_CHECK(resume && *resume <= s.number && *resume <= it->last_seq);
          FUZZ_CHECK(*resume == s.number || *resume == it->last_seq);
        }
        break;
      }
      case protocol::SyncKind::kMark: {
        if (neighbour_run.empty()) break;  // MARK before SYNC: ignored
        const std::optional<herd::SyncState::Held> before = acceptor.held(peer);
        acceptor.set_held(peer, neighbour_run, s.number);
        const std::optional<herd::SyncState::Held> after = acceptor.held(peer);
        FUZZ_CHECK(after && after->run == neighbour_run);
        if (before && before->run == neighbour_run) {
          FUZZ_CHECK(after->seq == std::max(before->seq, s.number));
        } else {
          FUZZ_CHECK(after->seq == s.number);
        }
        break;
      }
      default:
        break;
    }
  }
  return 0;
}
