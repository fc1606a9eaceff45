// The reactor's error policy: a failed epoll registration is returned, not thrown, and costs only
// the connection it was for; loop-only methods refuse other threads; a paused listener's timer dies
// with it; an attempt to connect has a deadline; a peer given by name is looked up off the loop.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <new>
#include <memory>
#include <string>
#include <thread>

#include "reactor/buffer.h"
#include "reactor/connector.h"
#include "reactor/event_loop.h"
#include "reactor/listener.h"
#include "reactor/resolver.h"
#include "reactor/socket.h"
#include "reactor/tcp_connection.h"
#include "loop_runner.h"

using namespace std::chrono_literals;
using reactor::EventLoop;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif

struct Quiet : reactor::Pollable {
  int events = 0;
  void on_events(uint32_t) override { ++events; }
};

struct Closed : reactor::ConnectionHandler {
  bool closed = false;
  std::string reason;
  size_t on_data(reactor::Connection&, std::string_view d) override { return d.size(); }
  void on_eof(reactor::Connection& c, std::string_view) override { c.close("eof"); }
  void on_closed(reactor::Connection&, std::string_view why) override {
    closed = true;
    reason = why;
  }
};

// testing_loop::run_until with this file's shorter default deadline.
bool spin_until(EventLoop& loop, const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
  return testing_loop::run_until(loop, done, limit);
}

// A socket listening on a free loopback port with `backlog`; *addr is set to where it listens.
int listen_on_loopback(int backlog, reactor::SocketAddress* addr) {
  std::string error;
  REQUIRE(reactor::resolve("127.0.0.1", 0, addr, &error));
  int fd = reactor::listen_tcp(*addr, backlog, &error);
  REQUIRE(fd >= 0);
  socklen_t len = sizeof addr->storage;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr->storage), &len);
  addr->length = len;
  return fd;
}

// A loopback address with a port nothing listens on a moment from now.
reactor::SocketAddress closed_port() {
  reactor::SocketAddress addr;
  ::close(listen_on_loopback(8, &addr));
  return addr;
}

uint16_t port_of(const reactor::SocketAddress& addr) {
  return ntohs(reinterpret_cast<const sockaddr_in*>(&addr.storage)->sin_port);
}

}  // namespace

TEST_SUITE("reactor errors") {
  TEST_CASE("a refused registration is returned, not thrown") {
    EventLoop loop;
    Quiet q;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    CHECK(loop.add(sv[0], EPOLLIN, &q));
    errno = 0;
    CHECK_FALSE(loop.add(sv[0], EPOLLIN, &q));  // already there
    CHECK(errno == EEXIST);
    CHECK_FALSE(loop.modify(sv[1], EPOLLIN, &q));  // never added
    CHECK(errno == ENOENT);
    CHECK_FALSE(loop.add(-1, EPOLLIN, &q));
    loop.remove(sv[0]);
    ::close(sv[0]);
    ::close(sv[1]);
  }

  TEST_CASE("a connection the loop refuses is closed alone, at the end of the iteration") {
    EventLoop loop;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    Quiet squatter;
    REQUIRE(loop.add(sv[0], EPOLLIN, &squatter));  // so the connection's own add fails (EEXIST)
    Closed handler;
    auto conn = std::make_unique<reactor::TcpConnection>(loop, sv[0], handler);
    // A healthy connection beside it keeps working.
    int tv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, tv) == 0);
    Closed other_handler;
    reactor::TcpConnection other(loop, tv[0], other_handler);
    bool was_closed_inside_start = true;
    loop.queue([&] {
      conn->start();
      was_closed_inside_start = handler.closed;
      conn->send("queued before the close\n");  // must be safe
      other.start();
    });
    CHECK(spin_until(loop, [&] { return handler.closed; }));
    CHECK_FALSE(was_closed_inside_start);
    CHECK(handler.reason.find("cannot watch the socket") != std::string::npos);
    CHECK_FALSE(conn->is_open());
    CHECK(other.is_open());
    CHECK_FALSE(other_handler.closed);
    ::close(sv[1]);
    ::close(tv[1]);
  }

  TEST_CASE("loop-only methods abort when called from another thread") {
    // In a child process, so that the abort is observed rather than suffered.
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      EventLoop loop;
      std::thread runner([&] { loop.run(); });
      std::this_thread::sleep_for(50ms);  // run() has taken the loop
      ::signal(SIGABRT, SIG_DFL);  // doctest's crash handler would report the expected abort
      ::close(1);
      ::close(2);  // nor is the expected complaint test output
      loop.defer([] {});  // from the wrong thread: must abort
      ::_exit(0);  // not reached
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGABRT);
  }

  TEST_CASE("a listener's pause timer dies with the listener") {
    EventLoop loop;
    reactor::SocketAddress addr;
    int fd = listen_on_loopback(8, &addr);
    Quiet squatter;
    REQUIRE(loop.add(fd, EPOLLIN, &squatter));  // the listener's own add fails: it pauses
    int errors = 0, last_error = 0;
    auto listener = std::make_unique<reactor::Listener>(
        loop, fd, [](int cfd, const reactor::SocketAddress&) { ::close(cfd); },
        [&](int err) {
          ++errors;
          last_error = err;
        });
    loop.queue([&] { listener->start(); });
    CHECK(spin_until(loop, [&] { return errors >= 1; }));
    CHECK(last_error == EEXIST);
    // Destroyed while paused; the restart would have run in 100 ms on freed memory (ASan).
    loop.queue([&] { listener.reset(); });
    auto until = std::chrono::steady_clock::now() + 300ms;
    spin_until(loop, [&] { return std::chrono::steady_clock::now() > until; });
    CHECK(errors == 1);
    loop.remove(fd);
    ::close(fd);
  }

  TEST_CASE("a listener stopped mid-turn ignores the turn's events and is freed after it") {
    // Server::drain and stop, from the controlling thread: a queued task stops a loop's listeners
    // while the same epoll batch may still hold an event for one (a client connecting just then).
    // The wake-up comes first in the batch, the connection after it; the stopped listener must not
    // accept it, and must still be alive when its event is dispatched (freed by a deferred task).
    EventLoop loop;
    reactor::SocketAddress addr;
    int lfd = listen_on_loopback(16, &addr);
    int accepted = 0;
    auto listeners = std::make_shared<std::vector<std::unique_ptr<reactor::Listener>>>();
    listeners->push_back(std::make_unique<reactor::Listener>(
        loop, lfd, [&](int cfd, const reactor::SocketAddress&) {
          ++accepted;
          ::close(cfd);
        },
        [](int) {}));
    bool started = false;
    loop.queue([&] {
      listeners->front()->start();
      started = true;
    });
    REQUIRE(spin_until(loop, [&] { return started; }));
    bool stopped = false;
    std::thread([&] {
      loop.queue([&] {
        for (auto& l : *listeners) l->stop();
        loop.defer([gone = std::move(listeners)] {});
        stopped = true;
      });
    }).join();
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(c >= 0);
    CHECK(::connect(c, reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) == 0);
    auto until = std::chrono::steady_clock::now() + 200ms;
    spin_until(loop, [&] { return std::chrono::steady_clock::now() > until; });
    CHECK(stopped);
    CHECK(accepted == 0);
    ::close(c);
    ::close(lfd);
  }

  TEST_CASE("an attempt to connect that gets no answer times out and is retried") {
    // A listener that never accepts, with its accept queue full: further SYNs go unanswered.
    reactor::SocketAddress addr;
    int lfd = listen_on_loopback(0, &addr);
    std::string error;
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
      int f = reactor::connect_tcp(addr, &error);
      if (f >= 0) fillers.push_back(f);
    }
    std::this_thread::sleep_for(100ms);

    EventLoop loop;
    std::vector<std::string> failures;
    bool connected = false;
    reactor::Connector connector(
        loop, addr, reactor::Backoff(10ms, 20ms, 0.0), [&](int fd) {
          connected = true;
          ::close(fd);
        },
        [&](std::string_view why, reactor::Backoff::Millis) { failures.emplace_back(why); }, 200ms);
    auto started = std::chrono::steady_clock::now();
    loop.queue([&] { connector.start(); });
    CHECK(spin_until(loop, [&] { return failures.size() >= 2; }, 5000ms));
    auto took = std::chrono::steady_clock::now() - started;
    loop.queue([&] { connector.stop(); });
    spin_until(loop, [] { return true; });
    CHECK_FALSE(connected);
    REQUIRE(failures.size() >= 2);
    CHECK(failures[0].find("connect timed out after 200 ms") != std::string::npos);
    CHECK(took >= 380ms);
    CHECK(took < 3000ms);
    for (int f : fillers) ::close(f);
    ::close(lfd);
  }

  TEST_CASE("a peer given by name is looked up again before each attempt, off the loop thread") {
    reactor::SocketAddress addr = closed_port();
    std::string error;
    EventLoop loop;
    int failures = 0;
    int connected_fd = -1;
    int listener = -1;
    std::vector<std::string> reasons;
    reactor::Connector connector(
        loop, std::string("localhost"), port_of(addr), reactor::Backoff(10ms, 40ms, 0.0),
        [&](int fd) { connected_fd = fd; },
        [&](std::string_view why, reactor::Backoff::Millis) {
          reasons.emplace_back(why);
          if (++failures == 3) listener = reactor::listen_tcp(addr, 8, &error);
        });
    loop.queue([&] { connector.start(); });
    CHECK(spin_until(loop, [&] { return connected_fd >= 0; }));
    CHECK(failures >= 3);
    for (const auto& r : reasons) CHECK(r.find(":" + std::to_string(port_of(addr))) != std::string::npos);
    ::close(connected_fd);
    ::close(listener);

    // A name that does not resolve is a failed attempt like any other (and retried).
    int bad_failures = 0;
    std::string bad_reason;
    reactor::Connector nowhere(
        loop, std::string("no-such-host.invalid"), 1, reactor::Backoff(10ms, 20ms, 0.0), [](int fd) { ::close(fd); },
        [&](std::string_view why, reactor::Backoff::Millis) {
          ++bad_failures;
          bad_reason = why;
        });
    loop.queue([&] { nowhere.start(); });
    CHECK(spin_until(loop, [&] { return bad_failures >= 2; }, 10000ms));
    CHECK(bad_reason.find("no-such-host.invalid") != std::string::npos);
    loop.queue([&] { nowhere.stop(); });
    spin_until(loop, [] { return true; });
  }

  TEST_CASE("a resolver destroyed with a lookup in flight drops the answer") {
    EventLoop loop;
    int called = 0;
    std::string last_error;
    reactor::SocketAddress last;
    auto done = [&](reactor::Resolver::Addresses addresses, std::string error) {
      ++called;
      last_error = error;
      if (!addresses.empty()) last = addresses.front();
    };
    loop.queue([&] {
      reactor::Resolver resolver;
      resolver.resolve(loop, "localhost", 80, done);  // a name: answered by the worker thread
      resolver.resolve(loop, "127.0.0.1", 80, done);  // numeric: answered at the end of this iteration
    });
    auto until = std::chrono::steady_clock::now() + 300ms;
    spin_until(loop, [&] { return std::chrono::steady_clock::now() > until; });
    CHECK(called == 0);
    // The same lookups from a resolver that stays are answered.
    reactor::Resolver kept;
    loop.queue([&] { kept.resolve(loop, "127.0.0.1", 80, done); });
    CHECK(spin_until(loop, [&] { return called == 1; }));
    CHECK(last_error.empty());
    CHECK(last.to_string() == "127.0.0.1:80");
    loop.queue([&] { kept.resolve(loop, "localhost", 80, done); });
    CHECK(spin_until(loop, [&] { return called == 2; }));
    CHECK(last_error.empty());
    loop.queue([&] { kept.resolve(loop, "no-such-host.invalid", 80, done); });
    CHECK(spin_until(loop, [&] { return called == 3; }, 10000ms));
    CHECK(last_error.find("no-such-host.invalid") != std::string::npos);
  }

  // Skipped under ThreadSanitizer, whose runtime in a child forked from a process with threads, and
  // allowed none of its own, reports instead of running the test.
  TEST_CASE("a process that cannot start the lookup thread gets a failed lookup, not an abort" *
            doctest::skip(kThreadSanitizer)) {
    // In a child process that gives up root and may start no more threads (RLIMIT_NPROC applies
    // to other users only): std::thread throws, which nothing on a loop may let escape.
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(1);
      ::close(2);  // a failure shows as the exit status, not as test output
      const rlimit none{0, 0};
      if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
      if (::setrlimit(RLIMIT_NPROC, &none) != 0) ::_exit(3);
      EventLoop loop;
      reactor::Resolver resolver;
      std::string error;
      bool answered = false;
      loop.queue([&] {
        resolver.resolve(loop, "localhost", 80, [&](reactor::Resolver::Addresses, std::string e) {
          answered = true;
          error = std::move(e);
        });
      });
      if (!spin_until(loop, [&] { return answered; })) ::_exit(4);
      ::_exit(error.find("cannot start thread resolver") != std::string::npos ? 0 : 5);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  TEST_CASE("buffers count their capacity in a shared counter") {
    std::atomic<int64_t> counter{0};
    {
      reactor::Buffer a, b;
      a.account_to(&counter);
      b.account_to(&counter);
      a.append(std::string(1000, 'x'));
      CHECK(counter.load() == static_cast<int64_t>(a.capacity()));
      b.append(std::string(5000, 'y'));
      CHECK(counter.load() == static_cast<int64_t>(a.capacity() + b.capacity()));
      a.consume(1000);
      a.release();
      CHECK(counter.load() == static_cast<int64_t>(b.capacity()));
      reactor::Buffer moved(std::move(b));
      CHECK(counter.load() == static_cast<int64_t>(moved.capacity()));
      CHECK_THROWS_AS(moved.prepare(SIZE_MAX - 10), std::bad_alloc);  // refused, not a crash
      CHECK(moved.size() == 5000);
    }
    CHECK(counter.load() == 0);
  }

  TEST_CASE("running out of memory for one connection closes that connection, not the loop") {
    struct Greedy : Closed {
      size_t on_data(reactor::Connection&, std::string_view) override { throw std::bad_alloc(); }
    };
    EventLoop loop;
    std::atomic<int64_t> counter{0};
    loop.set_buffer_account(&counter);
    int sv[2], tv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, tv) == 0);
    Greedy greedy;
    Closed calm;
    reactor::TcpConnection a(loop, sv[0], greedy), b(loop, tv[0], calm);
    loop.queue([&] {
      a.start();
      b.start();
    });
    REQUIRE(::write(sv[1], "boom\n", 5) == 5);
    CHECK(spin_until(loop, [&] { return greedy.closed; }));
    CHECK(greedy.reason == "out of memory");
    CHECK(b.is_open());
    REQUIRE(::write(tv[1], "fine\n", 5) == 5);
    auto until = std::chrono::steady_clock::now() + 100ms;
    spin_until(loop, [&] { return std::chrono::steady_clock::now() > until; });
    CHECK_FALSE(calm.closed);
    ::close(sv[1]);
    ::close(tv[1]);
  }

  TEST_CASE("socket helpers: addresses without ports, IPv4-mapped IPv6 as IPv4; keepalive set") {
    reactor::SocketAddress v4, v6, mapped;
    std::string error;
    REQUIRE(reactor::resolve("127.0.0.1", 5, &v4, &error));
    REQUIRE(reactor::resolve("::1", 5, &v6, &error));
    REQUIRE(reactor::resolve("::ffff:127.0.0.2", 5, &mapped, &error));
    CHECK(reactor::ip_of(v4) == "127.0.0.1");
    CHECK(reactor::ip_of(v6) == "::1");
    CHECK(reactor::ip_of(mapped) == "127.0.0.2");
    std::vector<reactor::SocketAddress> all;
    REQUIRE(reactor::resolve_all("127.0.0.1", 5, &all, &error));
    REQUIRE(all.size() >= 1);
    CHECK(reactor::ip_of(all[0]) == "127.0.0.1");
    CHECK_FALSE(reactor::resolve_all("no-such-host.invalid", 5, &all, &error));
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    reactor::set_keepalive(fd, 30, 10, 3);
    int on = 0, idle = 0;
    socklen_t len = sizeof on;
    ::getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len);
    len = sizeof idle;
    ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
    CHECK(on == 1);
    CHECK(idle == 30);
    ::close(fd);
  }
}

TEST_SUITE("resolver concurrency") {
  TEST_CASE("two loops share a resolver; one forgets it, and the resolver goes with lookups queued") {
    // Under ThreadSanitizer (make tsan-test): resolve() from two loop threads and from this one, the
    // worker's answers, forget() and the destructor all meet the same state.
    EventLoop a(0), b(1);
    std::thread ta([&] { a.run(); });
    std::thread tb([&] { b.run(); });
    std::atomic<int> answered_a{0}, answered_b{0}, failed{0};
    auto counter = [&](std::atomic<int>& n) {
      return [&](reactor::Resolver::Addresses addresses, std::string error) {
        if (!error.empty() || addresses.empty()) ++failed;
        ++n;
      };
    };
    // Waits until every task queued on `loop` before this call has run.
    auto drain = [](EventLoop& loop) {
      std::atomic<bool> ran{false};
      loop.queue([&] { ran = true; });
      while (!ran) std::this_thread::sleep_for(1ms);
    };
    {
      reactor::Resolver resolver;
      constexpr int kEach = 20;
      for (int i = 0; i < kEach; ++i) {
        a.queue([&, i] { resolver.resolve(a, i % 2 ? "localhost" : "127.0.0.1", 80, counter(answered_a)); });
        resolver.resolve(b, i % 2 ? "localhost" : "::1", 80, counter(answered_b));  // from this thread
      }
      auto until = std::chrono::steady_clock::now() + 10s;
      while ((answered_a < kEach || answered_b < kEach) && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(1ms);
      }
      CHECK(answered_a == kEach);
      CHECK(answered_b == kEach);
      CHECK(failed == 0);
      // Loop b is forgotten with lookups of its own queued: once the answers queued before that
      // have run, b hears nothing more, though the resolver goes on answering a.
      for (int i = 0; i < kEach; ++i) {
        resolver.resolve(b, "localhost", 80, counter(answered_b));
        resolver.resolve(a, "localhost", 80, counter(answered_a));
      }
      resolver.forget(b);
      drain(b);
      const int b_after_forget = answered_b;
      until = std::chrono::steady_clock::now() + 10s;
      while (answered_a < 2 * kEach && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
      CHECK(answered_a == 2 * kEach);
      drain(b);
      CHECK(answered_b == b_after_forget);
      // And it goes with lookups queued for a (the destructor never waits for the worker).
      for (int i = 0; i < kEach; ++i) resolver.resolve(a, "localhost", 80, counter(answered_a));
    }
    a.stop();
    b.stop();
    ta.join();
    tb.join();
    CHECK(answered_a <= 3 * 20);
  }
}
