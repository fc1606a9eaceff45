// LoopPool: the HTTP client's state on one event loop: the requests in progress, the kept-alive
// connections to the upstream (a small idle pool, most recently used first, each closed after the
// idle timeout), and the upstream's looked-up addresses. A request takes an idle connection when
// there is one and opens a new one otherwise; a request whose reused connection turns out to be
// stale (closed by the server before any response byte) is sent once more on a fresh connection.
//
// Threads: loop thread only, except that HttpClient creates it on any thread. Held by shared_ptr so
// that answers queued by the resolver thread can tell that it is gone (weak_ptr).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/client_options.h"
#include "http/upstream_connection.h"
#include "reactor/event_loop.h"
#include "reactor/resolver.h"

namespace http {

// Counters shared by every loop of one client (any thread may read them).
struct ClientCounters {
  std::atomic<uint64_t> requests{0};            // send() calls
  std::atomic<uint64_t> connections_opened{0};  // dials started
  std::atomic<uint64_t> reused{0};              // requests sent on a kept-alive connection
};

class LoopPool final : public UpstreamConnection::Owner, public std::enable_shared_from_this<LoopPool> {
 public:
  using Done = std::function<void(Result)>;

  LoopPool(reactor::EventLoop& loop, const ClientOptions& options, reactor::Resolver& resolver,
           ClientCounters& counters);
  ~LoopPool();

  // Loop thread: sends `request`; `done` runs exactly once on this loop, never inside send().
  void send(Request request, std::chrono::milliseconds timeout, Done done);
  // Loop thread: fails every request in progress with `reason`, closes every connection; later
  // send() calls fail at once (deferred). Timers are cancelled, so the pool may then be freed.
  void stop(std::string_view reason);

  // UpstreamConnection::Owner
  void on_outcome(UpstreamConnection& c, UpstreamConnection::Outcome outcome) override;
  void on_lost(UpstreamConnection& c, std::string_view reason) override;

 private:
  struct Exchange {
    std::string bytes;  // the serialized request
    Done done;
    reactor::EventLoop::TimerId timer = 0;
    std::chrono::milliseconds timeout{0};
    uint64_t conn = 0;          // the connection carrying it, 0 while waiting for an address
    bool fresh_retry = false;   // already re-sent once after a stale kept-alive connection
  };

  void start(uint64_t ex_id);
  void open_connection(uint64_t ex_id);
  void dial(uint64_t ex_id);
  void on_resolved(reactor::Resolver::Addresses addresses, std::string error);
  void on_timeout(uint64_t ex_id);
  void finish(uint64_t ex_id, Result result);
  void make_idle(UpstreamConnection& c);
  void retire(uint64_t conn_id);  // closed connections are freed at the end of the iteration
  void forget_idle(uint64_t conn_id);

  reactor::EventLoop& loop_;
  const ClientOptions& options_;
  reactor::Resolver& resolver_;
  ClientCounters& counters_;
  bool stopped_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Exchange> exchanges_;
  std::unordered_map<uint64_t, std::unique_ptr<UpstreamConnection>> conns_;
  std::unordered_map<uint64_t, uint64_t> carrying_;  // connection id -> exchange id
  std::vector<uint64_t> idle_;                       // connection ids, most recently used last
  std::unordered_map<uint64_t, reactor::EventLoop::TimerId> idle_timers_;
  // Retired connections, by id, each freed by a deferred task of its own queued when it retired: after
  // every task the connection itself queued before (a freed connection's task would run on freed memory).
  std::unordered_map<uint64_t, std::unique_ptr<UpstreamConnection>> graveyard_;
  // The upstream's addresses, looked up once per dns_ttl.
  reactor::Resolver::Addresses addresses_;
  std::chrono::steady_clock::time_point addresses_until_{};
  bool resolving_ = false;
  std::vector<uint64_t> waiting_for_address_;  // exchange ids
};

}  // namespace http
