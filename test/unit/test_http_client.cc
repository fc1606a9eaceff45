// Unit tests for http/client: requests against a scripted server on loopback: keep-alive reuse, a
// stale kept-alive connection, Connection: close, a body longer than announced, a response that ends
// where a full read ends (more may wait behind it), timeouts (no answer, a response that never
// ends), refused connections, name lookup on the resolver thread, stop_loop, and (suite
// "concurrency", run under ThreadSanitizer) two loops sharing one client.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http_test_server.h"
#include "loop_runner.h"
#include "reactor/event_loop.h"
#include "reactor/connection.h"
#include "reactor/loop_group.h"
#include "reactor/socket.h"
#include "reactor/tls_context.h"
#include "test/unit/test_certs.h"

using namespace std::chrono_literals;
using reactor::EventLoop;
using testing_http::Reply;
using testing_http::TestServer;
using testing_loop::run_until;

namespace {

// Closes the client's state on `loop` (required before the loop goes away).
void stop_client(EventLoop& loop, http::HttpClient& client) {
  bool done = false;
  loop.queue([&] {
    client.stop_loop(loop);
    done = true;
  });
  run_until(loop, [&] { return done; });
}

http::ClientOptions options_for(uint16_t port, const std::string& host = "127.0.0.1", const std::string& ca = "") {
  std::string error;
  auto url = http::parse_url((ca.empty() ? "http://" : "https://") + host + ":" + std::to_string(port) + "/base", &error);
  REQUIRE(url);
  http::ClientOptions o;
  o.endpoint = *url;
  if (!ca.empty()) {
    reactor::TlsContext::Options tls;
    tls.ca_file = ca;
    o.tls = reactor::TlsContext::create(tls, &error);
    REQUIRE_MESSAGE(o.tls, error);
  }
  return o;
}

http::Request get(const std::string& target) {
  http::Request r;
  r.target = target;
  return r;
}

// Sends `n` requests one after another on `loop`; returns the results.
std::vector<http::Result> sequential(EventLoop& loop, http::HttpClient& client, int n,
                                     std::chrono::milliseconds timeout = 2000ms) {
  std::vector<http::Result> results;
  std::function<void()> next = [&] {
    client.send(loop, get("/r" + std::to_string(results.size())), timeout, [&](http::Result r) {
      results.push_back(std::move(r));
      if (static_cast<int>(results.size()) < n) next();
    });
  };
  loop.queue(next);
  run_until(loop, [&] { return static_cast<int>(results.size()) == n; }, 10000ms);
  return results;
}

}  // namespace

TEST_SUITE("http client") {

TEST_CASE("requests reuse one kept-alive connection; the request is well formed") {
  TestServer server([](int, int i, const std::string&) {
    return Reply{testing_http::response("200 OK", "{\"n\":" + std::to_string(i) + "}")};
  });
  EventLoop loop;
  http::HttpClient client(options_for(server.port()));
  auto results = sequential(loop, client, 10);
  REQUIRE(results.size() == 10);
  for (int i = 0; i < 10; ++i) {
    CHECK(results[i].ok());
    CHECK(results[i].response.status == 200);
    CHECK(results[i].response.body == "{\"n\":" + std::to_string(i) + "}");
  }
  CHECK(server.connections() == 1);
  CHECK(client.connections_opened() == 1);
  CHECK(client.reused() == 9);
  auto got = server.received();
  REQUIRE(got.size() == 10);
  CHECK(got[3] == "GET /base/r3 HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                      "\r\nAccept-Encoding: gzip\r\n\r\n");
  stop_client(loop, client);
}

TEST_CASE("POST carries its body and headers") {
  TestServer server([](int, int, const std::string&) { return Reply{testing_http::response("200 OK", "{}")}; });
  EventLoop loop;
  http::HttpClient client(options_for(server.port()));
  http::Request r;
  r.method = "POST";
  r.target = "/v1/places:searchNearby";
  r.headers = {{"Content-Type", "application/json"}, {"X-Goog-FieldMask", "places.id"}};
  r.body = "{\"maxResultCount\":3}";
  bool done = false;
  loop.queue([&] { client.send(loop, r, 2000ms, [&](http::Result res) { done = res.ok(); }); });
  REQUIRE(run_until(loop, [&] { return done; }));
  auto got = server.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0] == "POST /base/v1/places:searchNearby HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                      "\r\nContent-Type: application/json\r\nX-Goog-FieldMask: places.id\r\nAccept-Encoding: gzip\r\n"
                      "Content-Length: 20\r\n\r\n{\"maxResultCount\":3}");
  stop_client(loop, client);
}

TEST_CASE("a kept-alive connection the server closed is replaced without failing the request") {
  // The server closes each connection right after its response, without saying so.
  TestServer server([](int, int, const std::string&) {
    return Reply{testing_http::response("200 OK", "{}"), true};
  });
  EventLoop loop;
  http::HttpClient client(options_for(server.port()));
  auto results = sequential(loop, client, 3);
  REQUIRE(results.size() == 3);
  for (auto& r : results) CHECK(r.ok());
  CHECK(server.connections() == 3);
  stop_client(loop, client);
}

TEST_CASE("Connection: close and a body longer than announced: the connection is not reused") {
  TestServer server([](int, int i, const std::string&) {
    if (i % 2 == 0) return Reply{testing_http::response("200 OK", "{}", "Connection: close\r\n")};
    return Reply{testing_http::response("200 OK", "{}") + "TRAILING GARBAGE"};
  });
  EventLoop loop;
  http::HttpClient client(options_for(server.port()));
  auto results = sequential(loop, client, 4);
  REQUIRE(results.size() == 4);
  for (auto& r : results) {
    CHECK(r.ok());
    CHECK(r.response.body == "{}");
  }
  CHECK(server.connections() == 4);
  CHECK(client.reused() == 0);
  stop_client(loop, client);
}

TEST_CASE("a response that ends exactly where a full read ends does not leave its connection to the next request") {
  // The first answer is exactly one read's worth of bytes (reactor::Connection::kReadChunk, as
  // plaintext over TLS), and a forged second answer follows it in the same write. The read that
  // brings the first answer's last byte fills its buffer and stops there, so the parser uses every
  // byte it was given, yet the forged bytes wait in the kernel right behind. Kept alive, the
  // connection would hand them to the next request as its answer.
  bool tls = false;
  SUBCASE("plain HTTP") {}
  SUBCASE("HTTPS") { tls = true; }
  const testcerts::Files& certs = testcerts::herd();
  std::string exact;
  for (size_t body = reactor::Connection::kReadChunk; exact.size() != reactor::Connection::kReadChunk;) {
    exact = testing_http::response("200 OK", std::string(body, 'x'));
    body -= exact.size() - reactor::Connection::kReadChunk;  // the head, then its longer Content-Length
  }
  const std::string forged = testing_http::response("200 OK", "{\"forged\":true}");
  std::atomic<bool> asked{false}, go{false}, delivered{false};
  auto wait_for = [](auto done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return done();
  };
  TestServer server([&](int, int i, const std::string&) {
    if (i > 0) return Reply{testing_http::response("200 OK", "{\"genuine\":" + std::to_string(i) + "}")};
    asked = true;
    wait_for([&] { return go.load(); });
    Reply r{exact + forged};
    r.after_write = [&](int fd) {
      // Acknowledged by the client's kernel: every byte is in its socket before it reads one.
      if (wait_for([&] { return reactor::unacked_bytes(fd) == 0; })) delivered = true;
    };
    return r;
  }, tls ? certs.cert("alpha") : "", tls ? certs.key("alpha") : "");
  EventLoop loop;
  http::HttpClient client(options_for(server.port(), "127.0.0.1", tls ? certs.ca() : ""));
  std::vector<http::Result> results;
  loop.queue([&] {
    client.send(loop, get("/first"), 5000ms, [&](http::Result first) {
      results.push_back(std::move(first));
      // Sent at once: it would go on the kept-alive connection, if there were one.
      client.send(loop, get("/second"), 5000ms, [&](http::Result second) { results.push_back(std::move(second)); });
    });
  });
  REQUIRE(run_until(loop, [&] { return asked.load(); }));
  // The loop stands still while the server writes both answers.
  go = true;
  REQUIRE(wait_for([&] { return delivered.load(); }));
  REQUIRE(run_until(loop, [&] { return results.size() == 2; }));
  CHECK(results[0].ok());
  CHECK(results[0].response.body.size() == exact.size() - (exact.find("\r\n\r\n") + 4));
  CHECK(results[1].ok());
  CHECK(results[1].response.body == "{\"genuine\":1}");
  CHECK(client.reused() == 0);
  CHECK(client.connections_opened() == 2);
  CHECK(server.connections() == 2);
  stop_client(loop, client);
}

TEST_CASE("no answer and an answer that never ends both time out, exactly once, on time") {
  TestServer server([](int, int i, const std::string&) {
    if (i == 0) return Reply{"", false, true};
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":", false, true};
  });
  EventLoop loop;
  http::HttpClient client(options_for(server.port()));
  for (int i = 0; i < 2; ++i) {
    std::vector<http::Result> results;
    auto start = std::chrono::steady_clock::now();
    loop.queue([&] { client.send(loop, get("/x"), 300ms, [&](http::Result r) { results.push_back(std::move(r)); }); });
    REQUIRE(run_until(loop, [&] { return !results.empty(); }));
    auto took = std::chrono::steady_clock::now() - start;
    run_until(loop, [] { return false; }, 200ms);  // nothing more may arrive
    REQUIRE(results.size() == 1);
    CHECK(results[0].error == "no complete response within 300 ms");
    CHECK(results[0].timed_out);
    CHECK(took >= 290ms);
    CHECK(took < 1500ms);
  }
  CHECK(server.connections() == 2);  // a timed-out connection is never reused
  stop_client(loop, client);
}

TEST_CASE("a refused connection, a malformed response and a close mid-body are errors") {
  uint16_t dead_port;
  {
    TestServer gone([](int, int, const std::string&) { return Reply{}; });
    dead_port = gone.port();
  }
  EventLoop loop;
  {
    http::HttpClient client(options_for(dead_port));
    std::vector<http::Result> results;
    loop.queue([&] { client.send(loop, get("/x"), 2000ms, [&](http::Result r) { results.push_back(std::move(r)); }); });
    REQUIRE(run_until(loop, [&] { return !results.empty(); }));
    CHECK(results[0].error.find("cannot connect to 127.0.0.1:" + std::to_string(dead_port)) == 0);
    CHECK(results[0].error.find("Connection refused") != std::string::npos);
    stop_client(loop, client);
  }
  TestServer server([](int, int i, const std::string&) {
    if (i == 0) return Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"};
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"cut", true};
  });
  http::HttpClient client(options_for(server.port()));
  auto results = sequential(loop, client, 2);
  REQUIRE(results.size() == 2);
  CHECK(results[0].error.find("malformed response") != std::string::npos);
  CHECK(results[1].error.find("middle of the response") != std::string::npos);
  stop_client(loop, client);
}

TEST_CASE("a host name is looked up on the resolver thread") {
  TestServer server([](int, int, const std::string&) { return Reply{testing_http::response("200 OK", "{}")}; });
  EventLoop loop;
  http::HttpClient client(options_for(server.port(), "localhost"));
  auto results = sequential(loop, client, 3);
  REQUIRE(results.size() == 3);
  for (auto& r : results) CHECK(r.ok());
  CHECK(server.connections() == 1);
  stop_client(loop, client);

  http::HttpClient nowhere(options_for(server.port(), "no-such-host.invalid"));
  auto failed = sequential(loop, nowhere, 1, 5000ms);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].error.find("cannot resolve host 'no-such-host.invalid'") == 0);
  stop_client(loop, nowhere);
}

TEST_CASE("stop_loop fails the requests in progress once, and later sends fail too") {
  TestServer server([](int, int, const std::string&) { return Reply{"", false, true}; });
  EventLoop loop;
  http::HttpClient client(options_for(server.port()));
  std::vector<std::string> errors;
  loop.queue([&] {
    for (int i = 0; i < 3; ++i) client.send(loop, get("/x"), 5000ms, [&](http::Result r) { errors.push_back(r.error); });
  });
  REQUIRE(run_until(loop, [&] { return server.requests() == 3; }));
  stop_client(loop, client);
  run_until(loop, [] { return false; }, 100ms);
  REQUIRE(errors.size() == 3);
  for (auto& e : errors) CHECK(e == "the HTTP client is stopping");
  loop.queue([&] { client.send(loop, get("/late"), 5000ms, [&](http::Result r) { errors.push_back(r.error); }); });
  REQUIRE(run_until(loop, [&] { return errors.size() == 4; }));
  CHECK(errors[3] == "the HTTP client is stopping");
  CHECK(server.requests() == 3);
}

TEST_CASE("a connection retired in the same turn as another is freed only after its own tasks") {
  // One loop turn: a kept-alive connection the server closed is retired (queueing the free of the
  // retired), two new connections start (queueing their first callbacks), and stop_loop retires
  // them. Each retired connection must outlive the tasks it queued before it retired (under ASan, a
  // use-after-free otherwise). The server side is a bare socket, so the test decides when it closes.
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(ls >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(ls, 16) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  EventLoop loop;
  http::HttpClient client(options_for(ntohs(a.sin_port)));
  std::atomic<int> first{0}, later{0};
  std::atomic<bool> turn_started{false};
  std::thread runner([&] { loop.run(); });
  loop.queue([&] { client.send(loop, get("/a"), 5000ms, [&](http::Result) { first = 1; }); });
  int kept = ::accept(ls, nullptr, nullptr);
  REQUIRE(kept >= 0);
  char buf[4096];
  CHECK(::read(kept, buf, sizeof buf) > 0);
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  CHECK(::write(kept, ok.data(), ok.size()) == static_cast<ssize_t>(ok.size()));
  while (!first) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);
  loop.queue([&] {
    for (int i = 0; i < 2; ++i) client.send(loop, get("/b"), 5000ms, [&](http::Result) { ++later; });
    loop.defer([&] { loop.run_after(0ms, [&] { client.stop_loop(loop); }); });
    turn_started = true;
    std::this_thread::sleep_for(150ms);  // the close below becomes ready within this turn
  });
  while (!turn_started) std::this_thread::sleep_for(1ms);
  ::close(kept);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (later < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(50ms);
  loop.stop();
  runner.join();
  CHECK(later == 2);  // both answered (by the stop), each once
  ::close(ls);  // with the connections the stop left unaccepted
}

TEST_CASE("requests with line breaks in their headers are refused, never inside send()") {
  EventLoop loop;
  http::HttpClient client(options_for(1));
  bool inside = false, called = false;
  std::string error;
  loop.queue([&] {
    inside = true;
    http::Request r = get("/x");
    r.headers = {{"X-Evil", "a\r\nInjected: yes"}};
    client.send(loop, r, 1000ms, [&](http::Result res) {
      called = true;
      CHECK_FALSE(inside);
      error = res.error;
    });
    inside = false;
  });
  REQUIRE(run_until(loop, [&] { return called; }));
  CHECK(error == "invalid request header");
  stop_client(loop, client);
}

TEST_CASE("https: the certificate is verified, and one TLS connection carries every request") {
  const testcerts::Files& certs = testcerts::herd();
  TestServer server([](int, int i, const std::string&) {
    return Reply{testing_http::response("200 OK", "{\"n\":" + std::to_string(i) + "}")};
  }, certs.cert("alpha"), certs.key("alpha"));
  EventLoop loop;
  std::vector<std::string> events;
  http::ClientOptions o = options_for(server.port(), "127.0.0.1", certs.ca());
  o.log = [&](EventLoop&, std::string_view e) { events.emplace_back(e); };
  http::HttpClient client(std::move(o));
  auto results = sequential(loop, client, 5);
  REQUIRE(results.size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(results[i].response.body == "{\"n\":" + std::to_string(i) + "}");
  CHECK(server.connections() == 1);
  REQUIRE(events.size() == 1);
  CHECK(events[0].find("connected to 127.0.0.1:" + std::to_string(server.port()) + " (https://127.0.0.1:") == 0);
  CHECK(events[0].find("TLSv1.") != std::string::npos);
  stop_client(loop, client);
}

TEST_CASE("https: a body that ends at the close is whole only with a close_notify") {
  // No Content-Length and not chunked: the close ends the body. Over TLS a bare FIN may come from a
  // crash or from anyone on the path, so only the sender's close_notify vouches for the end.
  const testcerts::Files& certs = testcerts::herd();
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
  TestServer server([&](int, int i, const std::string&) {
    Reply r{head + "{\"n\":" + std::to_string(i) + "}", true};
    r.close_notify = i == 0;
    return r;
  }, certs.cert("alpha"), certs.key("alpha"));
  EventLoop loop;
  http::HttpClient client(options_for(server.port(), "127.0.0.1", certs.ca()));
  auto results = sequential(loop, client, 2);
  REQUIRE(results.size() == 2);
  CHECK(results[0].error.empty());
  CHECK(results[0].response.body == "{\"n\":0}");
  CHECK(results[1].error.find("ended without a close_notify") != std::string::npos);
  stop_client(loop, client);
  // Over plain TCP the FIN is the end.
  TestServer plain([&](int, int, const std::string&) { return Reply{head + "{}", true}; });
  http::HttpClient tcp(options_for(plain.port()));
  auto tcp_results = sequential(loop, tcp, 1);
  REQUIRE(tcp_results.size() == 1);
  CHECK(tcp_results[0].error.empty());
  CHECK(tcp_results[0].response.body == "{}");
  stop_client(loop, tcp);
}

TEST_CASE("https: a certificate from another CA, or for another name, is refused") {
  const testcerts::Files& certs = testcerts::herd();
  TestServer untrusted([](int, int, const std::string&) { return Reply{testing_http::response("200 OK", "{}")}; },
                       testcerts::other().cert("alpha"), testcerts::other().key("alpha"));
  EventLoop loop;
  http::HttpClient client(options_for(untrusted.port(), "127.0.0.1", certs.ca()));
  auto results = sequential(loop, client, 1);
  REQUIRE(results.size() == 1);
  CHECK(results[0].error.find("TLS handshake failed: certificate verify failed") != std::string::npos);
  CHECK(untrusted.requests() == 0);
  stop_client(loop, client);

  // The herd CA's certificate names alpha, herd.test and 127.0.0.1, not localhost.
  TestServer misnamed([](int, int, const std::string&) { return Reply{testing_http::response("200 OK", "{}")}; },
                      certs.cert("alpha"), certs.key("alpha"));
  http::HttpClient by_name(options_for(misnamed.port(), "localhost", certs.ca()));
  auto named = sequential(loop, by_name, 1);
  REQUIRE(named.size() == 1);
  CHECK(named[0].error.find("certificate verify failed") != std::string::npos);
  CHECK(misnamed.requests() == 0);
  stop_client(loop, by_name);
}

}  // TEST_SUITE

TEST_SUITE("http client concurrency") {

TEST_CASE("two loops share one client: each keeps its own connections and answers") {
  bool tls = false;
  std::string host = "127.0.0.1";
  SUBCASE("plain HTTP") {}
  SUBCASE("HTTPS") { tls = true; }
  SUBCASE("plain HTTP to a name, looked up on the resolver thread for both loops") { host = "localhost"; }
  const testcerts::Files& certs = testcerts::herd();
  TestServer server([](int conn, int, const std::string& req) {
    // Echo the request path so each answer can be matched to its request.
    size_t sp = req.find(' ');
    std::string path = req.substr(sp + 1, req.find(' ', sp + 1) - sp - 1);
    return Reply{testing_http::response("200 OK", path + "@" + std::to_string(conn))};
  }, tls ? certs.cert("alpha") : "", tls ? certs.key("alpha") : "");
  http::HttpClient client(options_for(server.port(), host, tls ? certs.ca() : ""));
  reactor::LoopGroup group(2);
  group.start();
  const int per_loop = 200, parallel = 4;
  std::atomic<int> ok{0}, bad{0};
  std::atomic<int> stopped{0};
  std::function<void()> next[2];  // next[l] and sent[l]: loop l's thread only
  int sent[2] = {0, 0};
  for (int l = 0; l < 2; ++l) {
    EventLoop& loop = group.loop(l);
    loop.queue([&, l] {
      // Each answer sends the loop's next request; `parallel` chains run at once per loop.
      next[l] = [&, l] {
        if (sent[l] >= per_loop) return;
        int n = sent[l]++;
        std::string path = "/base/l" + std::to_string(l) + "n" + std::to_string(n);
        client.send(loop, get("/l" + std::to_string(l) + "n" + std::to_string(n)), 3000ms,
                    [&, path, l](http::Result r) {
                      bool good = r.ok() && r.response.body.rfind(path + "@", 0) == 0 && loop.in_loop_thread();
                      (good ? ok : bad).fetch_add(1);
                      next[l]();
                    });
      };
      for (int p = 0; p < parallel; ++p) next[l]();
    });
  }
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (ok + bad < 2 * per_loop && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  for (int l = 0; l < 2; ++l) {
    group.loop(l).queue([&, l] {
      client.stop_loop(group.loop(l));
      stopped.fetch_add(1);
    });
  }
  while (stopped < 2 && std::chrono::steady_clock::now() < deadline + 5s) std::this_thread::sleep_for(1ms);
  group.stop();
  CHECK(ok.load() == 2 * per_loop);
  CHECK(bad.load() == 0);
  // Each loop keeps at most `parallel` connections busy at once, and reuses them.
  CHECK(client.connections_opened() <= 2 * parallel);
  CHECK(server.connections() <= 2 * parallel);
}

}  // TEST_SUITE
