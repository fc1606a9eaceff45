// Catch-up and persistence end to end, in one process: two linked Servers (two loops each) with a
// data_dir and fsync: always, clients on several threads, then one server stopped, updates made
// without it, and the server started again from its data: it must be caught up by a replay. Suite
// "catch_up server concurrency": under ThreadSanitizer this covers the backlog, the router, the
// catch-up sender and receiver, the persistence writer and its durability waiters, and recovery.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "herd/flood_router.h"
#include "herd/log_sink.h"
#include "herd/server.h"
#include "protocol/packed_record.h"
#include "protocol/timestamp.h"
#include "test/unit/free_port.h"
#include "test/unit/no_places.h"
#include "test/unit/temp_dir.h"

using namespace std::chrono_literals;

using testing_net::unused_loopback_port;
using testing_places::NoPlaces;

namespace {

// Sends `n` pipelined IAMATs for clients prefix0..prefix<n-1> and counts the AT replies.
int iamats(uint16_t port, const std::string& prefix, int n, int t) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return 0;
  }
  std::string req;
  for (int i = 0; i < n; ++i) req += "IAMAT " + prefix + std::to_string(i) + " +1.5-2.5 " + std::to_string(t) + ".5\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string got;
  char buf[65536];
  while (std::count(got.begin(), got.end(), '\n') < n) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    got.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  int ok = 0;
  for (size_t pos = 0; pos < got.size();) {
    size_t nl = got.find('\n', pos);
    if (nl == std::string::npos) break;
    if (got.compare(pos, 3, "AT ") == 0) ++ok;
    pos = nl + 1;
  }
  return ok;
}

bool wait_size(herd::Server& s, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (s.table().size() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  return s.table().size() >= n;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The neighbour "N" of a server under test, played by the test: it listens on N's peer port, takes
// the server's link, reads its hello and SYNC line, answers as the test says, and keeps what the
// server then sends up to its first MARK (sent once the catch-up is complete).
class FakeAcceptor {
 public:
  FakeAcceptor() : port_(unused_loopback_port()) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listener_, 4) == 0);
  }
  ~FakeAcceptor() {
    if (conn_ >= 0) ::close(conn_);
    ::close(listener_);
  }
  uint16_t port() const { return port_; }

  // Takes the link and reads its first two lines; the run of the SYNC line, or "" on failure.
  std::string accept_sync() {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return "";
    conn_ = ::accept(listener_, nullptr, nullptr);
    if (conn_ < 0) return "";
    timeval tv{10, 0};
    ::setsockopt(conn_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string hello = line(), sync = line();
    if (hello.rfind("HERD ", 0) != 0 || sync.rfind("SYNC ", 0) != 0) return "";
    sync = sync.substr(5);
    return sync.substr(0, sync.find(' '));
  }
  void answer(const std::string& text) { ::send(conn_, text.data(), text.size(), MSG_NOSIGNAL); }
  // The lines received after the answer, up to and with the first MARK.
  std::vector<std::string> through_mark() {
    std::vector<std::string> out;
    for (;;) {
      std::string l = line();
      if (l.empty()) break;  // timed out or closed
      out.push_back(l);
      if (l.rfind("MARK ", 0) == 0) break;
    }
    return out;
  }

 private:
  // The next line without its newline ("" when none comes).
  std::string line() {
    for (;;) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      char chunk[65536];
      const ssize_t r = ::recv(conn_, chunk, sizeof chunk, 0);
      if (r <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(r));
    }
  }

  uint16_t port_;
  int listener_ = -1;
  int conn_ = -1;
  std::string buf_;
};

// A server "H" linked to N (a FakeAcceptor) and to M (never running), with one loop.
struct LinkedToFake {
  explicit LinkedToFake(size_t backlog_bytes = 16 << 20) {
    config.threads = 1;
    config.peer_backoff_initial_ms = 20;
    config.peer_backoff_max_ms = 100;
    config.limits.peer_backlog_bytes = backlog_bytes;
    config.servers.push_back({"H", "127.0.0.1", unused_loopback_port(), unused_loopback_port()});
    config.servers.push_back({"N", "127.0.0.1", unused_loopback_port(), n.port()});
    config.servers.push_back({"M", "127.0.0.1", unused_loopback_port(), unused_loopback_port()});
    config.links = {{"H", "N"}, {"H", "M"}};
    std::string error;
    auto log = herd::LogSink::open(tmp.path + "/H.log", 3, 1 << 22, &error);
    REQUIRE(log);
    server = std::make_unique<herd::Server>(config, "H", std::make_shared<NoPlaces>(), std::move(log));
    REQUIRE_MESSAGE(server->start(&error), error);
  }
  ~LinkedToFake() { server->stop(); }
  // Offers client `id`'s record as a client's IAMAT (from "") or as flooded by neighbour `from`.
  bool offer(const std::string& id, const std::string& from) {
    const std::string record = "AT " + (from.empty() ? std::string("H") : from) + " +0.000000001 " + id +
                               " +34.0-118.0 1700000001.5";
    const std::string extra = from.empty() ? "" : " seen=" + from;
    const protocol::RecordForm form(record);
    return server->router()
        .offer(id, {1700000001, 500000000}, form,
               from.empty() ? herd::LocationTable::Source::kClient : herd::LocationTable::Source::kPeer, from,
               extra, nullptr)
        .stored;
  }

  testing_fs::TempDir tmp{"herd-cu-fake"};
  FakeAcceptor n;
  herd::Config config;
  std::unique_ptr<herd::Server> server;
};

// Whether some line of `lines` is client `id`'s record.
bool has_record(const std::vector<std::string>& lines, const std::string& id) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) {
    return l.rfind("AT ", 0) == 0 && l.find(" " + id + " ") != std::string::npos;
  });
}

}  // namespace

TEST_SUITE("catch_up server concurrency") {
  TEST_CASE("SYNC-FROM ... ALL: the replay carries also the records the neighbour itself sent") {
    // README: a neighbour that restarted from its data_dir answers ALL, "and the replay carries every
    // current record, also those that came from the acceptor or through it".
    LinkedToFake f;
    // Stored before the answer (the link sends nothing until it comes): one from a client, owed to
    // N, and one N sent (owed to M only).
    REQUIRE(f.offer("from-client", ""));
    REQUIRE(f.offer("from-n", "N"));
    const std::string run = f.n.accept_sync();
    REQUIRE_FALSE(run.empty());
    f.n.answer("SYNC-FROM " + run + " 0 ALL\n");
    const auto got = f.n.through_mark();
    CAPTURE(got.size());
    REQUIRE_FALSE(got.empty());
    CHECK(got.back().rfind("MARK ", 0) == 0);
    CHECK(has_record(got, "from-client"));
    CHECK(has_record(got, "from-n"));
  }

  TEST_CASE("SYNC-FROM claiming a seq this run has not stored yet gets a full transfer") {
    // README: a full transfer when the acceptor "claims a seq this run has not stored yet": the seq
    // the next record would get is one such.
    LinkedToFake f;
    REQUIRE(f.offer("stored-1", ""));
    REQUIRE(f.offer("stored-2", ""));
    const std::string run = f.n.accept_sync();
    REQUIRE_FALSE(run.empty());
    f.n.answer("SYNC-FROM " + run + " " + std::to_string(f.server->backlog().next_seq()) + "\n");
    const auto got = f.n.through_mark();
    REQUIRE_FALSE(got.empty());
    CHECK(got.back().rfind("MARK ", 0) == 0);
    CHECK(has_record(got, "stored-1"));
    CHECK(has_record(got, "stored-2"));
  }

  TEST_CASE("SYNC-FROM just below the oldest seq held is a replay, not a full transfer") {
    // The backlog still reaches back to seq resume + 1 when that is its oldest entry: only what the
    // neighbour lacks is replayed. (A full transfer would send the clients whose entries were evicted.)
    LinkedToFake f(4096);
    for (int i = 0; i < 200; ++i) REQUIRE(f.offer("c" + std::to_string(i), ""));
    const uint64_t oldest = f.server->backlog().oldest_seq();
    REQUIRE(oldest > 1);
    const std::string run = f.n.accept_sync();
    REQUIRE_FALSE(run.empty());
    REQUIRE(f.server->backlog().oldest_seq() == oldest);
    f.n.answer("SYNC-FROM " + run + " " + std::to_string(oldest - 1) + "\n");
    const auto got = f.n.through_mark();
    REQUIRE_FALSE(got.empty());
    CHECK(got.back().rfind("MARK ", 0) == 0);
    CHECK(has_record(got, "c199"));     // the newest: in the backlog
    CHECK_FALSE(has_record(got, "c0"));  // evicted from the backlog: the neighbour holds it
  }

  TEST_CASE("two servers with data dirs: durable replies, a restart from disk, a replay") {
    testing_fs::TempDir tmp("herd-cu");
    const std::string dir = tmp.path;
    herd::Config config;
    config.threads = 2;
    config.peer_backoff_initial_ms = 20;
    config.peer_backoff_max_ms = 100;
    config.data_dir = dir + "/data";
    config.fsync = "always";
    config.servers.push_back({"A", "127.0.0.1", unused_loopback_port(), unused_loopback_port()});
    config.servers.push_back({"B", "127.0.0.1", unused_loopback_port(), unused_loopback_port()});
    config.links.push_back({"A", "B"});
    auto places = std::make_shared<NoPlaces>();
    std::string error;
    auto make = [&](const char* name) {
      auto log = herd::LogSink::open(dir + "/" + name + ".log", 3, 1 << 22, &error);
      REQUIRE(log);
      return std::make_unique<herd::Server>(config, name, places, std::move(log));
    };
    auto a = make("A");
    auto b = make("B");
    REQUIRE_MESSAGE(a->start(&error), error);
    REQUIRE_MESSAGE(b->start(&error), error);

    std::atomic<int> answered{0};
    std::vector<std::thread> pool;
    for (int c = 0; c < 3; ++c) {
      pool.emplace_back([&, c] {
        answered += iamats(config.servers[c % 2].port, "c" + std::to_string(c) + "-", 200, 1000 + c);
      });
    }
    for (auto& t : pool) t.join();
    CHECK(answered.load() == 600);
    CHECK(wait_size(*a, 600));
    CHECK(wait_size(*b, 600));

    // B goes away; A takes more without it.
    b->stop();
    b.reset();
    CHECK(iamats(config.servers[0].port, "late-", 300, 2000) == 300);

    // B again, from its data: it holds the first 600 at once and gets the rest replayed.
    b = make("B");
    REQUIRE_MESSAGE(b->start(&error), error);
    CHECK(b->table().size() >= 600);
    CHECK(wait_size(*b, 900));
    std::string rec_a, rec_b;
    REQUIRE(a->table().lookup("late-299", &rec_a, nullptr));
    REQUIRE(b->table().lookup("late-299", &rec_b, nullptr));
    CHECK(rec_a == rec_b);
    a->stop();
    b->stop();
    std::string log_a = slurp(dir + "/A.log");
    CHECK(log_a.find("B * catch-up: replaying backlog seqs") != std::string::npos);
  }
}
