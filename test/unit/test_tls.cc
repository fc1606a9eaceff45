// The TLS transport: contexts (files, key/cert mismatch, own names), handshakes in both roles over
// socketpairs, echo, large transfers with partial writes, backpressure and TLS 1.3 key updates,
// refusals (unknown CA, wrong name, missing client certificate, plaintext), close_notify, handshake
// timeouts. Suite "tls concurrency": two loops on two threads with many connections at once (TSan).
#include <doctest/doctest.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "reactor/event_loop.h"
#include "reactor/loop_group.h"
#include "reactor/tcp_connection.h"
#include "reactor/tls_connection.h"
#include "reactor/tls_context.h"
#include "test/unit/test_certs.h"

using namespace std::chrono_literals;
using reactor::EventLoop;
using reactor::TlsConnection;
using reactor::TlsContext;

namespace {

// Runs `loop` on this thread until `done` or the deadline; returns whether done.
template <typename Done>
bool spin(EventLoop& loop, Done done, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  bool ok = false;
  std::function<void()> check = [&] {
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
  loop.cancel(id);
  return ok;
}

std::unique_ptr<TlsContext> context(const std::string& ca, const std::string& cert, const std::string& key,
                                    bool require_client = false) {
  std::string error;
  auto ctx = TlsContext::create({ca, cert, key, require_client}, &error);
  INFO(error);
  REQUIRE(ctx);
  return ctx;
}

// alpha's server identity demanding client certificates from the herd CA.
std::unique_ptr<TlsContext> alpha_server() {
  const auto& c = testcerts::herd();
  return context(c.ca(), c.cert("alpha"), c.key("alpha"), true);
}
// beta's identity (a client of alpha, with a certificate).
std::unique_ptr<TlsContext> beta_client() {
  const auto& c = testcerts::herd();
  return context(c.ca(), c.cert("beta"), c.key("beta"));
}

// One end of a TLS stream: records what its connection tells it.
struct End : reactor::ConnectionHandler {
  std::unique_ptr<TlsConnection> conn;
  std::string received;
  std::string eof_rest;
  std::string reason;
  std::vector<std::string> names;
  bool established = false, eof = false, closed = false;
  int drained = 0;
  bool echo = false;          // send back every byte received
  bool close_on_eof = true;   // answer the peer's end with close_when_flushed

  size_t on_data(reactor::Connection& c, std::string_view data) override {
    received.append(data);
    if (echo) c.send(data);
    return data.size();
  }
  void on_eof(reactor::Connection& c, std::string_view rest) override {
    eof = true;
    eof_rest = rest;
    if (close_on_eof) c.close_when_flushed("eof");
  }
  void on_established(reactor::Connection& c) override {
    established = true;
    names = static_cast<TlsConnection&>(c).peer_names();
  }
  void on_drained(reactor::Connection&) override { ++drained; }
  void on_closed(reactor::Connection&, std::string_view why) override {
    closed = true;
    reason = why;
  }
};

// A socketpair with a TLS server (alpha) on one end and a TLS client on the other, started on `loop`.
struct Pair {
  int sv[2] = {-1, -1};
  Pair(EventLoop& loop, End& server, const TlsContext& server_ctx, End& client, const TlsContext& client_ctx,
       std::string verify_name = "alpha", EventLoop::Millis timeout = 5000ms) {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    server.conn = std::make_unique<TlsConnection>(loop, sv[0], server, server_ctx, TlsConnection::Role::kServer,
                                                  "", timeout);
    client.conn = std::make_unique<TlsConnection>(loop, sv[1], client, client_ctx, TlsConnection::Role::kClient,
                                                  std::move(verify_name), timeout);
    loop.queue([&] {
      server.conn->start();
      client.conn->start();
    });
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("tls") {
  TEST_CASE("a context reports unreadable files, mismatched keys, and its own names") {
    const auto& c = testcerts::herd();
    std::string error;
    CHECK_FALSE(TlsContext::create({"/nonexistent/ca.pem", "", "", false}, &error));
    CHECK(contains(error, "/nonexistent/ca.pem"));
    CHECK(contains(error, "No such file or directory"));

    CHECK_FALSE(TlsContext::create({c.ca(), c.cert("alpha"), c.key("beta"), false}, &error));
    CHECK(contains(error, c.key("beta")));
    CHECK(contains(error, "does not match"));

    CHECK_FALSE(TlsContext::create({c.ca(), c.cert("alpha"), "", false}, &error));
    CHECK(contains(error, "without a private key"));

    // A file that is not PEM at all.
    CHECK_FALSE(TlsContext::create({c.key("alpha"), "", "", false}, &error));
    CHECK(contains(error, c.key("alpha")));

    auto ctx = context(c.ca(), c.cert("alpha"), c.key("alpha"));
    CHECK(ctx->own_names() == std::vector<std::string>{"alpha", "herd.test", "alpha"});
    CHECK(context("", "", "")->own_names().empty());  // the system store, no identity
    CHECK(ERR_peek_error() == 0);  // the thread's error queue is left empty
  }

  TEST_CASE("handshake, then echo both ways; both ends know the other's verified names") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End server, client;
    server.echo = true;
    Pair pair(loop, server, *sctx, client, *cctx);
    // Sent before the handshake completes: buffered, then written.
    loop.queue([&] { client.conn->send("HERD beta\n"); });
    REQUIRE(spin(loop, [&] { return client.received == "HERD beta\n"; }));
    CHECK(server.established);
    CHECK(client.established);
    CHECK(server.names == std::vector<std::string>{"beta", "herd.test", "beta"});
    CHECK(client.names == std::vector<std::string>{"alpha", "herd.test", "alpha"});
    CHECK(server.conn->peer_has_name("beta"));
    CHECK_FALSE(server.conn->peer_has_name("bet"));
    CHECK_FALSE(server.conn->peer_has_name("alpha"));
    CHECK(client.conn->protocol() == "TLSv1.3");
    // The client sent the name it verifies as SNI.
    const char* sni = SSL_get_servername(server.conn->native(), TLSEXT_NAMETYPE_host_name);
    REQUIRE(sni != nullptr);
    CHECK(std::string(sni) == "alpha");
    loop.queue([&] { server.conn->send("from the server\n"); });
    REQUIRE(spin(loop, [&] { return client.received == "HERD beta\nfrom the server\n"; }));
    CHECK(server.received == "HERD beta\n");
  }

  TEST_CASE("close_when_flushed sends the last bytes, then close_notify, read as EOF") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End server, client;
    Pair pair(loop, server, *sctx, client, *cctx);
    // This server treats an end of stream without close_notify as an error (OpenSSL's default), so
    // its on_eof proves the close_notify was sent.
    loop.queue([&] { SSL_clear_options(server.conn->native(), SSL_OP_IGNORE_UNEXPECTED_EOF); });
    REQUIRE(spin(loop, [&] { return server.established && client.established; }));
    loop.queue([&] {
      client.conn->send("last line\npartial");
      client.conn->close_when_flushed("done");
    });
    REQUIRE(spin(loop, [&] { return server.eof && client.closed; }));
    CHECK(client.reason == "done");
    CHECK(server.received == "last line\npartial");
    CHECK(server.eof_rest == "");  // End consumes everything
    REQUIRE(spin(loop, [&] { return server.closed; }));
    CHECK(server.reason == "eof");
  }

  TEST_CASE("plaintext decrypted past a full read is delivered without more bytes coming") {
    // A 1000-byte record, then four full ones: one read fills its 64 KiB with the first four, and
    // the last 1000 bytes of the fifth wait inside OpenSSL, where epoll cannot see them, while the
    // socket is empty and the sender silent.
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End server, client;
    Pair pair(loop, server, *sctx, client, *cctx);
    REQUIRE(spin(loop, [&] { return server.established && client.established; }));
    const std::string first(1000, 'a');
    const std::string rest(4 * 16384, 'b');
    loop.queue([&] {
      client.conn->send(first);
      client.conn->send(rest);
    });
    REQUIRE(spin(loop, [&] { return server.received.size() == first.size() + rest.size(); }, 2000ms));
    CHECK(server.received == first + rest);
  }

  TEST_CASE("a TCP end without close_notify is also an EOF (and an error to a strict reader)") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End server, client, strict_server, strict_client;
    Pair pair(loop, server, *sctx, client, *cctx);
    Pair strict(loop, strict_server, *sctx, strict_client, *cctx);
    loop.queue([&] { SSL_clear_options(strict_server.conn->native(), SSL_OP_IGNORE_UNEXPECTED_EOF); });
    REQUIRE(spin(loop, [&] { return server.established && client.established && strict_client.established; }));
    loop.queue([&] {
      client.conn->send("bye\n");
      strict_client.conn->send("bye\n");
      ::shutdown(client.conn->fd(), SHUT_WR);
      ::shutdown(strict_client.conn->fd(), SHUT_WR);
    });
    REQUIRE(spin(loop, [&] { return (server.eof || server.closed) && strict_server.closed; }));
    INFO(server.reason);
    CHECK(server.eof);
    CHECK(server.received == "bye\n");
    CHECK(strict_server.received == "bye\n");
    CHECK_FALSE(strict_server.eof);
    CHECK(contains(strict_server.reason, "unexpected eof"));
  }

  TEST_CASE("a client that trusts another CA refuses the server, naming the verify failure") {
    EventLoop loop;
    auto sctx = alpha_server();
    const auto& other = testcerts::other();
    auto cctx = context(other.ca(), other.cert("alpha"), other.key("alpha"));
    End server, client;
    Pair pair(loop, server, *sctx, client, *cctx);
    REQUIRE(spin(loop, [&] { return server.closed && client.closed; }));
    CHECK_FALSE(client.established);
    CHECK_FALSE(server.established);
    CHECK(client.reason ==
          "TLS handshake failed: certificate verify failed (unable to get local issuer certificate)");
    CHECK(contains(server.reason, "TLS handshake failed"));
  }

  TEST_CASE("a server certificate for another name is refused (host name verification)") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End server, client;
    Pair pair(loop, server, *sctx, client, *cctx, "gamma");
    REQUIRE(spin(loop, [&] { return server.closed && client.closed; }));
    CHECK_FALSE(client.established);
    CHECK(contains(client.reason, "certificate verify failed (hostname mismatch)"));
  }

  TEST_CASE("an IP literal as the verified name matches the certificate's IP entry") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End ok_server, ok_client, bad_server, bad_client;
    Pair good(loop, ok_server, *sctx, ok_client, *cctx, "127.0.0.1");
    Pair bad(loop, bad_server, *sctx, bad_client, *cctx, "127.0.0.2");
    REQUIRE(spin(loop, [&] { return ok_client.established && bad_client.closed; }));
    CHECK(contains(bad_client.reason, "IP address mismatch"));
  }

  TEST_CASE("a server that demands a client certificate refuses a client without one") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = context(testcerts::herd().ca(), "", "");
    End server, client;
    Pair pair(loop, server, *sctx, client, *cctx);
    loop.queue([&] { client.conn->send("HERD beta\n"); });
    REQUIRE(spin(loop, [&] { return server.closed && client.closed; }));
    CHECK_FALSE(server.established);
    CHECK(server.received.empty());
    CHECK(contains(server.reason, "peer did not return a certificate"));
    // In TLS 1.3 the client finishes first and learns of the refusal from the server's alert.
    INFO(client.reason);
    CHECK(contains(client.reason, "certificate required"));
  }

  TEST_CASE("a client certificate from another CA is refused by the server") {
    EventLoop loop;
    auto sctx = alpha_server();
    const auto& other = testcerts::other();
    // Trusts the herd CA (so it accepts alpha) but presents a certificate the herd CA did not sign.
    auto cctx = context(testcerts::herd().ca(), other.cert("alpha"), other.key("alpha"));
    End server, client;
    Pair pair(loop, server, *sctx, client, *cctx);
    REQUIRE(spin(loop, [&] { return server.closed && client.closed; }));
    CHECK_FALSE(server.established);
    CHECK(contains(server.reason, "certificate verify failed"));
    INFO(client.reason);
    CHECK(contains(client.reason, "unknown ca"));
  }

  TEST_CASE("TLS 1.2 works, renegotiation is refused, and TLS 1.1 is refused") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End server, client, old_server, old_client;
    server.echo = true;
    Pair pair(loop, server, *sctx, client, *cctx);
    Pair old(loop, old_server, *sctx, old_client, *cctx);
    loop.queue([&] {
      SSL_set_max_proto_version(client.conn->native(), TLS1_2_VERSION);
      SSL_set_max_proto_version(old_client.conn->native(), TLS1_1_VERSION);
      SSL_set_min_proto_version(old_client.conn->native(), TLS1_1_VERSION);
      client.conn->send("over 1.2\n");
    });
    REQUIRE(spin(loop, [&] { return client.received == "over 1.2\n" && old_server.closed && old_client.closed; }));
    CHECK(client.conn->protocol() == "TLSv1.2");
    CHECK(server.names == std::vector<std::string>{"beta", "herd.test", "beta"});
    CHECK_FALSE(old_server.established);
    CHECK(contains(old_server.reason, "TLS handshake failed: "));
    // The client asks for a renegotiation (its own context forbids it too: lifted for the test).
    int asked = 0;
    loop.queue([&] {
      SSL_clear_options(client.conn->native(), SSL_OP_NO_RENEGOTIATION);
      asked = SSL_renegotiate(client.conn->native());
      client.conn->send("after\n");  // carries the renegotiation's ClientHello first
    });
    REQUIRE(spin(loop, [&] { return client.closed; }));
    CHECK(asked == 1);
    CHECK(contains(client.reason, "no renegotiation"));  // the server's alert
    CHECK(SSL_num_renegotiations(server.conn->native()) == 0);
    CHECK(server.received.find("after\n") == std::string::npos);  // never taken from a refused renegotiation
  }

  TEST_CASE("a server that does not demand client certificates accepts a plain client") {
    EventLoop loop;
    const auto& c = testcerts::herd();
    auto sctx = context(c.ca(), c.cert("alpha"), c.key("alpha"), false);
    auto cctx = context(c.ca(), "", "");
    End server, client;
    server.echo = true;
    Pair pair(loop, server, *sctx, client, *cctx);
    loop.queue([&] { client.conn->send("ping\n"); });
    REQUIRE(spin(loop, [&] { return client.received == "ping\n"; }));
    CHECK(server.names.empty());
  }

  TEST_CASE("plaintext sent to a TLS server is refused cleanly") {
    EventLoop loop;
    auto sctx = alpha_server();
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    End server;
    server.conn = std::make_unique<TlsConnection>(loop, sv[0], server, *sctx, TlsConnection::Role::kServer, "");
    loop.queue([&] { server.conn->start(); });
    REQUIRE(::write(sv[1], "HERD Hands\nAT Hands +0.1 x +1+1 1.0\n", 36) == 36);
    REQUIRE(spin(loop, [&] { return server.closed; }));
    CHECK_FALSE(server.established);
    CHECK(server.received.empty());
    CHECK(contains(server.reason, "TLS handshake failed: "));
    CHECK(contains(server.reason, "wrong version number"));  // "HERD" is no TLS record header
    ::close(sv[1]);
  }

  TEST_CASE("a silent peer runs into the handshake timeout, in either role") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    int a[2], b[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) == 0);
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b) == 0);
    End server, client;
    server.conn = std::make_unique<TlsConnection>(loop, a[0], server, *sctx, TlsConnection::Role::kServer, "", 80ms);
    client.conn = std::make_unique<TlsConnection>(loop, b[0], client, *cctx, TlsConnection::Role::kClient, "alpha",
                                                  80ms);
    auto started = std::chrono::steady_clock::now();
    loop.queue([&] {
      server.conn->start();
      client.conn->start();
    });
    REQUIRE(spin(loop, [&] { return server.closed && client.closed; }, 3000ms));
    CHECK(std::chrono::steady_clock::now() - started >= 80ms);
    CHECK(server.reason == "TLS handshake timed out after 80 ms");
    CHECK(client.reason == "TLS handshake timed out after 80 ms");
    ::close(a[1]);
    ::close(b[1]);
  }

  TEST_CASE("a peer that hangs up during the handshake closes it at once, not at the timeout") {
    EventLoop loop;
    auto cctx = beta_client();
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    End client;
    client.conn = std::make_unique<TlsConnection>(loop, sv[0], client, *cctx, TlsConnection::Role::kClient, "alpha");
    loop.queue([&] { client.conn->start(); });
    ::close(sv[1]);
    REQUIRE(spin(loop, [&] { return client.closed; }, 1000ms));
    CHECK(contains(client.reason, "TLS handshake failed: "));
  }

  TEST_CASE("running out of memory for what send() keeps fails that connection, not its caller") {
    // Before the handshake every byte sent is kept; a keep that cannot be allocated (a length no
    // allocation can hold: refused before any byte is read) must close the connection, as
    // TcpConnection::send does, not throw into whichever handler or task called send().
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    End server, client;
    Pair pair(loop, server, *sctx, client, *cctx);
    static const char byte = 'x';
    bool threw = false;
    loop.queue([&] {
      try {
        client.conn->send(std::string_view(&byte, static_cast<size_t>(PTRDIFF_MAX)));
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    });
    REQUIRE(spin(loop, [&] { return client.closed || threw; }));
    CHECK_FALSE(threw);
    CHECK(client.reason == "out of memory");
  }

  TEST_CASE("a closed connection before its handshake ends cancels the timer (no late callback)") {
    EventLoop loop;
    auto sctx = alpha_server();
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    End server;
    server.conn = std::make_unique<TlsConnection>(loop, sv[0], server, *sctx, TlsConnection::Role::kServer, "", 30ms);
    loop.queue([&] {
      server.conn->start();
      server.conn->close("owner gave up");
    });
    REQUIRE(spin(loop, [&] { return server.closed; }));
    server.reason.clear();
    CHECK_FALSE(spin(loop, [&] { return !server.reason.empty(); }, 100ms));
    ::close(sv[1]);
  }
}

namespace {

// Receives a known byte pattern, checks it, and pauses itself after every `pause_every` bytes for a
// few milliseconds (backpressure). Counts deliveries that arrive while it is paused (must be none).
struct Sink : End {
  size_t got = 0;
  size_t next_pause;
  size_t pause_every;
  bool paused = false;
  bool pattern_ok = true;
  int pauses = 0;
  int delivered_while_paused = 0;
  explicit Sink(size_t every) : next_pause(every), pause_every(every) {}

  static char at(size_t i) { return static_cast<char>('a' + (i * 7 + i / 4093) % 26); }

  size_t on_data(reactor::Connection& c, std::string_view data) override {
    if (paused) ++delivered_while_paused;
    size_t take = std::min(data.size(), next_pause - got);
    for (size_t i = 0; i < take; ++i) pattern_ok = pattern_ok && data[i] == at(got + i);
    got += take;
    if (got == next_pause) {
      next_pause += pause_every;
      paused = true;
      ++pauses;
      c.set_reading(false);
      c.loop().run_after(3ms, [this, &c] {
        paused = false;
        c.set_reading(true);
      });
    }
    return take;
  }
};

std::string pattern(size_t from, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = Sink::at(from + i);
  return s;
}

}  // namespace

TEST_SUITE("tls") {
  TEST_CASE("large transfers both ways: partial writes, paused readers, key updates in flight") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    Sink server(700 * 1000), client(300 * 1000);
    Pair pair(loop, server, *sctx, client, *cctx);
    int small = 8192;
    ::setsockopt(pair.sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(pair.sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    const size_t to_server = 6 * 1024 * 1024 + 123, to_client = 3 * 1024 * 1024 + 7;
    size_t pending_after_send = 0;
    const size_t early = to_server / 2;
    loop.queue([&] {
      // Half sent in uneven pieces before the handshake is even done...
      for (size_t off = 0; off < early; off += 100003) {
        client.conn->send(pattern(off, std::min<size_t>(100003, early - off)));
      }
      server.conn->send(pattern(0, to_client));
      pending_after_send = client.conn->pending_output();
    });
    // ...and the other half once it is, straight into a socket that soon pushes back.
    REQUIRE(spin(loop, [&] { return client.established; }));
    loop.queue([&] {
      for (size_t off = early; off < to_server; off += 65536) {
        client.conn->send(pattern(off, std::min<size_t>(65536, to_server - off)));
      }
    });
    // TLS 1.3 key updates, requested from both sides while the data flows: the peer must answer
    // with its own, which it may have to write while it is reading (and the socket is full).
    int updates = 0;
    EventLoop::TimerId updater = 0;
    loop.queue([&] {
      updater = loop.run_every(2ms, [&] {
        for (End* e : {static_cast<End*>(&server), static_cast<End*>(&client)}) {
          if (!e->established || !e->conn->is_open()) continue;
          if (SSL_key_update(e->conn->native(), SSL_KEY_UPDATE_REQUESTED) == 1) ++updates;
          ERR_clear_error();
        }
      });
    });
    bool done = spin(loop, [&] { return server.got == to_server && client.got == to_client; }, 20000ms);
    loop.queue([&] { loop.cancel(updater); });
    spin(loop, [] { return true; });
    INFO("server: " << server.reason << "; client: " << client.reason << "; updates " << updates);
    CHECK(done);
    CHECK(server.got == to_server);
    CHECK(client.got == to_client);
    CHECK(server.pattern_ok);
    CHECK(client.pattern_ok);
    CHECK(pending_after_send == early);  // nothing can be written before the handshake
    CHECK(server.pauses >= 8);
    CHECK(server.delivered_while_paused == 0);
    CHECK(client.delivered_while_paused == 0);
    CHECK(updates > 0);
    CHECK(client.conn->pending_output() == 0);
    CHECK(client.drained >= 1);
    CHECK(server.drained >= 1);
    CHECK_FALSE(server.closed);
    CHECK_FALSE(client.closed);
  }

  TEST_CASE("a paused reader still gets its EOF once it resumes, after the data it held") {
    EventLoop loop;
    auto sctx = alpha_server();
    auto cctx = beta_client();
    // Takes one line per call and pauses after each.
    struct OneLine : End {
      size_t on_data(reactor::Connection& c, std::string_view data) override {
        size_t nl = data.find('\n');
        if (nl == std::string_view::npos) return 0;
        received.append(data.substr(0, nl + 1));
        c.set_reading(false);
        return nl + 1;
      }
    } server;
    End client;
    Pair pair(loop, server, *sctx, client, *cctx);
    loop.queue([&] { client.conn->send("a\nb\nc\ntail"); });
    // A half-close, so that the peer end stays open (a socketpair whose other end is gone reports a
    // hang-up, which closes a paused reader, as for TcpConnection).
    REQUIRE(spin(loop, [&] { return client.established && client.conn->pending_output() == 0; }));
    ::shutdown(client.conn->fd(), SHUT_WR);
    REQUIRE(spin(loop, [&] { return server.received == "a\n"; }));
    CHECK_FALSE(spin(loop, [&] { return server.received.size() > 2 || server.eof; }, 100ms));
    loop.queue([&] { server.conn->set_reading(true); });
    REQUIRE(spin(loop, [&] { return server.received == "a\nb\n"; }));
    CHECK_FALSE(server.eof);
    loop.queue([&] { server.conn->set_reading(true); });
    REQUIRE(spin(loop, [&] { return server.received == "a\nb\nc\n"; }));
    loop.queue([&] { server.conn->set_reading(true); });
    REQUIRE(spin(loop, [&] { return server.eof; }));
    CHECK(server.eof_rest == "tail");
  }

  TEST_CASE("a TcpConnection also tells its handler on_established, after start() returned") {
    EventLoop loop;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct Plain : End {
      bool during_start = false;
      bool in_start = false;
      void on_established(reactor::Connection&) override {
        established = true;
        during_start = in_start;
      }
    } plain;
    reactor::TcpConnection conn(loop, sv[0], plain);
    loop.queue([&] {
      plain.in_start = true;
      conn.start();
      plain.in_start = false;
    });
    REQUIRE(spin(loop, [&] { return plain.established; }));
    CHECK_FALSE(plain.during_start);
    ::close(sv[1]);
  }
}

TEST_SUITE("tls concurrency") {
  TEST_CASE("two loops on two threads, many TLS connections at once, one shared context per side") {
    auto sctx = alpha_server();
    auto cctx = beta_client();
    reactor::LoopGroup group(2);
    group.start();
    constexpr int kConnections = 64;
    constexpr int kLines = 50;
    std::atomic<int> finished{0};
    std::atomic<int> failures{0};

    // Server ends on loop 0 echo; client ends on loop 1 send kLines lines, check the echo, close.
    struct Client : End {
      std::atomic<int>* finished;
      std::atomic<int>* failures;
      std::string expected;
      size_t on_data(reactor::Connection& c, std::string_view data) override {
        received.append(data);
        if (received.size() >= expected.size()) {
          if (received != expected) failures->fetch_add(1);
          c.close_when_flushed("done");
        }
        return data.size();
      }
      void on_closed(reactor::Connection& c, std::string_view why) override {
        End::on_closed(c, why);
        if (why != "done") failures->fetch_add(1);
        finished->fetch_add(1);
      }
    };
    std::vector<std::unique_ptr<End>> servers;
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < kConnections; ++i) {
      int sv[2];
      REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
      auto server = std::make_unique<End>();
      server->echo = true;
      auto client = std::make_unique<Client>();
      client->finished = &finished;
      client->failures = &failures;
      for (int l = 0; l < kLines; ++l) client->expected += "line " + std::to_string(i) + " " + std::to_string(l) + "\n";
      End* s = server.get();
      Client* c = client.get();
      EventLoop& l0 = group.loop(0);
      EventLoop& l1 = group.loop(1);
      l0.queue([s, &l0, fd = sv[0], &sctx] {
        s->conn = std::make_unique<TlsConnection>(l0, fd, *s, *sctx, TlsConnection::Role::kServer, "");
        s->conn->start();
      });
      l1.queue([c, &l1, fd = sv[1], &cctx] {
        c->conn = std::make_unique<TlsConnection>(l1, fd, *c, *cctx, TlsConnection::Role::kClient, "alpha");
        c->conn->start();
        c->conn->send(c->expected);
      });
      servers.push_back(std::move(server));
      clients.push_back(std::move(client));
    }
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (finished.load() < kConnections && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
    }
    CHECK(finished.load() == kConnections);
    CHECK(failures.load() == 0);
    // Free every connection on its own loop thread, then stop.
    std::atomic<int> freed{0};
    group.loop(0).queue([&] {
      for (auto& s : servers) s->conn.reset();
      freed.fetch_add(1);
    });
    group.loop(1).queue([&] {
      for (auto& c : clients) c->conn.reset();
      freed.fetch_add(1);
    });
    while (freed.load() < 2 && std::chrono::steady_clock::now() < deadline + 5s) std::this_thread::sleep_for(1ms);
    group.stop();
    CHECK(freed.load() == 2);
  }
}
