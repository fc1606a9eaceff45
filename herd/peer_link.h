// PeerLink: this server's one long-lived connection to one neighbour, used to flood AT records to it.
// It dials the neighbour's peer port (over TLS when the config has peer_tls: the neighbour's
// certificate must come from the herd CA and name it, and this server presents its own), says
// `HERD <own name>`, then writes the records queued in its outbox, batched: any thread may queue a record; one wake-up of the owning loop and one write carry
// everything queued since the last. When the neighbour is down it redials forever with capped,
// jittered exponential backoff; records queued meanwhile wait in the outbox (bounded: past the limit
// the oldest records are dropped, counted and logged, since newer ones supersede them), so a
// neighbour that is down, slow or restarting never stalls this server and gets the newest updates
// first when it is back. Each dial looks the neighbour's host up again and gives up after a deadline
// (a neighbour that does not answer is retried, not waited for); the connection has TCP keepalive,
// so a neighbour that vanished without closing is noticed.
//
// Threads: enqueue() from any thread; everything else on the owning loop's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "herd/config.h"
#include "reactor/connection.h"
#include "reactor/connector.h"
#include "reactor/event_loop.h"

namespace herd {

class Server;

class PeerLink final : public reactor::ConnectionHandler {
 public:
  // Unsent bytes at which the link stops taking records from its outbox until the socket drains.
  static constexpr size_t kMaxUnsentBytes = 4 * 1024 * 1024;

  // Dials `peer`'s host (resolved again before every attempt) and peer port from `loop`.
  PeerLink(Server& server, reactor::EventLoop& loop, const ServerConfig& peer);
  ~PeerLink();

  const std::string& peer_name() const { return peer_; }
  // The loop that owns this link (fixed for its whole life).
  reactor::EventLoop& loop() const { return loop_; }
  // Any thread: whether the link is connected (and, over TLS, authenticated) right now.
  bool up() const { return up_.load(std::memory_order_relaxed); }

  void start();  // loop thread: dial
  void stop();   // loop thread: close and stop redialling

  // Any thread: queues `record` (no newline) for the neighbour. Never blocks on the network.
  void enqueue(std::string_view record);

  void on_established(reactor::Connection& c) override;
  size_t on_data(reactor::Connection& c, std::string_view data) override;
  void on_eof(reactor::Connection& c, std::string_view rest) override;
  void on_drained(reactor::Connection& c) override;
  void on_closed(reactor::Connection& c, std::string_view reason) override;

 private:
  void connected(int fd);
  void flush_outbox();
  // Drops the oldest records until `need` more bytes fit in the outbox. mu_ must be held.
  void make_room_locked(size_t need);
  int lane() const;

  Server& server_;
  reactor::EventLoop& loop_;
  const std::string peer_;
  const size_t outbox_limit_;
  reactor::Connector connector_;
  std::unique_ptr<reactor::Connection> conn_;  // null while not connected
  std::chrono::steady_clock::time_point connected_at_{};
  bool stopped_ = false;
  std::atomic<bool> up_{false};
  std::string batch_;  // loop thread: the records being written

  std::mutex mu_;
  std::string outbox_;       // guarded by mu_: records + "\n", oldest first
  bool flush_queued_ = false;  // guarded by mu_: a flush task is on its way to the loop
  uint64_t dropped_ = 0;     // guarded by mu_: records dropped since last logged
};

}  // namespace herd
