// Two real Servers in one process (two loops each, linked), hammered by client threads: every
// IAMAT must be answered and every update must reach the other server, over a plaintext and over a
// TLS peer link. Suite "concurrency": under ThreadSanitizer this covers the sessions, the cross-loop
// flood queues, the table, the log lanes and the peer TLS paths.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "herd/log_sink.h"
#include "herd/server.h"
#include "test/unit/test_certs.h"

using namespace std::chrono_literals;

namespace {

// A places provider that answers at once with a fixed, valid JSON object.
struct FixedPlaces : places::PlacesProvider {
  void nearby(reactor::EventLoop&, const places::PlacesQuery&, Done done) override {
    done("{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}");
  }
};

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

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
    char dir_template[] = "/tmp/herd-unit-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    std::string dir = dir_template;

    herd::Config config;
    config.threads = 2;
    config.peer_backoff_initial_ms = 20;
    config.peer_backoff_max_ms = 100;
    config.servers.push_back({"A", "127.0.0.1", free_port(), free_port()});
    config.servers.push_back({"B", "127.0.0.1", free_port(), free_port()});
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
    CHECK(good_replies.load() == clients * per_client);

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
    std::string cleanup = "rm -rf '" + dir + "'";
    CHECK(std::system(cleanup.c_str()) == 0);
  }
}
