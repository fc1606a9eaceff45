// FloodRouter at its two documented limits, end to end in one process: a Server ("H") with 70
// neighbour links (links 63..69 share the last bit of the backlog's mask), whose neighbours are fake
// peers that accept its links and keep every byte it writes to them, and seen= sets of more names than
// a set holds (SeenSet::kMaxNames). Both limits are documented as "sent more than needed", never as
// lost: every neighbour a record is owed to must get it, a name written into a seen= set must be a
// server that holds or is being sent the record, and a record that comes back must not be stored or
// flooded again.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "herd/flood_log.h"
#include "herd/flood_router.h"
#include "herd/log_sink.h"
#include "herd/peer_link.h"
#include "herd/seen_set.h"
#include "herd/server.h"
#include "protocol/packed_record.h"
#include "protocol/timestamp.h"
#include "test/unit/free_port.h"
#include "test/unit/no_places.h"
#include "test/unit/temp_dir.h"
#include "test/unit/wait_until.h"

using namespace std::chrono_literals;
using herd::FloodLog;
using herd::FloodRouter;
using herd::LocationTable;
using herd::SeenSet;
using testing_places::NoPlaces;
using testing_wait::wait_until;

namespace {

// Listening sockets on loopback ports, one per fake neighbour: they accept the server's links, never
// answer, and keep what every connection to them brings. close(i) makes neighbour i unreachable.
class FakeNeighbours {
 public:
  explicit FakeNeighbours(size_t n) : data_(n), listeners_(n, -1), ports_(n, 0) {
    for (size_t i = 0; i < n; ++i) {
      ports_[i] = testing_net::unused_loopback_port();
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(ports_[i]);
      REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      REQUIRE(::listen(fd, 16) == 0);
      listeners_[i] = fd;
    }
    thread_ = std::thread([this] { run(); });
  }
  ~FakeNeighbours() {
    stop_ = true;
    thread_.join();
    for (int fd : listeners_) if (fd >= 0) ::close(fd);
    for (auto& c : conns_) ::close(c.first);
  }
  uint16_t port(size_t i) const { return ports_[i]; }
  std::string received(size_t i) {
    std::lock_guard lock(mu_);
    return data_[i];
  }
  // Neighbour i stops listening and drops its connections (the server's link to it goes down).
  void close(size_t i) {
    std::lock_guard lock(mu_);
    closing_.push_back(i);
  }

 private:
  void run() {
    char buf[65536];
    while (!stop_) {
      {
        std::lock_guard lock(mu_);
        for (size_t i : closing_) {
          if (listeners_[i] >= 0) ::close(listeners_[i]);
          listeners_[i] = -1;
          for (auto it = conns_.begin(); it != conns_.end();) {
            if (it->second == i) {
              ::close(it->first);
              it = conns_.erase(it);
            } else {
              ++it;
            }
          }
        }
        closing_.clear();
      }
      std::vector<pollfd> fds;
      std::vector<std::pair<size_t, bool>> what;  // neighbour, whether a listener
      for (size_t i = 0; i < listeners_.size(); ++i) {
        if (listeners_[i] < 0) continue;
        fds.push_back({listeners_[i], POLLIN, 0});
        what.emplace_back(i, true);
      }
      for (auto& c : conns_) {
        fds.push_back({c.first, POLLIN, 0});
        what.emplace_back(c.second, false);
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (size_t j = 0; j < fds.size(); ++j) {
        if (!fds[j].revents) continue;
        if (what[j].second) {
          const int c = ::accept4(fds[j].fd, nullptr, nullptr, SOCK_NONBLOCK);
          if (c >= 0) conns_.emplace_back(c, what[j].first);
          continue;
        }
        const ssize_t r = ::recv(fds[j].fd, buf, sizeof buf, 0);
        if (r > 0) {
          std::lock_guard lock(mu_);
          data_[what[j].first].append(buf, static_cast<size_t>(r));
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          ::close(fds[j].fd);
          conns_.erase(std::find_if(conns_.begin(), conns_.end(), [&](auto& c) { return c.first == fds[j].fd; }));
        }
      }
    }
  }

  std::mutex mu_;
  std::vector<std::string> data_;  // guarded by mu_
  std::vector<size_t> closing_;    // guarded by mu_
  std::vector<int> listeners_;
  std::vector<uint16_t> ports_;
  std::vector<std::pair<int, size_t>> conns_;  // fd, neighbour (the poll thread's)
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The AT lines (without their newline) of `data` about client `id`.
std::vector<std::string> records_for(const std::string& data, const std::string& id) {
  std::vector<std::string> out;
  const std::string needle = " " + id + " ";
  for (size_t pos = 0; pos < data.size();) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) break;
    const std::string line = data.substr(pos, nl - pos);
    if (line.compare(0, 3, "AT ") == 0 && line.find(needle) != std::string::npos) out.push_back(line);
    pos = nl + 1;
  }
  return out;
}

// The names of the seen= field of a flood line, in order, duplicates kept.
std::vector<std::string> seen_names(const std::string& line) {
  std::vector<std::string> out;
  const size_t at = line.find(" seen=");
  if (at == std::string::npos) return out;
  std::string rest = line.substr(at + 6);
  rest = rest.substr(0, rest.find_first_of(" \t"));
  for (size_t pos = 0; pos <= rest.size();) {
    size_t comma = rest.find(',', pos);
    if (comma == std::string::npos) comma = rest.size();
    if (comma > pos) out.push_back(rest.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

std::string name_of(size_t k) { return "N" + std::to_string(k); }

// " seen=" and the names N<first>..N<first+count-1>.
std::string seen_field(size_t first, size_t count) {
  std::string out = " seen=";
  for (size_t k = first; k < first + count; ++k) out += (k > first ? "," : "") + name_of(k);
  return out;
}

// Offers a record for client `id` as received from `from` (empty: a client) with `extra`.
FloodRouter::Result offer(herd::Server& s, const std::string& origin, const std::string& id, const std::string& time,
                          const std::string& from, const std::string& extra) {
  const std::string record = "AT " + origin + " +0.000000001 " + id + " +34.0-118.0 " + time;
  const protocol::RecordForm form(record);
  const auto ts = protocol::parse_timestamp(time);
  REQUIRE(ts);
  return s.router().offer(id, *ts, form, from.empty() ? LocationTable::Source::kClient : LocationTable::Source::kPeer,
                          from, extra, nullptr);
}

// The backlog entry `seq` (its line copied).
struct Owed {
  uint64_t mask = 0;
  std::string line;
};
Owed entry_at(const FloodLog& log, uint64_t seq) {
  FloodLog::Cursor c = log.cursor_at(seq);
  std::string raw;
  REQUIRE(log.read(&c, &raw, 1) == FloodLog::ReadStatus::kOk);
  std::string_view view = raw;
  FloodLog::Entry e;
  REQUIRE(FloodLog::next_entry(&view, &e));
  REQUIRE(e.seq == seq);
  return {e.mask, std::string(e.line)};
}

// A server H linked to `n` fake neighbours N0..N<n-1> (link k is to Nk).
struct Hub {
  explicit Hub(size_t n) : fakes(n) {
    config.threads = 1;
    config.peer_backoff_initial_ms = 20;
    config.peer_backoff_max_ms = 200;
    config.servers.push_back({"H", "127.0.0.1", testing_net::unused_loopback_port(), testing_net::unused_loopback_port()});
    for (size_t k = 0; k < n; ++k) {
      config.servers.push_back({name_of(k), "127.0.0.1", testing_net::unused_loopback_port(), fakes.port(k)});
      config.links.push_back({"H", name_of(k)});
    }
    std::string error;
    auto log = herd::LogSink::open(tmp.path + "/H.log", 3, 1 << 22, &error);
    REQUIRE(log);
    server = std::make_unique<herd::Server>(config, "H", std::make_shared<NoPlaces>(), std::move(log));
    REQUIRE_MESSAGE(server->start(&error), error);
    REQUIRE(server->links().size() == n);
    for (size_t k = 0; k < n; ++k) REQUIRE(server->links()[k]->peer_name() == name_of(k));
  }
  ~Hub() { server->stop(); }
  bool all_up(size_t from, size_t to, bool up) {
    return wait_until([&] {
      for (size_t k = from; k < to; ++k) {
        if (server->links()[k]->up() != up) return false;
      }
      return true;
    });
  }
  // Offers a client record `id` (owed to every neighbour) and waits until each neighbour whose link is
  // up has it: what was owed to a link before it has been written to that link too.
  void flush(const std::string& id) {
    offer(*server, "H", id, "1700000999.5", "", "");
    for (size_t k = 0; k < server->links().size(); ++k) {
      if (!server->links()[k]->up()) continue;
      CHECK_MESSAGE(wait_until([&] { return !records_for(fakes.received(k), id).empty(); }), name_of(k));
    }
  }

  testing_fs::TempDir tmp{"herd-router"};
  FakeNeighbours fakes;
  herd::Config config;
  std::unique_ptr<herd::Server> server;
};

}  // namespace

TEST_SUITE("flood_router") {
  TEST_CASE("links past the mask's 64 bits share its last bit: sent more than needed, never less") {
    for (size_t k = 0; k < 63; ++k) CHECK(FloodRouter::bit_for(k) == uint64_t{1} << k);
    for (size_t k = 63; k < 200; ++k) CHECK(FloodRouter::bit_for(k) == uint64_t{1} << 63);
  }

  TEST_CASE("keeping every record: each one owed to no one is still kept whole, route remembered or not") {
    // With keep_all (a data_dir) every stored record goes into the backlog for persistence, owed to a
    // neighbour or not. The second record on the same route (no sender, no extra fields) takes the
    // remembered field: its entry must still carry the record.
    LocationTable table;
    FloodLog log(1 << 20, 1);
    FloodRouter router("S", table, log, true);
    std::vector<std::string> records;
    for (int i = 0; i < 3; ++i) {
      const std::string id = "keep-" + std::to_string(i);
      records.push_back("AT S +0.000000001 " + id + " +34.0-118.0 1700000001.5");
      const protocol::RecordForm form(records.back());
      const auto r = router.offer(id, {1700000001, 500000000}, form, LocationTable::Source::kClient, "", "", nullptr);
      REQUIRE(r.stored);
      const Owed e = entry_at(log, r.seq);
      CAPTURE(i);
      CHECK(e.mask == 0);
      CHECK(e.line == records.back() + " seen=S");
    }
  }
}

// Servers with their loops, log writers and the fake neighbours' threads: `make tsan-test` runs these.
TEST_SUITE("flood_router concurrency") {
  TEST_CASE("a server with 70 links: every record reaches every neighbour it is owed to") {
    constexpr size_t kLinks = 70;
    Hub hub(kLinks);
    herd::Server& h = *hub.server;
    REQUIRE(hub.all_up(0, kLinks, true));

    // A client's record: owed to every link, 63..69 included, and written to each exactly once.
    const auto r1 = offer(h, "H", "c-client", "1700000001.5", "", "");
    REQUIRE(r1.stored);
    const Owed e1 = entry_at(h.backlog(), r1.seq);
    for (size_t k = 0; k < kLinks; ++k) CHECK((e1.mask & FloodRouter::bit_for(k)) != 0);
    // Its set: this server, then the neighbours it is sent to, as many as a set holds.
    const auto names1 = seen_names(e1.line);
    CHECK(names1.size() == SeenSet::kMaxNames);
    CHECK(names1.front() == "H");
    CHECK(std::set<std::string>(names1.begin(), names1.end()).size() == names1.size());

    // A record from N66 (its set names only N66): owed to every other link. N66 shares bit 63 with
    // N63..N69, which are owed it, so it may be sent back to N66 (documented: more than needed).
    const auto r2 = offer(h, "N66", "c-66", "1700000002.5", "N66", " seen=N66");
    REQUIRE(r2.stored);
    const Owed e2 = entry_at(h.backlog(), r2.seq);
    for (size_t k = 0; k < kLinks; ++k) {
      if (k != 66) CHECK((e2.mask & FloodRouter::bit_for(k)) != 0);
    }
    const auto names2 = seen_names(e2.line);
    CHECK(names2.size() <= SeenSet::kMaxNames);
    CHECK(std::set<std::string>(names2.begin(), names2.end()).size() == names2.size());

    // The same record coming back (from N67, any set) is no news: not stored, nothing appended or owed.
    const uint64_t next = h.backlog().next_seq();
    CHECK_FALSE(offer(h, "N66", "c-66", "1700000002.5", "N67", seen_field(40, 30)).stored);
    CHECK_FALSE(offer(h, "N66", "c-66", "1700000002.5", "N66", "").stored);
    CHECK_FALSE(offer(h, "H", "c-client", "1700000001.5", "N69", " seen=N69").stored);
    CHECK(h.backlog().next_seq() == next);

    // A set of 40 names from N0: the first 32 (N0..N31) are read, the rest are owed the record anyway
    // (N32..N39: more than needed) and so is every neighbour the set does not name.
    const auto r3 = offer(h, "N0", "c-40", "1700000003.5", "N0", seen_field(0, 40));
    REQUIRE(r3.stored);
    const Owed e3 = entry_at(h.backlog(), r3.seq);
    for (size_t k = 0; k < kLinks; ++k) {
      CAPTURE(k);
      CHECK(((e3.mask & FloodRouter::bit_for(k)) != 0) == (k >= SeenSet::kMaxNames));
    }
    // The set it is sent on names only servers that hold the record or are sent it: those of the set
    // read (N0..N31), this server, and neighbours owed it whose links are up. (The set read is full:
    // this server cannot add itself, and is sent the record back by those it sends it to.)
    const auto names3 = seen_names(e3.line);
    CAPTURE(e3.line);
    CHECK(names3.size() <= SeenSet::kMaxNames);
    CHECK(std::set<std::string>(names3.begin(), names3.end()).size() == names3.size());
    for (const auto& n : names3) {
      CAPTURE(n);
      if (n == "H") continue;
      REQUIRE(n.size() > 1);
      const size_t k = std::stoul(n.substr(1));
      CHECK(name_of(k) == n);
      CHECK(k < kLinks);
      const bool read = k < SeenSet::kMaxNames;
      CHECK((read || (e3.mask & FloodRouter::bit_for(k)) != 0));
    }

    hub.flush("sentinel-1");
    for (size_t k = 0; k < kLinks; ++k) {
      CAPTURE(k);
      const std::string got = hub.fakes.received(k);
      CHECK(records_for(got, "c-client").size() == 1);
      if (k == 66) {
        CHECK(records_for(got, "c-66").size() <= 1);
      } else {
        CHECK(records_for(got, "c-66").size() == 1);
      }
      CHECK(records_for(got, "c-40").size() == (k >= SeenSet::kMaxNames ? 1u : 0u));
    }
  }

  TEST_CASE("a server with 70 links, most of them down: the shared bit names each neighbour once") {
    constexpr size_t kLinks = 70;
    Hub hub(kLinks);
    herd::Server& h = *hub.server;
    REQUIRE(hub.all_up(0, kLinks, true));
    for (size_t k = 0; k < 63; ++k) hub.fakes.close(k);
    REQUIRE(hub.all_up(0, 63, false));

    // From N66, whose set names N66 and N64 (both up, both sharing bit 63).
    const auto r = offer(h, "N66", "c-down", "1700000004.5", "N66", " seen=N66,N64");
    REQUIRE(r.stored);
    const Owed e = entry_at(h.backlog(), r.seq);
    // Owed to every link down (they get it when they come back) and to the shared bit.
    for (size_t k = 0; k < kLinks; ++k) CHECK((e.mask & FloodRouter::bit_for(k)) != 0);
    // Named: the sender's names, this server, and the neighbours of the shared bit (all sent it), each
    // once; never a neighbour whose link is down.
    const auto names = seen_names(e.line);
    CAPTURE(e.line);
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
    const std::set<std::string> want = {"N66", "N64", "H", "N63", "N65", "N67", "N68", "N69"};
    CHECK(std::set<std::string>(names.begin(), names.end()) == want);

    hub.flush("sentinel-2");
    for (size_t k = 63; k < kLinks; ++k) {
      CAPTURE(k);
      const auto got = records_for(hub.fakes.received(k), "c-down");
      if (k == 66 || k == 64) {
        CHECK(got.size() <= 1);  // named in the set, but on the shared bit
      } else {
        CHECK(got.size() == 1);
      }
    }
  }
  TEST_CASE("a record is never owed back to its sender, even one that sends no seen= set") {
    // A server without seen= (the asyncio reference) is not named in the set, yet it must not be sent
    // its own record back: only the other neighbour is owed it, and the line does not name the sender.
    Hub hub(2);
    herd::Server& h = *hub.server;
    REQUIRE(hub.all_up(0, 2, true));
    const auto r = offer(h, "N0", "c-plain", "1700000006.5", "N0", "");
    REQUIRE(r.stored);
    const Owed e = entry_at(h.backlog(), r.seq);
    CHECK(e.mask == FloodRouter::bit_for(1));
    CHECK(seen_names(e.line) == std::vector<std::string>{"H", "N1"});
  }

  TEST_CASE("a remembered route's seen= field is written again when a link owed the record goes down") {
    // Records of one route (here: clients' IAMATs) reuse the field worked out for the first, but only
    // while the same owed links are up: a neighbour whose link is down is never named, so that other
    // servers still deliver to it; it stays owed the record for when it comes back.
    Hub hub(2);
    herd::Server& h = *hub.server;
    REQUIRE(hub.all_up(0, 2, true));
    const auto r1 = offer(h, "H", "c-up", "1700000007.5", "", "");
    REQUIRE(r1.stored);
    CHECK(seen_names(entry_at(h.backlog(), r1.seq).line) == std::vector<std::string>{"H", "N0", "N1"});
    hub.fakes.close(1);
    REQUIRE(hub.all_up(1, 2, false));
    const auto r2 = offer(h, "H", "c-down", "1700000008.5", "", "");
    REQUIRE(r2.stored);
    const Owed e2 = entry_at(h.backlog(), r2.seq);
    CHECK(e2.mask == (FloodRouter::bit_for(0) | FloodRouter::bit_for(1)));
    CHECK(seen_names(e2.line) == std::vector<std::string>{"H", "N0"});
  }

  TEST_CASE("a set of 40 names in a herd of three: each server stores the record once and the flood ends") {
    // A, B and C in a triangle; X, A's fourth neighbour, never runs: the record comes "from" it with a
    // set of 40 names of no server here. The set A reads is full (32), so A cannot add itself nor B
    // and C: B and C each pass it to the other (and may to A), more than needed; the copies that come
    // back are no news and go no further.
    testing_fs::TempDir tmp("herd-seen40");
    herd::Config config;
    config.threads = 1;
    config.peer_backoff_initial_ms = 20;
    config.peer_backoff_max_ms = 200;
    for (const char* n : {"A", "B", "C", "X"}) {
      config.servers.push_back({n, "127.0.0.1", testing_net::unused_loopback_port(), testing_net::unused_loopback_port()});
    }
    config.links = {{"A", "B"}, {"B", "C"}, {"A", "C"}, {"A", "X"}};
    std::vector<std::unique_ptr<herd::Server>> s;
    std::string error;
    for (const char* n : {"A", "B", "C"}) {
      auto log = herd::LogSink::open(tmp.path + "/" + n + ".log", 3, 1 << 22, &error);
      REQUIRE(log);
      s.push_back(std::make_unique<herd::Server>(config, n, std::make_shared<NoPlaces>(), std::move(log)));
      REQUIRE_MESSAGE(s.back()->start(&error), error);
    }
    REQUIRE(wait_until([&] {
      for (auto& srv : s) {
        for (auto& link : srv->links()) {
          if (link->peer_name() != "X" && !link->up()) return false;
        }
      }
      return true;
    }));

    std::string bogus = " seen=X";
    for (int i = 0; i < 39; ++i) bogus += ",Z" + std::to_string(i);
    REQUIRE(offer(*s[0], "X", "c-z", "1700000005.5", "X", bogus).stored);
    for (auto& srv : s) {
      CHECK(wait_until([&] { std::string r; return srv->table().lookup("c-z", &r, nullptr); }));
    }
    // Then a sentinel from each server: once every server holds all three, every copy of c-z any
    // server sent was written (a link writes its backlog in order).
    for (size_t i = 0; i < s.size(); ++i) {
      offer(*s[i], std::string(1, static_cast<char>('A' + i)), "sentinel-" + std::to_string(i), "1700000999.5", "", "");
    }
    for (auto& srv : s) {
      for (const char* id : {"sentinel-0", "sentinel-1", "sentinel-2"}) {
        CAPTURE(id);
        CHECK(wait_until([&] { std::string r; return srv->table().lookup(id, &r, nullptr); }));
      }
    }
    std::string first;
    REQUIRE(s[0]->table().lookup("c-z", &first, nullptr));
    auto sent = [&] {
      uint64_t n = 0;
      for (auto& srv : s) {
        for (auto& link : srv->links()) n += link->records_sent();
      }
      return n;
    };
    const uint64_t sent_then = sent();
    std::this_thread::sleep_for(500ms);
    CHECK(sent() == sent_then);  // the flood has ended
    for (auto& srv : s) {
      std::string got;
      REQUIRE(srv->table().lookup("c-z", &got, nullptr));
      CHECK(got == first);
      // Stored once: one backlog entry for it, owed to each neighbour at most once.
      FloodLog::Cursor c = srv->backlog().cursor_at(srv->backlog().oldest_seq());
      int entries = 0;
      for (;;) {
        std::string raw;
        REQUIRE(srv->backlog().read(&c, &raw, 1 << 16) == FloodLog::ReadStatus::kOk);
        if (raw.empty()) break;
        std::string_view view = raw;
        FloodLog::Entry e;
        while (FloodLog::next_entry(&view, &e)) {
          if (e.kind == FloodLog::Kind::kRecord && e.line.find(" c-z ") != std::string_view::npos) {
            ++entries;
            // The set it is sent on never names more than a set holds.
            CHECK(seen_names(std::string(e.line)).size() <= SeenSet::kMaxNames);
          }
        }
      }
      CHECK(entries == 1);
    }
    // Each server sent it at most once to each neighbour: 6 sends at most, and the sentinels' 6.
    CHECK(sent() <= 12);
    for (auto& srv : s) srv->stop();
  }
}
