// Catch-up and persistence end to end, in one process: two linked Servers (two loops each) with a
// data_dir and fsync: always, clients on several threads, then one server stopped, updates made
// without it, and the server started again from its data: it must be caught up by a replay. Suite
// "catch_up server concurrency": under ThreadSanitizer this covers the backlog, the router, the
// catch-up sender and receiver, the persistence writer and its durability waiters, and recovery.
#include <doctest/doctest.h>

#include <netinet/in.h>
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

#include "herd/log_sink.h"
#include "herd/server.h"
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

}  // namespace

TEST_SUITE("catch_up server concurrency") {
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
