// Two real Servers in one process (two loops each, linked), hammered by client threads: every
// IAMAT must be answered and every update must reach the other server, over a plaintext and over a
// TLS peer link. Then one server with two loops under each accept mode, taking short connections
// from two threads. Suite "concurrency": under ThreadSanitizer this covers the sessions, the
// cross-loop flood queues and hand-offs, the table, the log lanes and the peer TLS paths.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "herd/log_sink.h"
#include "herd/metrics.h"
#include "herd/server.h"
#include "test/unit/free_port.h"
#include "test/unit/temp_dir.h"
#include "test/unit/test_certs.h"

using namespace std::chrono_literals;

using testing_net::unused_loopback_port;

namespace {

// A places provider that answers at once with a fixed, valid JSON object.
struct FixedPlaces : places::PlacesProvider {
  void nearby(reactor::EventLoop&, const places::PlacesQuery&, Done done, Wanted = {}) override {
    done("{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}");
  }
};

int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` and reads until `lines` newline-terminated lines arrived (or a timeout).
std::string exchange(int fd, const std::string& request, int lines) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return "";
  std::string got;
  char buf[65536];
  while (std::count(got.begin(), got.end(), '\n') < lines) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

}  // namespace

TEST_SUITE("concurrency") {
  TEST_CASE("two linked servers under concurrent clients: all answered, all flooded") {
    testing_fs::TempDir tmp;
    const std::string dir = tmp.path;

    herd::Config config;
    config.threads = 2;
    config.peer_backoff_initial_ms = 20;
    config.peer_backoff_max_ms = 100;
    config.servers.push_back({"A", "127.0.0.1", unused_loopback_port(), unused_loopback_port()});
    config.servers.push_back({"B", "127.0.0.1", unused_loopback_port(), unused_loopback_port()});
    config.links.push_back({"A", "B"});
    bool tls = false;
    SUBCASE("plaintext peer link") {}
    SUBCASE("TLS peer link") { tls = true; }
    if (tls) {
      const auto& certs = testcerts::herd();
      config.peer_tls = herd::PeerTlsConfig{certs.ca(), certs.dir + "/{name}.pem", certs.dir + "/{name}.key"};
    }

    auto places = std::make_shared<FixedPlaces>();
    std::string error;
    auto log_a = herd::LogSink::open(dir + "/A.log", 3, 1 << 20, &error);
    auto log_b = herd::LogSink::open(dir + "/B.log", 3, 1 << 20, &error);
    REQUIRE(log_a);
    REQUIRE(log_b);
    herd::Server a(config, "A", places, std::move(log_a));
    herd::Server b(config, "B", places, std::move(log_b));
    REQUIRE_MESSAGE(a.start(&error), error);
    REQUIRE_MESSAGE(b.start(&error), error);
    CHECK((a.peer_tls() != nullptr) == tls);

    // Scrapes (the admin endpoint's /metrics and dashboard JSON) read the per-loop counters while
    // the loops write them. The scraper starts first and the clients wait for its first scrape, so
    // on a loaded machine the clients cannot all finish before it has run (the check below).
    std::atomic<bool> scraping{true};
    std::atomic<int> scrapes{0};
    std::thread scraper([&] {
      do {
        std::string m = herd::render_metrics(a) + herd::render_dashboard_json(a);
        if (m.find("herd_commands_total") != std::string::npos) scrapes.fetch_add(1);
      } while (scraping.load());
    });
    for (int waited = 0; scrapes.load() == 0 && waited < 10000; ++waited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const int clients = 4, per_client = 300;
    std::atomic<int> good_replies{0};
    std::vector<std::thread> pool;
    for (int c = 0; c < clients; ++c) {
      pool.emplace_back([&, c] {
        int fd = dial(config.servers[0].port);
        if (fd < 0) return;
        // Pipelined bursts of 30 IAMATs for distinct IDs.
        for (int burst = 0; burst < per_client / 30; ++burst) {
          std::string req;
          for (int i = 0; i < 30; ++i) {
            int k = burst * 30 + i;
            req += "IAMAT c" + std::to_string(c) + "-" + std::to_string(k) + " +10.5-20.25 " +
                   std::to_string(1000 + k) + ".5\n";
          }
          std::string got = exchange(fd, req, 30);
          size_t pos = 0;
          for (int i = 0; i < 30; ++i) {
            size_t nl = got.find('\n', pos);
            if (nl == std::string::npos) break;
            std::string line = got.substr(pos, nl - pos);
            int k = burst * 30 + i;
            std::string tail = " c" + std::to_string(c) + "-" + std::to_string(k) + " +10.5-20.25 " +
                               std::to_string(1000 + k) + ".5";
            if (line.rfind("AT A ", 0) == 0 && line.size() > tail.size() &&
                line.compare(line.size() - tail.size(), tail.size(), tail) == 0) {
              good_replies.fetch_add(1);
            }
            pos = nl + 1;
          }
        }
        ::close(fd);
      });
    }
    for (auto& t : pool) t.join();
    scraping.store(false);
    scraper.join();
    CHECK(scrapes.load() > 0);
    CHECK(good_replies.load() == clients * per_client);
    const std::string metrics = herd::render_metrics(a);
    CHECK(metrics.find("herd_commands_total{command=\"IAMAT\",result=\"ok\"} " +
                       std::to_string(clients * per_client) + "\n") != std::string::npos);

    // Every record reaches B (polled: flooding is asynchronous).
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (b.table().size() < static_cast<size_t>(clients * per_client) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    CHECK(b.table().size() == static_cast<size_t>(clients * per_client));
    std::string rec_a, rec_b;
    REQUIRE(a.table().lookup("c3-299", &rec_a, nullptr));
    REQUIRE(b.table().lookup("c3-299", &rec_b, nullptr));
    CHECK(rec_a == rec_b);

    // WHATSAT at B answers with A's record, byte for byte.
    int fd = dial(config.servers[1].port);
    REQUIRE(fd >= 0);
    std::string got = exchange(fd, "WHATSAT c3-299 5 3\n", 6);
    ::close(fd);
    CHECK(got.rfind(rec_a + "\n{", 0) == 0);
    CHECK(got.size() > 3);
    CHECK(got.substr(got.size() - 3) == "}\n\n");

    a.stop();
    b.stop();
  }

  TEST_CASE("accept modes: two loops take short connections, answer each, and both run clients") {
    testing_fs::TempDir tmp;
    const std::string dir = tmp.path;
    herd::Config config;
    config.threads = 2;
    config.servers.push_back({"A", "127.0.0.1", unused_loopback_port(), unused_loopback_port()});
    bool reuseport = false;
    SUBCASE("exclusive") {}
    SUBCASE("reuseport") { reuseport = true; }
    config.accept = reuseport ? herd::AcceptMode::kReusePort : herd::AcceptMode::kExclusive;
    std::string error;
    auto log = herd::LogSink::open(dir + "/A.log", 3, 1 << 20, &error);
    REQUIRE(log);
    herd::Server a(config, "A", std::make_shared<FixedPlaces>(), std::move(log));
    REQUIRE_MESSAGE(a.start(&error), error);

    // Bound before start() returned: with reuseport, one socket per loop on the same port, which
    // keeps another server out as firmly as the single socket does.
    herd::Config twin = config;
    auto log2 = herd::LogSink::open(dir + "/A2.log", 3, 1 << 20, &error);
    REQUIRE(log2);
    herd::Server second(twin, "A", std::make_shared<FixedPlaces>(), std::move(log2));
    CHECK_FALSE(second.start(&error));
    CHECK(error.find("cannot listen for clients on 127.0.0.1:" + std::to_string(config.servers[0].port)) == 0);
    CHECK(error.find("in use") != std::string::npos);

    // 2 threads × 40 connections, each: connect, one IAMAT, its reply, close. The source ports
    // differ, so the kernel's hash sends some to each loop (all 80 to one: probability 2^-79).
    const int threads = 2, per_thread = 40;
    std::atomic<int> answered{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (int k = 0; k < per_thread; ++k) {
          int fd = dial(config.servers[0].port);
          if (fd < 0) continue;
          const std::string id = "s" + std::to_string(t) + "-" + std::to_string(k);
          std::string got = exchange(fd, "IAMAT " + id + " +10.5-20.25 1000.5\n", 1);
          if (got.rfind("AT A ", 0) == 0 && got.find(" " + id + " +10.5-20.25 1000.5\n") != std::string::npos) {
            answered.fetch_add(1);
          }
          ::close(fd);
        }
      });
    }
    for (auto& t : pool) t.join();
    CHECK(answered.load() == threads * per_thread);

    // Per loop: who took each connection from the kernel, and who ran it.
    const std::string m = herd::render_metrics(a);
    auto counter = [&m](const std::string& name, int loop) -> long {
      const std::string key = name + "{loop=\"" + std::to_string(loop) + "\"} ";
      size_t at = m.find(key);
      return at == std::string::npos ? -1 : std::stol(m.substr(at + key.size()));
    };
    const long accepts0 = counter("herd_loop_client_accepts_total", 0);
    const long accepts1 = counter("herd_loop_client_accepts_total", 1);
    const long sessions0 = counter("herd_loop_client_sessions_total", 0);
    const long sessions1 = counter("herd_loop_client_sessions_total", 1);
    CHECK(accepts0 + accepts1 == threads * per_thread);
    CHECK(sessions0 + sessions1 == threads * per_thread);
    if (reuseport) {
      // No hand-off: each loop runs what its own socket accepted, and the hash gave both some.
      CHECK(sessions0 == accepts0);
      CHECK(sessions1 == accepts1);
      CHECK(accepts0 > 0);
      CHECK(accepts1 > 0);
    } else {
      // Whichever loop woke, the round-robin hand-off splits the sessions exactly.
      CHECK(sessions0 == threads * per_thread / 2);
      CHECK(sessions1 == threads * per_thread / 2);
    }
    a.stop();
    // stop() closed every listening socket: the port can be bound again at once.
    herd::Config again = config;
    again.accept = herd::AcceptMode::kExclusive;
    auto log3 = herd::LogSink::open(dir + "/A3.log", 3, 1 << 20, &error);
    REQUIRE(log3);
    herd::Server third(again, "A", std::make_shared<FixedPlaces>(), std::move(log3));
    CHECK_MESSAGE(third.start(&error), error);
    third.stop();
  }
}
