// PeerLink: this server's one long-lived connection to one neighbour, used to flood AT records to it.
// It dials the neighbour's peer port (over TLS when the config has peer_tls: the neighbour's
// certificate must come from the herd CA and name it, and this server presents its own) and, once the
// stream is established, hands it to its CatchUpSender, which says hello,
// negotiates catch-up and writes the backlog entries owed to the neighbour (herd/catch_up_sender.h).
// Any thread may notify() the link that the backlog has something for it; one wake-up of the owning
// loop sends everything stored since the last, one write per backlog block read (past about 64 KiB
// CatchUpSender::pump goes on in a later loop turn). When the neighbour is down the link redials
// forever with capped, jittered exponential backoff; records stored meanwhile wait in the
// shared backlog (bounded; a neighbour that falls further behind than it reaches gets a full transfer
// instead), so a neighbour that is down, slow or restarting never stalls this server. Each dial looks the
// neighbour's host up again and gives up after a deadline (a neighbour that does not answer is
// retried, not waited for); the connection has TCP keepalive and a user timeout (limits.peer_timeout_ms),
// so a neighbour that vanished without closing is noticed, also while records are in flight to it.
//
// Threads: notify(), up() and the scrape counters from any thread; everything else on the owning loop's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "herd/catch_up_sender.h"
#include "herd/config.h"
#include "reactor/connection.h"
#include "reactor/connector.h"
#include "reactor/event_loop.h"

namespace herd {

struct LoopContext;

class PeerLink final : public reactor::ConnectionHandler {
 public:
  // Dials `peer`'s host (resolved again before every attempt) and peer port from the loop of `ctx`.
  // `bit`: the link's bit in the backlog's mask (FloodRouter::bit_for of its index).
  PeerLink(LoopContext& ctx, const ServerConfig& peer, uint64_t bit);
  ~PeerLink();

  const std::string& peer_name() const { return peer_; }
  // The loop that owns this link (fixed for its whole life).
  reactor::EventLoop& loop() const { return loop_; }
  // Any thread: whether the link is connected (and, over TLS, authenticated both ways) right now.
  // A connection counts from the neighbour's first answer (to the hello and SYNC), or from
  // kConfirmWait without one (a neighbour that answers no SYNC, as the asyncio reference): over TLS
  // 1.3 the dialler's handshake ends before the neighbour has checked its certificate, and a
  // refusal comes after it.
  bool up() const { return up_.load(std::memory_order_relaxed); }
  static constexpr std::chrono::milliseconds kConfirmWait{1000};

  void start();  // loop thread: dial
  void stop();   // loop thread: close and stop redialling

  // Any thread: the backlog holds something owed to the neighbour. Never blocks on the network.
  void notify();

  // Any thread: for scrapes. Records written to the neighbour (live, replayed and full-transfer), full
  // transfers of the table begun to it, and the backlog entries its cursor has not reached yet.
  uint64_t records_sent() const { return sender_.records_sent(); }
  uint64_t full_transfers() const { return sender_.full_transfers(); }
  uint64_t backlog_pending() const;
  // Loop thread: nothing left to write (not connected, or the cursor has caught up with the backlog and
  // the connection has written everything it buffered). For graceful stop.
  bool quiet() const;
  // Loop thread: writes what the backlog owes the neighbour now (notify() queues this; a graceful
  // stop calls it too, since a link owed nothing is never woken and its cursor would not move).
  void pump();

  void on_established(reactor::Connection& c) override;
  size_t on_data(reactor::Connection& c, std::string_view data) override;
  void on_eof(reactor::Connection& c, std::string_view rest) override;
  void on_drained(reactor::Connection& c) override;
  void on_closed(reactor::Connection& c, std::string_view reason) override;

 private:
  void connected(int fd);
  // Loop thread: the connection is taken as accepted by the neighbour: the link is up.
  void confirm();

  LoopContext& ctx_;
  reactor::EventLoop& loop_;
  const std::string peer_;
  reactor::Connector connector_;
  std::unique_ptr<reactor::Connection> conn_;  // null while not connected
  std::chrono::steady_clock::time_point connected_at_{};
  bool stopped_ = false;
  bool established_ = false;  // the handshake is done and the neighbour's name checked; not yet up_
  std::string established_how_;  // for the "link up" entry
  reactor::EventLoop::TimerId confirm_timer_ = 0;
  std::atomic<bool> up_{false};
  std::atomic<bool> pump_queued_{false};  // a pump task is on its way to the loop
  CatchUpSender sender_;
};

}  // namespace herd
