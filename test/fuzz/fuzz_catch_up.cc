// Fuzz harness: the catch-up classes as classes, on a real event loop. A server "Goloman" (neighbours
// Hands, Holiday and Wilkes; its table, backlog, router, catch-up state, admission and loop context
// built as Server::start builds them, no data directory) has an inbound PeerSession from Hands, whose
// CatchUpReceiver takes Hands' SYNC, BULK and MARK lines, and an outbound connection to Holiday driven
// by a CatchUpSender, as PeerLink drives it. Both run over socketpairs; the harness is the other end
// of each. The input is a script: bytes from Hands (split wherever the script says), bytes Holiday
// answers, clients' IAMATs stored through the router, pumps, reconnects of either connection and loop
// turns. After each step the loop runs until it has read what was written, and the harness reads what
// both classes wrote.
//
// Properties. Receiver: the table holds exactly the clients of the valid reports received (from Hands
// or clients), each with its newest time, and every record it holds is an AT record; what Goloman
// holds of Hands' history (SyncState) moves only by MARKs after a SYNC, as a model of the header's
// contract says (within one run it only grows); the only thing written back is one SYNC-FROM per
// SYNC, naming what was held then (ALL while a restarted server has not caught up from Hands), and a
// line over peer_max_line() closes the connection. Sender: the stream to Holiday is its hello and SYNC
// line, then nothing until Holiday answered with a SYNC-FROM; then only BULK frames of exactly their
// count of AT records, live AT records and MARKs whose seq never goes back and never passes the
// backlog; no record Holiday is named in (seen=) or that never was a client's current report;
// records_sent() is the count of record lines the stream carried; the cursor stays within the
// backlog. Once the sender says it has caught up after an answer: a MARK came after the answer, and
// every record the answer made it owe (the whole table for a full transfer, the backlog entries owed
// to Holiday after the answer's seq for a replay) that is still current was sent after the answer.
//
// Dictionary: fuzz_catch_up.dict
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "herd/admission.h"
#include "herd/catch_up_receiver.h"
#include "herd/catch_up_sender.h"
#include "herd/config.h"
#include "herd/flood_log.h"
#include "herd/flood_router.h"
#include "herd/location_table.h"
#include "herd/log_sink.h"
#include "herd/loop_context.h"
#include "herd/peer_link.h"
#include "herd/peer_session.h"
#include "herd/seen_set.h"
#include "herd/sync_state.h"
#include "places/places_provider.h"
#include "protocol/command.h"
#include "protocol/fields.h"
#include "protocol/reply.h"
#include "protocol/sync_line.h"
#include "protocol/timestamp.h"
#include "reactor/event_loop.h"
#include "reactor/socket.h"
#include "reactor/tcp_connection.h"
#include "test/fuzz/fuzz_check.h"

namespace {

using herd::FloodLog;
using herd::LocationTable;
using herd::SyncState;
using protocol::SyncKind;
using protocol::Timestamp;

constexpr const char* kSelf = "Goloman";
constexpr const char* kFrom = "Hands";     // the inbound session's neighbour
constexpr const char* kTo = "Holiday";     // the sender's neighbour
constexpr const char* kRun = "goloman2";   // this server's run (in the dictionary)
constexpr const char* kEarlierRun = "goloman1";

struct NoPlaces final : places::PlacesProvider {
  void nearby(reactor::EventLoop&, const places::PlacesQuery&, Done done, Wanted) override { done("{}"); }
};

herd::Config make_config() {
  herd::Config c;
  c.threads = 1;
  for (const char* name : {kSelf, kFrom, kTo, "Wilkes"}) {
    herd::ServerConfig s;
    s.name = name;
    c.servers.push_back(s);
  }
  c.links = {{kSelf, kFrom}, {kSelf, kTo}, {kSelf, "Wilkes"}};
  // Small bounds, so that fuzz inputs reach them: lines, and a backlog of a few blocks (evictions,
  // readers behind, full transfers).
  c.limits.max_line = 200;
  c.limits.peer_backlog_bytes = 12 * 1024;
  return c;
}

const herd::Config& config() {
  static const herd::Config c = make_config();
  return c;
}

herd::LogSink& log_sink() {
  static std::unique_ptr<herd::LogSink> sink = [] {
    std::string error;
    herd::LogOptions o;
    o.level = herd::LogLevel::kWarnings;
    auto s = herd::LogSink::open("/dev/null", 2, 1 << 20, &error, o);
    FUZZ_CHECK(s != nullptr);
    return s;
  }();
  return *sink;
}

// The input, read front to back; zeros once it runs out.
struct Script {
  std::string_view rest;
  bool empty() const { return rest.empty(); }
  uint8_t byte() {
    if (rest.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(rest.front());
    rest.remove_prefix(1);
    return b;
  }
  std::string_view bytes(size_t n) {
    n = std::min(n, rest.size());
    std::string_view out = rest.substr(0, n);
    rest.remove_prefix(n);
    return out;
  }
};

std::pair<int, int> socket_pair() {
  int fds[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  return {fds[0], fds[1]};
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    // The model says the other end still reads (and the inputs are far below a socket buffer).
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    FUZZ_CHECK(n > 0);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Appends what `fd` has to *out; true at the end of the stream (a socket closed with input unread
// reports ECONNRESET to its pair).
bool read_all(int fd, std::string* out) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      continue;
    }
    return n == 0 || errno == ECONNRESET;
  }
}

size_t unread(int fd) {
  int n = 0;
  if (fd < 0 || ::ioctl(fd, FIONREAD, &n) != 0) return 0;
  return static_cast<size_t>(n);
}

// Takes the complete lines off the front of *buf ("\n", one "\r" before it dropped).
std::vector<std::string> take_lines(std::string* buf) {
  std::vector<std::string> lines;
  size_t pos = 0;
  for (size_t nl; (nl = buf->find('\n', pos)) != std::string::npos; pos = nl + 1) {
    std::string line = buf->substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  buf->erase(0, pos);
  return lines;
}

Timestamp time_of(std::string_view record) {
  std::optional<Timestamp> t = protocol::at_record_time(record);
  FUZZ_CHECK(t.has_value());
  return *t;
}

// The sender's side: its connection's handler, as PeerLink is.
struct SenderEnd final : reactor::ConnectionHandler {
  herd::CatchUpSender* sender = nullptr;
  bool up = false;  // the neighbour answered (PeerLink::confirm)
  bool closed = false;
  size_t on_data(reactor::Connection& c, std::string_view data) override {
    up = true;
    return sender->on_data(c, data);
  }
  void on_eof(reactor::Connection& c, std::string_view) override { c.close("neighbour closed the link"); }
  void on_drained(reactor::Connection& c) override {
    if (up && c.is_open()) sender->pump(c);
  }
  void on_closed(reactor::Connection&, std::string_view) override {
    closed = true;
    sender->stop();
  }
};

struct Harness {
  explicit Harness(bool restarted, bool keep_all)
      : table(config().limits.max_clients, config().limits.max_table_bytes, herd::SipKey{1, 2}, config().packed_records),
        backlog(config().limits.peer_backlog_bytes, restarted ? 1000 : 1),
        sync(kRun, restarted ? std::vector<SyncState::EarlierRun>{{kEarlierRun, 999}} : std::vector<SyncState::EarlierRun>{}),
        router(kSelf, table, backlog, keep_all),
        admission(config().limits, herd::Admission::peer_connection_bound(config(), 1)),
        parts{config(), *config().find(kSelf), table, router, backlog, sync, nullptr, places, nullptr,
              admission, log_sink(), {}},
        ctx(loop, parts),
        restarted_(restarted) {
    parts.loops = {&ctx};
    std::vector<herd::PeerLink*> ptrs;
    size_t k = 0;
    for (const herd::ServerConfig* s : config().neighbours(kSelf)) {
      links.push_back(std::make_unique<herd::PeerLink>(ctx, *s, herd::FloodRouter::bit_for(k)));
      ptrs.push_back(links.back().get());
      if (s->name == kTo) to_bit = herd::FloodRouter::bit_for(k);
      ++k;
    }
    FUZZ_CHECK(to_bit != 0);
    router.set_links(std::move(ptrs));
    sender = std::make_unique<herd::CatchUpSender>(ctx, to_name, to_bit, [this] { wake = true; });
    end.sender = sender.get();
    connect_inbound();
    connect_outbound();
  }

  ~Harness() {
    if (out_conn && out_conn->is_open()) out_conn->close("harness done");
    sender->stop();
    for (auto& [id, session] : ctx.peers) session->close("harness done");
    turn();
    for (int fd : {in_fd, out_fd}) {
      if (fd >= 0) ::close(fd);
    }
    links.clear();
    ctx.peers.clear();
  }

  // One loop iteration: events, tasks and deferred work.
  void turn() {
    loop.queue([this] { loop.stop(); });
    loop.run();
  }
  // Turns until both classes read what was written to them (a few at most).
  void settle() {
    for (int i = 0; i < 8; ++i) {
      turn();
      if (unread(in_session_fd) == 0 && unread(out_conn_fd) == 0) break;
    }
    if (wake && out_conn && out_conn->is_open() && end.up) {
      wake = false;
      sender->pump(*out_conn);
    }
  }

  // --- the inbound session from Hands -------------------------------------------------------------

  void connect_inbound() {
    if (in_fd >= 0) {
      ::close(in_fd);  // the neighbour goes: the session sees the end of its stream and closes
      settle();
    }
    auto [a, b] = socket_pair();
    in_session_fd = a;
    in_fd = b;
    const uint64_t id = next_id++;
    ctx.add_pending_peer(id);
    auto session = std::make_unique<herd::PeerSession>(ctx, id, a, reactor::SocketAddress{});
    herd::PeerSession* s = session.get();
    ctx.peers.emplace(id, std::move(session));
    s->start();
    in = InModel{};
    in.open = true;
    send_inbound("HERD " + std::string(kFrom) + "\n");
  }

  // Model of one inbound connection (PeerSession and its CatchUpReceiver, per the headers).
  struct InModel {
    bool open = false;
    bool hello = false;
    std::string pending;  // bytes of an unfinished line
    std::string run;      // from its SYNC
    uint64_t bulk_left = 0;
    bool catching_up = false;
    std::deque<std::string> answers;  // SYNC-FROM lines owed, in order
    std::string received;             // what the session wrote
  };

  void model_inbound_line(const std::string& line) {
    if (!in.hello) {
      in.hello = true;  // the harness's own hello
      return;
    }
    if (in.bulk_left == 0 && protocol::may_be_sync_line(line)) {
      const protocol::SyncLine s = protocol::parse_sync_line(line);
      switch (s.kind) {
        case SyncKind::kNone: break;
        case SyncKind::kSync: {
          in.run.assign(s.run);
          std::string answer;
          if (held) {
            protocol::append_sync_from(answer, held->run, held->seq, restarted_ && !caught_up_from);
          } else {
            protocol::append_sync_from(answer, "-", 0);
          }
          in.answers.push_back(answer);
          in.catching_up = true;
          return;
        }
        case SyncKind::kBulk:
          in.bulk_left = s.number;
          in.catching_up = true;
          return;
        case SyncKind::kMark:
          if (in.run.empty()) return;
          if (!held || held->run != in.run) {
            held = SyncState::Held{in.run, s.number};
          } else {
            held->seq = std::max(held->seq, s.number);
          }
          if (in.catching_up) caught_up_from = true;
          in.catching_up = false;
          return;
        default:
          return;  // malformed: ignored
      }
    }
    protocol::At at;
    const protocol::CommandKind kind = protocol::parse_at(line, &at);
    if (kind == protocol::CommandKind::kEmpty) return;
    if (kind == protocol::CommandKind::kAt) offered(at.client_id, at.time);
    if (in.bulk_left > 0) --in.bulk_left;
  }

  // A valid report for `id` dated `time` was offered to the table (from Hands or a client).
  void offered(std::string_view id, Timestamp time) {
    timespec wall;
    ::clock_gettime(CLOCK_REALTIME, &wall);
    const Timestamp now = protocol::timestamp_of(wall);
    const herd::Limits& limits = config().limits;
    if (id.size() > limits.max_id_bytes) return;
    // Near the clock-skew bound the session's clock reading and ours may disagree: not modelled.
    Timestamp early = now, late = now;
    early.sec -= 5;
    late.sec += 5;
    const bool refused_early = protocol::too_far_ahead(time, early, limits.max_clock_skew);
    const bool refused_late = protocol::too_far_ahead(time, late, limits.max_clock_skew);
    const std::string key(id);
    if (refused_early != refused_late) {
      unsure.insert(key);
      return;
    }
    if (refused_early) return;
    auto it = newest.find(key);
    if (it == newest.end()) {
      newest.emplace(key, time);
    } else {
      it->second = std::max(it->second, time);
    }
  }

  void send_inbound(std::string_view bytes) {
    if (!in.open) return;
    write_all(in_fd, bytes);
    in.pending.append(bytes);
    const size_t max_line = config().peer_max_line();
    size_t pos = 0;
    for (size_t nl; in.open && (nl = in.pending.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      std::string line = in.pending.substr(pos, nl - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > max_line) {
        in.open = false;
        break;
      }
      model_inbound_line(line);
    }
    if (!in.open) {
      in.pending.clear();
      return;
    }
    in.pending.erase(0, pos);
    // An unfinished line over the limit (a "\r" at its end may still become part of its ending).
    size_t measured = in.pending.size();
    if (measured > 0 && in.pending.back() == '\r') --measured;
    if (measured > max_line) in.open = false;
  }

  void check_inbound() {
    const bool eof = read_all(in_fd, &in.received);
    for (const std::string& line : take_lines(&in.received)) {
      FUZZ_CHECK(!in.answers.empty());  // written back: only the answer to a SYNC
      FUZZ_CHECK(line + "\n" == in.answers.front());
      in.answers.pop_front();
    }
    if (in.open) {
      FUZZ_CHECK(!eof);
      FUZZ_CHECK(in.answers.empty() && in.received.empty());
    } else {
      FUZZ_CHECK(eof);  // a line over peer_max_line() closed the connection
    }
    // What Goloman holds of Hands' history, and whether it still asks Hands for everything.
    const std::optional<SyncState::Held> h = sync.held(kFrom);
    FUZZ_CHECK(h.has_value() == held.has_value());
    if (h) FUZZ_CHECK(h->run == held->run && h->seq == held->seq);
    FUZZ_CHECK(sync.wants_everything_from(kFrom) == (restarted_ && !caught_up_from));
  }

  // --- the table ----------------------------------------------------------------------------------

  void client_iamat(uint8_t who, uint8_t when) {
    const std::string id = "c" + std::to_string(who % 8);
    const std::string line = std::string("AT ") + kSelf + " +0.000000001 " + id + " +34.068930-118.445127 " +
                             std::to_string(1520000000 + when % 64) + "." + std::to_string(when / 64);
    protocol::At at;
    FUZZ_CHECK(protocol::parse_at(line, &at) == protocol::CommandKind::kAt);
    std::string scratch;
    const protocol::RecordForm record = protocol::at_record(line, at, &scratch);
    router.offer(at.client_id, at.time, record, LocationTable::Source::kClient, "", {}, nullptr);
    offered(at.client_id, at.time);
  }

  // Every client of the model with its newest time, nothing else, and only AT records.
  void check_table() {
    std::string all;
    LocationTable::ScanPosition pos;
    size_t scanned = 0;
    while (!pos.done) scanned += table.scan(&pos, &all, 1 << 20);
    FUZZ_CHECK(scanned == table.size());
    std::string_view rest(all);
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      FUZZ_CHECK(nl != std::string_view::npos);
      const std::string_view record = rest.substr(0, nl);
      rest.remove_prefix(nl + 1);
      protocol::At at;
      FUZZ_CHECK(protocol::parse_at(record, &at) == protocol::CommandKind::kAt);
      FUZZ_CHECK(at.extra.empty());
      const std::string id(at.client_id);
      if (unsure.count(id)) continue;
      auto it = newest.find(id);
      FUZZ_CHECK(it != newest.end());
      FUZZ_CHECK(at.time == it->second);
    }
    size_t sure = 0;
    for (const auto& [id, t] : newest) {
      if (unsure.count(id)) continue;
      ++sure;
      std::string record;
      FUZZ_CHECK(table.lookup(id, &record, nullptr));
      FUZZ_CHECK(time_of(record) == t);
    }
    FUZZ_CHECK(table.size() >= sure && table.size() <= sure + unsure.size());
    FUZZ_CHECK(table.evictions() == 0);
  }

  // --- the outbound connection to Holiday ---------------------------------------------------------

  void connect_outbound() {
    if (out_conn) {
      // What the old connection still held unsent is lost with it: the counts then part.
      if (out_conn->pending_output() != 0) lost = true;
      if (out_conn->is_open()) out_conn->close("reconnect");
      check_outbound();
      settle();
      ::close(out_fd);
      reactor::Connection* dead = out_conn.release();
      loop.defer([dead] { delete dead; });
      turn();
    }
    auto [a, b] = socket_pair();
    out_conn_fd = a;
    out_fd = b;
    end.up = false;
    end.closed = false;
    out = OutModel{};
    out.started = std::chrono::steady_clock::now();
    out_conn = std::make_unique<reactor::TcpConnection>(loop, a, end);
    out_conn->start();
    sender->start(*out_conn);
  }

  struct OutModel {
    std::chrono::steady_clock::time_point started;
    std::string answer_pending;  // bytes of an unfinished answer line
    bool open = true;            // no answer line over the limit yet
    bool answered = false;       // a SYNC-FROM was taken
    std::string received;
    size_t lines = 0;            // lines read so far
    uint64_t bulk_left = 0;
    std::optional<uint64_t> last_mark;
    // Since the last answer:
    uint64_t next_at_answer = 0;
    bool marked = false;
    std::map<std::string, std::string> owed;        // client: a record the answer made owed
    std::map<std::string, Timestamp> sent_since;    // client: newest time sent
  };

  void send_answer(std::string_view bytes) {
    if (!out.open || end.closed) return;
    write_all(out_fd, bytes);
    out.answer_pending.append(bytes);
    size_t pos = 0;
    for (size_t nl; out.open && (nl = out.answer_pending.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      std::string line = out.answer_pending.substr(pos, nl - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > herd::CatchUpSender::kMaxAnswerLine) {
        out.open = false;
        break;
      }
      const protocol::SyncLine s = protocol::parse_sync_line(line);
      if (s.kind == SyncKind::kSyncFrom) answer_taken(s);
    }
    if (!out.open) return;
    out.answer_pending.erase(0, pos);
    size_t measured = out.answer_pending.size();
    if (measured > 0 && out.answer_pending.back() == '\r') --measured;
    if (measured > herd::CatchUpSender::kMaxAnswerLine) out.open = false;
  }

  // The sender takes SYNC-FROM `s`: what it owes Holiday from now on (CatchUpSender::on_line).
  void answer_taken(const protocol::SyncLine& s) {
    out.answered = true;
    out.marked = false;
    out.owed.clear();
    out.sent_since.clear();
    out.next_at_answer = backlog.next_seq();
    std::optional<uint64_t> resume;
    if (s.run != "-") resume = sync.resume_point(s.run, s.number);
    if (!resume || *resume >= backlog.next_seq() || *resume + 1 < backlog.oldest_seq()) {
      // A full transfer: every record the table holds (also for a claim past what was stored).
      std::string all;
      LocationTable::ScanPosition pos;
      while (!pos.done) table.scan(&pos, &all, 1 << 20);
      for (const std::string& line : take_lines(&all)) out.owed[std::string(protocol::at_record_id(line))] = line;
      return;
    }
    // A replay: the backlog's records after *resume owed to Holiday (all of them with ALL).
    FloodLog::Cursor cursor = backlog.cursor_at(*resume + 1);
    std::string raw;
    while (cursor.seq < backlog.next_seq()) {
      if (backlog.read(&cursor, &raw, 1 << 20) != FloodLog::ReadStatus::kOk) break;
    }
    std::string_view view(raw);
    FloodLog::Entry e;
    while (FloodLog::next_entry(&view, &e)) {
      if (e.kind != FloodLog::Kind::kRecord || !(s.everything || (e.mask & to_bit))) continue;
      std::string_view f[7];
      FUZZ_CHECK(protocol::split_fields(e.line, f, 7) >= 6);
      out.owed[std::string(f[3])] = std::string(e.line.substr(0, static_cast<size_t>(f[5].data() + f[5].size() - e.line.data())));
    }
  }

  void check_outbound() {
    read_all(out_fd, &out.received);
    const bool timer_may_have_fired =
        std::chrono::steady_clock::now() - out.started >= herd::CatchUpSender::kAnswerWait - std::chrono::milliseconds(100);
    for (const std::string& line : take_lines(&out.received)) {
      const size_t n = out.lines++;
      if (n == 0) {
        FUZZ_CHECK(line == std::string("HERD ") + kSelf);
        continue;
      }
      if (n == 1) {
        std::string mine;
        sync.append_sync_line(mine);
        FUZZ_CHECK(line + "\n" == mine);
        continue;
      }
      // Nothing but the hello before an answer (unless kAnswerWait may have run out).
      if (!timer_may_have_fired) FUZZ_CHECK(out.answered);
      if (out.bulk_left == 0 && protocol::may_be_sync_line(line)) {
        const protocol::SyncLine s = protocol::parse_sync_line(line);
        FUZZ_CHECK(s.kind == SyncKind::kBulk || s.kind == SyncKind::kMark);
        if (s.kind == SyncKind::kBulk) {
          FUZZ_CHECK(s.number > 0);
          out.bulk_left = s.number;
        } else {
          FUZZ_CHECK(s.number < backlog.next_seq());
          if (out.last_mark) FUZZ_CHECK(s.number >= *out.last_mark);
          out.last_mark = s.number;
          if (out.answered && s.number + 1 >= out.next_at_answer) out.marked = true;
        }
        continue;
      }
      protocol::At at;
      FUZZ_CHECK(protocol::parse_at(line, &at) == protocol::CommandKind::kAt);
      if (out.bulk_left > 0) --out.bulk_left;
      ++records_received;
      FUZZ_CHECK(!herd::SeenSet::parse(at.extra).contains(kTo));
      const std::string id(at.client_id);
      if (!unsure.count(id)) {
        auto it = newest.find(id);
        FUZZ_CHECK(it != newest.end() && at.time <= it->second);
      }
      auto [it, fresh] = out.sent_since.emplace(id, at.time);
      if (!fresh) it->second = std::max(it->second, at.time);
    }
    // An answer line over the limit closes the connection.
    if (!out.open) FUZZ_CHECK(end.closed);
    if (!out_conn || !out_conn->is_open()) return;
    // A BULK frame is written whole.
    if (out.received.empty()) FUZZ_CHECK(out.bulk_left == 0);
    if (!lost && out_conn->pending_output() == 0 && out.received.empty()) {
      FUZZ_CHECK(sender->records_sent() == records_received);
    }
    FUZZ_CHECK(sender->cursor_seq() <= backlog.next_seq());
    FUZZ_CHECK(sender->published_cursor_seq() <= backlog.next_seq());
    FUZZ_CHECK(out_conn->pending_output() <= herd::CatchUpSender::kMaxUnsentBytes + herd::CatchUpSender::kMaxBytesPerTurn +
                                                  herd::CatchUpSender::kReadBytes);
  }

  // At the end: once caught up after an answer, everything it made owed that is still current went out.
  void finish_outbound() {
    if (!out_conn || !out_conn->is_open() || !end.up) return;
    for (int i = 0; i < 1000 && !(sender->caught_up() && out_conn->pending_output() == 0); ++i) {
      sender->pump(*out_conn);
      settle();
      check_outbound();
    }
    if (!out_conn->is_open()) return;
    sender->pump(*out_conn);
    settle();
    check_outbound();
    const bool timer_may_have_fired =
        std::chrono::steady_clock::now() - out.started >= herd::CatchUpSender::kAnswerWait - std::chrono::milliseconds(100);
    if (!out.answered || timer_may_have_fired || lost || !sender->caught_up()) return;
    FUZZ_CHECK(out.marked);
    for (const auto& [id, record] : out.owed) {
      if (!table.holds(id, record)) continue;  // replaced since: the newer version is owed, if at all
      auto it = out.sent_since.find(id);
      FUZZ_CHECK(it != out.sent_since.end() && it->second >= time_of(record));
    }
  }

  void check() {
    check_inbound();
    check_table();
    check_outbound();
  }

  reactor::EventLoop loop{0};
  NoPlaces places;
  LocationTable table;
  FloodLog backlog;
  SyncState sync;
  herd::FloodRouter router;
  herd::Admission admission;
  herd::ServerParts parts;
  herd::LoopContext ctx;
  std::vector<std::unique_ptr<herd::PeerLink>> links;
  const std::string to_name = kTo;
  uint64_t to_bit = 0;
  std::unique_ptr<herd::CatchUpSender> sender;
  SenderEnd end;
  bool wake = false;
  uint64_t next_id = 1;

  const bool restarted_;
  // Inbound.
  int in_fd = -1, in_session_fd = -1;
  InModel in;
  std::optional<SyncState::Held> held;
  bool caught_up_from = false;  // a catch-up from Hands completed (SyncState::catch_up_completed)
  std::map<std::string, Timestamp> newest;  // client: the newest valid report offered
  std::set<std::string> unsure;             // clients whose report was at the clock-skew bound
  // Outbound.
  int out_fd = -1, out_conn_fd = -1;
  std::unique_ptr<reactor::Connection> out_conn;
  OutModel out;
  uint64_t records_received = 0;
  bool lost = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script script{std::string_view(reinterpret_cast<const char*>(data), size)};
  const uint8_t flags = script.byte();
  Harness h((flags & 1) != 0, (flags & 2) != 0);
  h.settle();
  h.check();
  int steps = 0;
  while (!script.empty() && ++steps < 200) {
    const uint8_t op = script.byte();
    switch (op % 8) {
      case 0:
      case 1:
      case 2:  // bytes from Hands, cut where the script says
        h.send_inbound(script.bytes(script.byte() % 128 + 1));
        break;
      case 3:  // bytes Holiday answers
        h.send_answer(script.bytes(script.byte() % 64 + 1));
        break;
      case 4: {  // a client's IAMAT
        const uint8_t who = script.byte();
        h.client_iamat(who, script.byte());
        break;
      }
      case 5:
        if (h.out_conn->is_open() && h.end.up) h.sender->pump(*h.out_conn);
        break;
      case 6:
        if (op & 8) {
          h.connect_inbound();
        } else {
          h.connect_outbound();
        }
        break;
      case 7:
        h.turn();
        break;
    }
    h.settle();
    h.check();
  }
  h.finish_outbound();
  h.check_inbound();
  h.check_table();
  return 0;
}
