// The reactor: timers, the cross-thread task queue (suite "concurrency", run under
// ThreadSanitizer), connections over socketpairs (partial writes, backpressure, half-close), and
// the connector's backoff, SO_REUSEPORT listening groups.
#include <doctest/doctest.h>

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "reactor/backoff.h"
#include "reactor/tcp_connection.h"
#include "reactor/connector.h"
#include "reactor/event_loop.h"
#include "reactor/input.h"
#include "reactor/listener.h"
#include "reactor/loop_group.h"
#include "reactor/socket.h"
#include "test/unit/free_port.h"

using namespace std::chrono_literals;
using reactor::EventLoop;

namespace {

// A handler that records what a connection tells it and consumes whole lines only.
struct Recorder : reactor::ConnectionHandler {
  std::string lines;
  std::string eof_rest;
  bool eof = false;
  bool closed = false;
  std::string reason;
  int drained = 0;
  size_t on_data(reactor::Connection&, std::string_view data) override {
    size_t last = data.rfind('\n');
    if (last == std::string_view::npos) return 0;
    lines.append(data.substr(0, last + 1));
    return last + 1;
  }
  void on_eof(reactor::Connection& c, std::string_view rest) override {
    eof = true;
    eof_rest = rest;
    c.close("eof");
  }
  void on_drained(reactor::Connection&) override { ++drained; }
  void on_closed(reactor::Connection&, std::string_view why) override {
    closed = true;
    reason = why;
  }
};

// Runs `loop` on this thread until `done` or the deadline; returns whether done.
template <typename Done>
bool spin(EventLoop& loop, Done done, std::chrono::milliseconds limit = 3000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  bool ok = false;
  std::function<void()> check;
  check = [&] {
    if (done()) {
      ok = true;
      loop.stop();
    } else if (std::chrono::steady_clock::now() > deadline) {
      loop.stop();
    }
  };
  EventLoop::TimerId id = 0;
  loop.queue([&] { id = loop.run_every(1ms, check); });
  loop.run();
  loop.cancel(id);  // the check refers to this frame
  return ok;
}

}  // namespace

TEST_SUITE("reactor") {
  TEST_CASE("timers fire in deadline order and cancelled ones never fire") {
    EventLoop loop;
    std::vector<int> fired;
    loop.queue([&] {
      loop.run_after(30ms, [&] { fired.push_back(3); });
      loop.run_after(10ms, [&] { fired.push_back(1); });
      auto cancelled = loop.run_after(20ms, [&] { fired.push_back(99); });
      loop.run_after(20ms, [&] { fired.push_back(2); });
      loop.cancel(cancelled);
    });
    CHECK(spin(loop, [&] { return fired.size() >= 3; }));
    CHECK(fired == std::vector<int>{1, 2, 3});
  }

  TEST_CASE("a connection delivers lines across partial reads and leftovers at EOF") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    EventLoop loop;
    Recorder rec;
    reactor::TcpConnection* conn = nullptr;
    loop.queue([&] {
      conn = new reactor::TcpConnection(loop, sv[0], rec);
      conn->start();
    });
    std::thread writer([fd = sv[1]] {
      const char* parts[] = {"IAMAT a", " +1.0+2.0 1\nWHAT", "SAT a 1 1\n", "unterminated"};
      for (const char* p : parts) {
        REQUIRE(::write(fd, p, std::strlen(p)) == static_cast<ssize_t>(std::strlen(p)));
        std::this_thread::sleep_for(5ms);
      }
      ::shutdown(fd, SHUT_WR);
    });
    CHECK(spin(loop, [&] { return rec.closed; }));
    writer.join();
    CHECK(rec.lines == "IAMAT a +1.0+2.0 1\nWHATSAT a 1 1\n");
    CHECK(rec.eof);
    CHECK(rec.eof_rest == "unterminated");
    CHECK(rec.reason == "eof");
    delete conn;
    ::close(sv[1]);
  }

  TEST_CASE("offer_read copies only the end of a line begun in an earlier read") {
    // A stream of lines cut at random places into reads, as a peer link delivers them.
    struct Lines {
      std::string taken;
      size_t most_offered_buffered = 0;
      size_t on_data(int&, std::string_view data) {
        const size_t last = data.rfind('\n');
        if (last == std::string_view::npos) return 0;
        taken.append(data.substr(0, last + 1));
        return last + 1;
      }
    };
    std::mt19937 rng(5);
    std::string stream;
    size_t longest = 0;
    for (int i = 0; i < 3000; ++i) {
      std::string line = "AT Hands +0.000123456 c" + std::to_string(rng() % 100000) + " +1.5+2.5 " +
                         std::string(rng() % 40, '7') + "\n";
      longest = std::max(longest, line.size());
      stream += line;
    }
    Lines handler;
    int conn = 0;
    reactor::Buffer in;
    size_t most_held = 0, most_capacity = 0;
    for (size_t at = 0; at < stream.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 4000, stream.size() - at);
      const std::string read(stream, at, n);  // (the caller's scratch: gone after the call)
      reactor::offer_read(handler, conn, in, read, [] { return true; }, 1 << 16);
      most_held = std::max(most_held, in.size());
      most_capacity = std::max(most_capacity, in.capacity());
      at += n;
    }
    CHECK(handler.taken == stream);
    CHECK(in.empty());
    // Never more than a line's start is kept between reads, and no read was copied whole into the
    // buffer (which would have grown it past the lines, to the size of the reads).
    CHECK(most_held < longest);
    CHECK(most_capacity <= 256);
  }

  TEST_CASE("offer_read offers everything at once to a handler that takes less than a line") {
    // One that waits for a whole 50-byte message (an HTTP body, say), newlines or not.
    struct Message {
      std::string got;
      size_t on_data(int&, std::string_view data) {
        if (data.size() < 50) return 0;
        got.append(data.substr(0, 50));
        return 50;
      }
    };
    Message handler;
    int conn = 0;
    reactor::Buffer in;
    const std::string a = "first part\nof the message ";            // 25 bytes
    const std::string b = "and\nits end, then more\nbytes after"; // completes it, and more
    reactor::offer_read(handler, conn, in, a, [] { return true; }, 1 << 16);
    CHECK(handler.got.empty());
    CHECK(in.view() == a);
    reactor::offer_read(handler, conn, in, b, [] { return true; }, 1 << 16);
    REQUIRE(handler.got.size() == 50);
    CHECK(handler.got == (a + b).substr(0, 50));
    CHECK(in.view() == (a + b).substr(50));
  }

  TEST_CASE("offer_read offers held bytes once when the read only ends their line") {
    // A paused handler (its replies wait) takes nothing; a read that only completes the line begun
    // earlier has nothing after it, so nothing is offered a second time.
    struct Paused {
      int calls = 0;
      std::string last;
      size_t on_data(int&, std::string_view data) {
        ++calls;
        last.assign(data);
        return 0;
      }
    };
    Paused handler;
    int conn = 0;
    reactor::Buffer in;
    in.append("IAMAT a +1.0+2.0 1\nWHATSAT a ");
    reactor::offer_read(handler, conn, in, "1 1\n", [] { return true; }, 1 << 16);
    CHECK(handler.calls == 1);
    CHECK(handler.last == "IAMAT a +1.0+2.0 1\nWHATSAT a 1 1\n");
    CHECK(in.view() == "IAMAT a +1.0+2.0 1\nWHATSAT a 1 1\n");
  }

  TEST_CASE("offer_read keeps nothing and offers nothing more once the handler closes") {
    struct Closer {
      bool* open;
      int calls = 0;
      size_t on_data(int&, std::string_view) {
        ++calls;
        *open = false;
        return 0;
      }
    };
    bool open = true;
    Closer handler{&open};
    int conn = 0;
    reactor::Buffer in;
    in.append("partial");
    reactor::offer_read(handler, conn, in, " line\nnext line\n", [&] { return open; }, 1 << 16);
    CHECK(handler.calls == 1);
  }

  TEST_CASE("output the kernel refuses is buffered, drained later, then on_drained fires") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    int small = 4096;
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    EventLoop loop;
    Recorder rec;
    reactor::TcpConnection* conn = nullptr;
    std::string big(4 * 1024 * 1024, 'x');
    size_t pending_after_send = 0;
    loop.queue([&] {
      conn = new reactor::TcpConnection(loop, sv[0], rec);
      conn->start();
      conn->send(big);
      pending_after_send = conn->pending_output();
    });
    std::atomic<size_t> received{0};
    std::thread reader([&, fd = sv[1]] {
      char buf[65536];
      auto deadline = std::chrono::steady_clock::now() + 5s;
      while (received < big.size() && std::chrono::steady_clock::now() < deadline) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
          received += static_cast<size_t>(n);
        } else {
          std::this_thread::sleep_for(1ms);
        }
      }
    });
    CHECK(spin(loop, [&] { return rec.drained > 0; }, 5000ms));
    reader.join();
    CHECK(pending_after_send > 0);
    CHECK(received.load() == big.size());
    CHECK(conn->pending_output() == 0);
    delete conn;
    ::close(sv[1]);
  }

  TEST_CASE("a paused connection reads nothing; resuming re-offers what it held") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    EventLoop loop;
    // Consumes one line per call and pauses after it.
    struct OneAtATime : Recorder {
      size_t on_data(reactor::Connection& c, std::string_view data) override {
        size_t nl = data.find('\n');
        if (nl == std::string_view::npos) return 0;
        lines.append(data.substr(0, nl + 1));
        c.set_reading(false);
        return nl + 1;
      }
    } rec;
    reactor::TcpConnection* conn = nullptr;
    loop.queue([&] {
      conn = new reactor::TcpConnection(loop, sv[0], rec);
      conn->start();
    });
    REQUIRE(::write(sv[1], "a\nb\nc\n", 6) == 6);
    CHECK(spin(loop, [&] { return rec.lines == "a\n"; }, 500ms));
    // Still paused: nothing more arrives however long we wait.
    CHECK_FALSE(spin(loop, [&] { return rec.lines.size() > 2; }, 100ms));
    loop.queue([&] { conn->set_reading(true); });
    CHECK(spin(loop, [&] { return rec.lines == "a\nb\n"; }, 500ms));
    loop.queue([&] { conn->set_reading(true); });
    CHECK(spin(loop, [&] { return rec.lines == "a\nb\nc\n"; }, 500ms));
    delete conn;
    ::close(sv[1]);
  }

  TEST_CASE("backoff doubles up to its cap and stays within the jitter") {
    reactor::Backoff b(100ms, 1000ms, 0.2, 42);
    int expected[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (int e : expected) {
      auto d = b.next().count();
      CHECK(d >= e * 0.8 - 1);
      CHECK(d <= e * 1.2 + 1);
    }
    b.reset();
    CHECK(b.next().count() <= 121);
  }

  TEST_CASE("the connector retries a closed port, then connects once something listens") {
    reactor::SocketAddress addr;  // nothing listens there
    std::string error;
    REQUIRE(reactor::resolve("127.0.0.1", testing_net::unused_loopback_port(), &addr, &error));

    EventLoop loop;
    int failures = 0;
    int connected_fd = -1;
    int listener = -1;
    reactor::Connector connector(
        loop, addr, reactor::Backoff(10ms, 40ms, 0.0),
        [&](int fd) { connected_fd = fd; },
        [&](std::string_view, reactor::Backoff::Millis) {
          if (++failures == 3) listener = reactor::listen_tcp(addr, 8, &error);
        });
    loop.queue([&] { connector.start(); });
    CHECK(spin(loop, [&] { return connected_fd >= 0; }));
    CHECK(failures >= 3);
    ::close(connected_fd);
    ::close(listener);
  }

  TEST_CASE("a socket connected to itself is told apart, and its reset frees the port") {
    // Bound to a free port and connected to that same address: TCP's simultaneous open joins the
    // socket to itself (what a dial into the ephemeral range can meet by chance).
    reactor::SocketAddress addr;
    std::string error;
    REQUIRE(reactor::resolve("127.0.0.1", testing_net::unused_loopback_port(), &addr, &error));
    int self = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(self >= 0);
    REQUIRE(::bind(self, addr.get(), addr.length) == 0);
    REQUIRE(::connect(self, addr.get(), addr.length) == 0);
    CHECK(reactor::connected_to_itself(self));
    reactor::close_with_reset(self);
    // No TIME-WAIT is left on the port: the listener it belongs to can have it.
    int listener = reactor::listen_tcp(addr, 8, &error);
    CHECK_MESSAGE(listener >= 0, error);
    // Two ends of an ordinary connection are not.
    int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(client, addr.get(), addr.length) == 0);
    int server = ::accept(listener, nullptr, nullptr);
    REQUIRE(server >= 0);
    CHECK_FALSE(reactor::connected_to_itself(client));
    CHECK_FALSE(reactor::connected_to_itself(server));
    ::close(client);
    ::close(server);
    ::close(listener);
  }

  TEST_CASE("a dial that meets itself is refused, frees the port, and is tried again") {
    // In a network namespace of its own (this test's thread only) whose ephemeral range is the one
    // port dialled, every dial while nothing listens there meets itself. The connector must report
    // that as a failure (not hand over a connection to itself), leave no TIME-WAIT on the port (the
    // listener then binds it), and connect once the listener is there.
    enum Outcome { kSkipped, kPassed, kHandedOver, kListenerRefused, kTimedOut };
    std::string failure;
    Outcome outcome = kTimedOut;
    std::thread t([&] {
      if (::unshare(CLONE_NEWNET) != 0) {
        outcome = kSkipped;
        return;
      }
      const int ctl = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ifreq lo{};
      std::strcpy(lo.ifr_name, "lo");
      ::ioctl(ctl, SIOCGIFFLAGS, &lo);
      lo.ifr_flags = static_cast<short>(lo.ifr_flags | IFF_UP);
      const bool up = ::ioctl(ctl, SIOCSIFFLAGS, &lo) == 0;
      ::close(ctl);
      auto set_range = [](const char* range) {
        FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "w");
        if (!f) return false;
        const bool ok = std::fputs(range, f) >= 0;
        return std::fclose(f) == 0 && ok;
      };
      if (!up || !set_range("40000 40000")) {
        outcome = kSkipped;
        return;
      }
      reactor::SocketAddress addr;
      std::string error;
      if (!reactor::resolve("127.0.0.1", 40000, &addr, &error)) return;
      EventLoop loop;
      int connected_fd = -1;
      int listener = -1;
      reactor::Connector connector(
          loop, addr, reactor::Backoff(10ms, 40ms, 0.0),
          [&](int fd) {
            connected_fd = fd;
            if (listener < 0) outcome = kHandedOver;
          },
          [&](std::string_view why, reactor::Backoff::Millis) {
            if (listener >= 0 || why.find("connected to itself") == std::string_view::npos) return;
            failure = std::string(why);
            set_range("41000 41999");
            listener = reactor::listen_tcp(addr, 8, &error);
            if (listener < 0) outcome = kListenerRefused;
          });
      loop.queue([&] { connector.start(); });
      spin(loop, [&] { return connected_fd >= 0 || outcome == kListenerRefused || outcome == kHandedOver; });
      connector.stop();
      if (connected_fd >= 0 && outcome == kTimedOut) outcome = kPassed;
      if (connected_fd >= 0) ::close(connected_fd);
      if (listener >= 0) ::close(listener);
    });
    t.join();
    if (outcome == kSkipped) {
      MESSAGE("skipped: no network namespace of its own for this test (needs CAP_SYS_ADMIN)");
      return;
    }
    CHECK(outcome == kPassed);
    CHECK(failure.find("127.0.0.1:40000: connected to itself") != std::string::npos);
  }

  TEST_CASE("a SO_REUSEPORT group shares one port, spreads connections, and keeps others out") {
    reactor::SocketAddress any;
    std::string error;
    REQUIRE(reactor::resolve("127.0.0.1", 0, &any, &error));
    std::vector<int> fds;
    REQUIRE_MESSAGE(reactor::listen_tcp_reuseport(any, 2, 64, &fds, &error), error);
    REQUIRE(fds.size() == 2);
    reactor::SocketAddress at[2];
    for (int i = 0; i < 2; ++i) {
      at[i].length = sizeof at[i].storage;
      REQUIRE(::getsockname(fds[i], reinterpret_cast<sockaddr*>(&at[i].storage), &at[i].length) == 0);
    }
    CHECK(at[0].to_string() == at[1].to_string());  // port 0: the second joined the first's port

    // Anything else asking for the port fails loudly, with or without SO_REUSEPORT.
    CHECK(reactor::listen_tcp(at[0], 8, &error) < 0);
    CHECK(error.find("in use") != std::string::npos);
    error.clear();
    CHECK_FALSE(reactor::listen_tcp_reuseport(at[0], 2, 8, &fds, &error));
    CHECK(error.find("in use") != std::string::npos);
    CHECK(fds.size() == 2);

    // 32 connections from distinct source ports: the kernel's hash gives each socket some (all on
    // one would have probability 2^-31).
    EventLoop loop;
    int accepted[2] = {0, 0};
    std::vector<std::unique_ptr<reactor::Listener>> listeners;
    for (int i = 0; i < 2; ++i) {
      listeners.push_back(std::make_unique<reactor::Listener>(
          loop, fds[i],
          [&accepted, i](int cfd, const reactor::SocketAddress&) {
            ++accepted[i];
            ::close(cfd);
          },
          [](int) {}, reactor::Listener::Sharing::kOwn));
    }
    loop.queue([&] {
      for (auto& l : listeners) l->start();
    });
    std::vector<int> clients;
    for (int k = 0; k < 32; ++k) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      REQUIRE(c >= 0);
      CHECK(::connect(c, at[0].get(), at[0].length) == 0);  // completes in the backlog
      clients.push_back(c);
    }
    CHECK(spin(loop, [&] { return accepted[0] + accepted[1] == 32; }));
    CHECK(accepted[0] > 0);
    CHECK(accepted[1] > 0);
    loop.queue([&] { listeners.clear(); });
    spin(loop, [&] { return listeners.empty(); });
    for (int c : clients) ::close(c);
    for (int fd : fds) ::close(fd);

    // Closed, the port is free again: the probe left nothing behind.
    fds.clear();
    REQUIRE_MESSAGE(reactor::listen_tcp_reuseport(at[0], 3, 8, &fds, &error), error);
    CHECK(fds.size() == 3);
    for (int fd : fds) ::close(fd);
  }
}

TEST_SUITE("concurrency") {
  TEST_CASE("tasks queued from many threads all run, in order per producer, on the loop thread") {
    reactor::LoopGroup group(2);
    group.start();
    const int producers = 4, per = 5000;
    std::vector<std::vector<int>> seen(producers);  // touched on loop 0's thread only
    std::atomic<int> ran{0};
    std::atomic<bool> wrong_thread{false};
    EventLoop& target = group.loop(0);
    std::vector<std::thread> pool;
    for (int p = 0; p < producers; ++p) {
      pool.emplace_back([&, p] {
        for (int i = 0; i < per; ++i) {
          target.queue([&, p, i] {
            if (!target.in_loop_thread()) wrong_thread = true;
            seen[p].push_back(i);
            ran.fetch_add(1, std::memory_order_relaxed);
          });
        }
      });
    }
    for (auto& t : pool) t.join();
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (ran.load() < producers * per && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    group.stop();
    CHECK(ran.load() == producers * per);
    CHECK_FALSE(wrong_thread.load());
    for (int p = 0; p < producers; ++p) {
      REQUIRE(seen[p].size() == static_cast<size_t>(per));
      bool ordered = true;
      for (int i = 0; i < per; ++i) ordered = ordered && seen[p][i] == i;
      CHECK(ordered);
    }
  }

  TEST_CASE("a socket handed to a loop is adopted there, or closed with a loop that never ran the task") {
    // The peer's end of a socketpair tells whether the handed socket is open, rather than the
    // descriptor's number, which another thread may have been given again once it was closed.
    auto peer_sees_end = [](int peer) {
      char byte;
      return ::recv(peer, &byte, 1, MSG_DONTWAIT) == 0;
    };
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    std::atomic<int> adopted{-1};
    std::atomic<bool> on_loop_thread{false};
    {
      reactor::LoopGroup group(1);
      group.start();
      reactor::hand_over(group.loop(0), pair[0], [&](int fd) {
        on_loop_thread = group.loop(0).in_loop_thread();
        adopted = fd;
      });
      auto deadline = std::chrono::steady_clock::now() + 5s;
      while (adopted.load() < 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    }
    REQUIRE(adopted.load() == pair[0]);
    CHECK(on_loop_thread.load());
    CHECK_FALSE(peer_sees_end(pair[1]));  // adopted: the fd is the adopter's, open until it closes it
    ::close(pair[0]);
    ::close(pair[1]);

    // The loop stopped before the task could run, and goes away with it still queued.
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    bool ran = false;
    {
      reactor::LoopGroup group(1);
      group.start();
      group.stop();
      reactor::hand_over(group.loop(0), pair[0], [&](int) { ran = true; });
    }
    CHECK_FALSE(ran);
    CHECK(peer_sees_end(pair[1]));  // closed with the task, not leaked
    ::close(pair[1]);
  }

  TEST_CASE("loops hand work to each other without losing any") {
    reactor::LoopGroup group(2);
    group.start();
    std::atomic<int> hops{0};
    const int target = 20000;
    std::function<void(int)> bounce = [&](int from) {
      if (hops.fetch_add(1) + 1 >= target) return;
      int to = 1 - from;
      group.loop(to).queue([&, to] { bounce(to); });
    };
    for (int i = 0; i < 8; ++i) group.loop(0).queue([&] { bounce(0); });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (hops.load() < target && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    group.stop();
    CHECK(hops.load() >= target);
  }
}
