// PeerLink implementation.
#include "herd/peer_link.h"

#include "herd/peer_tls.h"
#include "herd/loop_context.h"
#include "reactor/tcp_connection.h"
#include "reactor/tls_connection.h"

namespace herd {
namespace {
// A connection that lasted this long resets the backoff: the next failure retries quickly again.
constexpr auto kHealthyAfter = std::chrono::seconds(5);
}  // namespace

PeerLink::PeerLink(LoopContext& ctx, const ServerConfig& peer, uint64_t bit)
    : ctx_(ctx),
      loop_(ctx.loop),
      peer_(peer.name),
      // By host name: looked up again before every redial, so a neighbour that moved is found.
      connector_(
          ctx.loop, peer.host, peer.peer_port,
          reactor::Backoff(reactor::Backoff::Millis(ctx.server.config.peer_backoff_initial_ms),
                           reactor::Backoff::Millis(ctx.server.config.peer_backoff_max_ms)),
          [this](int fd) { connected(fd); },
          [this](std::string_view error, reactor::Backoff::Millis retry_in) {
            ctx_.log.write(peer_, '!', std::string(error) + "; retrying in " +
                                                         std::to_string(retry_in.count()) + " ms");
          }),
      sender_(ctx, peer_, bit, [this] { pump(); }) {}

PeerLink::~PeerLink() {
  // Its callback holds `this`. stop() (on the loop) has ended the connection, which cancelled it,
  // so this is nothing in the server's order of things; it keeps a link destroyed otherwise safe.
  if (confirm_timer_) loop_.cancel(confirm_timer_);
}

void PeerLink::start() {
  loop_.assert_in_loop();
  stopped_ = false;
  connector_.start();
}

void PeerLink::stop() {
  stopped_ = true;
  connector_.stop();
  sender_.stop();
  if (conn_) conn_->close("server stopping");
}

void PeerLink::connected(int fd) {
  // The neighbour's certificate must come from the herd CA and carry its name.
  conn_ = open_peer_connection(loop_, fd, *this, ctx_.server.peer_tls, reactor::TlsConnection::Role::kClient, peer_,
                               ctx_.server.limits().peer_timeout_ms);
  conn_->start();  // on_established follows (at once for plain TCP, after the handshake for TLS)
}

void PeerLink::on_established(reactor::Connection& c) {
  std::string how = "link up";
  if (ctx_.server.peer_tls) {
    auto& tls = static_cast<reactor::TlsConnection&>(c);
    // Host name verification has passed; ask for the exact name too (no wildcard, no case folding).
    if (!tls.peer_has_name(peer_)) {
      c.close("the neighbour's certificate names " + join_names(tls.peer_names()) + ", not " + peer_);
      return;
    }
    how += " (" + std::string(tls.protocol()) + ", certificate of " + peer_ + " verified)";
  }
  connected_at_ = std::chrono::steady_clock::now();
  established_ = true;
  established_how_ = std::move(how);
  sender_.start(c);  // the hello and SYNC; records wait until the link is up
  confirm_timer_ = loop_.run_after(kConfirmWait, [this] {
    confirm_timer_ = 0;
    confirm();
  });
}

void PeerLink::confirm() {
  if (up_.load(std::memory_order_relaxed) || !established_ || !conn_ || !conn_->is_open()) return;
  if (confirm_timer_) loop_.cancel(confirm_timer_);
  confirm_timer_ = 0;
  up_.store(true, std::memory_order_relaxed);
  ctx_.log.write(peer_, '+', established_how_);
  pump();
}

void PeerLink::notify() {
  if (pump_queued_.exchange(true, std::memory_order_acq_rel)) return;
  loop_.queue([this] {
    pump_queued_.store(false, std::memory_order_release);
    pump();
  });
}

bool PeerLink::quiet() const {
  if (!conn_ || !conn_->is_open()) return true;
  return sender_.caught_up() && conn_->pending_output() == 0;
}

uint64_t PeerLink::backlog_pending() const {
  const uint64_t next = ctx_.server.backlog.next_seq();
  const uint64_t at = sender_.published_cursor_seq();
  return next > at ? next - at : 0;
}

void PeerLink::pump() {
  // While down (or before the handshake: records sent on a link that then fails it would be lost),
  // records wait in the backlog; the sender's cursor stays where it was.
  if (up_.load(std::memory_order_relaxed) && conn_ && conn_->is_open()) sender_.pump(*conn_);
}

size_t PeerLink::on_data(reactor::Connection& c, std::string_view data) {
  if (!established_) return data.size();
  confirm();  // the neighbour answered: it took our hello (and certificate)
  return sender_.on_data(c, data);  // the neighbour's catch-up answer
}

void PeerLink::on_eof(reactor::Connection& c, std::string_view) { c.close("neighbour closed the link"); }

void PeerLink::on_drained(reactor::Connection&) { pump(); }

void PeerLink::on_closed(reactor::Connection&, std::string_view reason) {
  bool was_up = up_.exchange(false, std::memory_order_relaxed);
  established_ = false;
  if (confirm_timer_) loop_.cancel(confirm_timer_);
  confirm_timer_ = 0;
  sender_.stop();
  if (was_up) {
    ctx_.log.write(peer_, '-', "link down: ", reason);
    if (std::chrono::steady_clock::now() - connected_at_ >= kHealthyAfter) connector_.reset_backoff();
  } else {
    ctx_.log.write(peer_, '!', "link not established: ", reason);
  }
  // Free the connection after this iteration (its events may still be in the batch).
  auto* dead = conn_.release();
  loop_.defer([dead] { delete dead; });
  if (!stopped_) connector_.retry();
}

}  // namespace herd
