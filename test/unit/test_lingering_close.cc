// The lingering close (reactor/lingering_close.h): a connection closed once its output is written,
// with input it never read, still delivers every byte and a FIN, not a reset; and a peer that never
// finishes is cut off at the bound; and no more than kMaxSockets sockets linger in one loop.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "reactor/event_loop.h"
#include "reactor/lingering_close.h"
#include "reactor/socket.h"
#include "reactor/tcp_connection.h"
#include "test/unit/loop_runner.h"

using namespace std::chrono_literals;

namespace {

// Answers the first bytes it gets with `reply`, then closes once that is written, reading nothing
// more (as a session does after a line over the limit).
struct ReplyThenClose : reactor::ConnectionHandler {
  explicit ReplyThenClose(std::string r) : reply(std::move(r)) {}
  size_t on_data(reactor::Connection& c, std::string_view data) override {
    if (!replied) {
      replied = true;
      c.send(reply);
      c.close_when_flushed("replied");
    }
    return data.size();
  }
  void on_eof(reactor::Connection& c, std::string_view) override { c.close("eof"); }
  void on_closed(reactor::Connection&, std::string_view) override { closed = true; }

  std::string reply;
  bool replied = false;
  std::atomic<bool> closed{false};
};

// A connected loopback pair: *client (blocking, with a small receive buffer, so that most of a large
// reply waits in the server's kernel) and the server's accepted, non-blocking end.
int connected_pair(int* client) {
  reactor::SocketAddress addr;
  std::string error;
  REQUIRE(reactor::resolve("127.0.0.1", 0, &addr, &error));
  const int lfd = reactor::listen_tcp(addr, 4, &error);
  REQUIRE(lfd >= 0);
  socklen_t len = sizeof addr.storage;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr.storage), &len);
  addr.length = len;
  *client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(*client >= 0);
  const int small = 4096;
  ::setsockopt(*client, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  REQUIRE(::connect(*client, reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) == 0);
  const int server = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  REQUIRE(server >= 0);
  ::close(lfd);
  return server;
}

// Reads until the end of the stream or an error; returns the bytes, with *end_error 0 for a FIN.
size_t read_to_end(int fd, int* end_error, std::chrono::microseconds pause = 0us) {
  char buf[65536];
  size_t got = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
      if (pause.count()) std::this_thread::sleep_for(pause);
      continue;
    }
    *end_error = n == 0 ? 0 : errno;
    return got;
  }
}

// What the far end of a socket handed to close_lingering sees: "lingering" (its sending side shut:
// the far end reads the end of the stream, and its own writes are still taken), "closed" (the end
// of the stream, and a write fails with EPIPE), or what else it saw. Writes one byte when lingering.
std::string state_seen_from(int peer) {
  char c;
  const ssize_t r = ::recv(peer, &c, 1, MSG_DONTWAIT);
  if (r != 0) return r > 0 ? "bytes to read" : std::string("recv: ") + std::strerror(errno);
  const ssize_t w = ::send(peer, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w == 1) return "lingering";
  if (w < 0 && errno == EPIPE) return "closed";
  return std::string("send: ") + std::strerror(errno);
}

}  // namespace

TEST_SUITE("reactor") {
  TEST_CASE("a reply closed with unread input behind it arrives whole, ended by a FIN") {
    int client = -1;
    const int server = connected_pair(&client);
    const timeval five_s{5, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &five_s, sizeof five_s);
    reactor::EventLoop loop;
    ReplyThenClose handler(std::string(1'000'000, 'r'));
    reactor::TcpConnection* conn = nullptr;
    loop.queue([&] {
      conn = new reactor::TcpConnection(loop, server, handler);
      conn->start();
    });
    std::thread runner([&] { loop.run(); });
    // The request, then more the server never reads (a line over the limit, a body after a refusal).
    const std::string request(200'000, 'q');
    size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n = ::send(client, request.data() + sent, request.size() - sent, MSG_DONTWAIT);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    REQUIRE(sent > 0);
    std::this_thread::sleep_for(300ms);  // the reply is queued and the close is asked for
    int end_error = -1;
    const size_t got = read_to_end(client, &end_error, 200us);
    CHECK(got == handler.reply.size());
    INFO("the stream ended with: ", std::string(std::strerror(end_error)));
    CHECK(end_error == 0);
    ::close(client);  // the peer's FIN ends the lingering
    for (int i = 0; i < 500 && !handler.closed; ++i) std::this_thread::sleep_for(1ms);
    CHECK(handler.closed);
    loop.queue([&] {
      loop.defer([conn] { delete conn; });
      loop.stop();
    });
    runner.join();
  }

  TEST_CASE("a peer that never finishes is cut off at the lingering bound") {
    int client = -1;
    const int server = connected_pair(&client);
    reactor::EventLoop loop;
    ReplyThenClose handler("bye\n");
    reactor::TcpConnection* conn = nullptr;
    loop.queue([&] {
      conn = new reactor::TcpConnection(loop, server, handler);
      conn->start();
    });
    std::thread runner([&] { loop.run(); });
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(::send(client, "hello\n", 6, 0) == 6);
    int end_error = -1;
    CHECK(read_to_end(client, &end_error) == 4);
    CHECK(end_error == 0);  // the FIN comes at once, after the reply
    // The client keeps its side open and keeps talking. While the server lingers its bytes are
    // read and dropped; once it has closed, the next ones are answered with a reset.
    auto reset_at = start;
    for (int i = 0; i < 100; ++i) {
      if (::send(client, "more\n", 5, MSG_NOSIGNAL) < 0) {
        reset_at = std::chrono::steady_clock::now();
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    REQUIRE_MESSAGE(reset_at != start, "the server never closed its side");
    CHECK(reset_at - start >= reactor::LingeringClose::kMaxLinger);
    ::close(client);
    loop.queue([&] {
      loop.defer([conn] { delete conn; });
      loop.stop();
    });
    runner.join();
  }

  TEST_CASE("at most kMaxSockets sockets linger per loop; one more is closed at once") {
    // AF_UNIX pairs: shutdown(SHUT_WR) and close are told apart from the far end at once, with no
    // timing involved. The loop runs on this thread (run_on), so between the hand-overs and the
    // checks it is not running: no lingering socket can reach its kMaxLinger meanwhile.
    constexpr size_t kBound = reactor::LingeringClose::kMaxSockets;
    static_assert(kBound == 16, "the documented bound");
    struct Pair {
      int handed = -1;  // given to close_lingering (non-blocking, as a connection's socket is)
      int peer = -1;    // the test's end
    };
    const auto make_pair = [] {
      int sv[2];
      REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
      REQUIRE(::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK) == 0);
      return Pair{sv[0], sv[1]};
    };
    std::vector<Pair> pairs;
    for (size_t i = 0; i < kBound + 4; ++i) pairs.push_back(make_pair());
    {
      reactor::EventLoop loop;
      testing_loop::run_on(loop, [&] {
        for (const Pair& p : pairs) loop.close_lingering(p.handed);
      });
      for (size_t i = 0; i < pairs.size(); ++i) {
        INFO("socket ", i + 1, " of ", pairs.size());
        CHECK(state_seen_from(pairs[i].peer) == std::string(i < kBound ? "lingering" : "closed"));
      }

      // A socket that stops lingering (its peer finishes) frees its place for the next one.
      REQUIRE(::shutdown(pairs[0].peer, SHUT_WR) == 0);
      CHECK(testing_loop::run_until(loop, [&] {
        return ::send(pairs[0].peer, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EPIPE;
      }));
      const Pair more[2] = {make_pair(), make_pair()};
      testing_loop::run_on(loop, [&] {
        for (const Pair& p : more) loop.close_lingering(p.handed);
      });
      CHECK(state_seen_from(more[0].peer) == "lingering");
      CHECK(state_seen_from(more[1].peer) == "closed");
      pairs.push_back(more[0]);
      pairs.push_back(more[1]);
    }
    // The loop is gone: every socket still lingering was closed with it.
    for (size_t i = 0; i < pairs.size(); ++i) {
      const ssize_t sent = ::send(pairs[i].peer, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
      const int error = errno;
      INFO("socket ", i + 1);
      CHECK(sent < 0);
      CHECK(error == EPIPE);
    }
    for (const Pair& p : pairs) ::close(p.peer);
  }
}
