// PeerLink implementation.
#include "herd/peer_link.h"

#include "herd/peer_tls.h"
#include "herd/server.h"
#include "reactor/tcp_connection.h"
#include "reactor/tls_connection.h"

#include <algorithm>

namespace herd {
namespace {
// A connection that lasted this long resets the backoff: the next failure retries quickly again.
constexpr auto kHealthyAfter = std::chrono::seconds(5);
}  // namespace

PeerLink::PeerLink(Server& server, reactor::EventLoop& loop, const ServerConfig& peer)
    : server_(server),
      loop_(loop),
      peer_(peer.name),
      outbox_limit_(server.limits().peer_outbox_bytes),
      // By host name: looked up again before every redial, so a neighbour that moved is found.
      connector_(
          loop, peer.host, peer.peer_port,
          reactor::Backoff(reactor::Backoff::Millis(server.config().peer_backoff_initial_ms),
                           reactor::Backoff::Millis(server.config().peer_backoff_max_ms)),
          [this](int fd) { connected(fd); },
          [this](std::string_view error, reactor::Backoff::Millis retry_in) {
            server_.log().write(lane(), peer_, '!', std::string(error) + "; retrying in " +
                                                         std::to_string(retry_in.count()) + " ms");
          }) {}

PeerLink::~PeerLink() = default;

int PeerLink::lane() const { return loop_.index(); }

void PeerLink::start() {
  loop_.assert_in_loop();
  stopped_ = false;
  connector_.start();
}

void PeerLink::stop() {
  stopped_ = true;
  connector_.stop();
  if (conn_) conn_->close("server stopping");
}

void PeerLink::connected(int fd) {
  reactor::set_keepalive(fd, Server::kPeerKeepaliveIdleS, Server::kPeerKeepaliveIntervalS, Server::kPeerKeepaliveCount);
  if (const reactor::TlsContext* tls = server_.peer_tls()) {
    // The neighbour's certificate must come from the herd CA and carry its name.
    conn_ = std::make_unique<reactor::TlsConnection>(loop_, fd, *this, *tls, reactor::TlsConnection::Role::kClient,
                                                     peer_, Server::kPeerHandshakeTimeout);
  } else {
    conn_ = std::make_unique<reactor::TcpConnection>(loop_, fd, *this);
  }
  conn_->start();  // on_established follows (at once for plain TCP, after the handshake for TLS)
}

void PeerLink::on_established(reactor::Connection& c) {
  std::string how = "link up";
  if (server_.peer_tls()) {
    auto& tls = static_cast<reactor::TlsConnection&>(c);
    // Host name verification has passed; ask for the exact name too (no wildcard, no case folding).
    if (!tls.peer_has_name(peer_)) {
      c.close("the neighbour's certificate names " + join_names(tls.peer_names()) + ", not " + peer_);
      return;
    }
    how += " (" + std::string(tls.protocol()) + ", certificate of " + peer_ + " verified)";
  }
  connected_at_ = std::chrono::steady_clock::now();
  up_.store(true, std::memory_order_relaxed);
  server_.log().write(lane(), peer_, '+', how);
  std::string hello = "HERD " + server_.self().name;
  server_.log().write(lane(), peer_, '>', hello);
  hello.push_back('\n');
  c.send(hello);
  flush_outbox();
}

void PeerLink::enqueue(std::string_view record) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (outbox_.size() + record.size() + 1 > outbox_limit_) make_room_locked(record.size() + 1);
    if (outbox_.size() + record.size() + 1 <= outbox_limit_) {
      outbox_.append(record).push_back('\n');
    } else {
      ++dropped_;  // larger than the whole outbox; reported by the next flush
    }
    if (!flush_queued_) {
      flush_queued_ = true;
      wake = true;
    }
  }
  if (wake) loop_.queue([this] { flush_outbox(); });
}

void PeerLink::make_room_locked(size_t need) {
  // Newer records supersede older ones for the same client, so the oldest go first: the front half
  // of the outbox at once (one move per many records, not one per record), cut at a line boundary.
  while (!outbox_.empty() && outbox_.size() + need > outbox_limit_) {
    size_t cut = outbox_.find('\n', outbox_.size() / 2);
    cut = cut == std::string::npos ? outbox_.size() : cut + 1;
    dropped_ += static_cast<uint64_t>(std::count(outbox_.begin(), outbox_.begin() + static_cast<std::ptrdiff_t>(cut), '\n'));
    outbox_.erase(0, cut);
  }
}

void PeerLink::flush_outbox() {
  uint64_t dropped;
  bool can_send;
  {
    std::lock_guard lock(mu_);
    flush_queued_ = false;
    dropped = dropped_;
    dropped_ = 0;
    // While down or backed up, records wait in the outbox (bounded by outbox_limit_).
    // Records wait for the handshake: sent on a link that then fails it, they would be lost.
    can_send = up_.load(std::memory_order_relaxed) && conn_ && conn_->is_open() &&
               conn_->pending_output() <= kMaxUnsentBytes;
    if (can_send) batch_.swap(outbox_);
  }
  if (dropped) {
    server_.log().write(lane(), peer_, '!', "outbox full: " + std::to_string(dropped) + " oldest records dropped");
  }
  if (!can_send || batch_.empty()) return;
  server_.log().write_each_line(lane(), peer_, '>', batch_);
  conn_->send(batch_);
  batch_.clear();
  if (batch_.capacity() > (1u << 20)) std::string().swap(batch_);
}

size_t PeerLink::on_data(reactor::Connection&, std::string_view data) {
  return data.size();  // neighbours never write on this link; ignore anything that comes
}

void PeerLink::on_eof(reactor::Connection& c, std::string_view) { c.close("neighbour closed the link"); }

void PeerLink::on_drained(reactor::Connection&) {
  bool more;
  {
    std::lock_guard lock(mu_);
    more = !outbox_.empty();
  }
  if (more) flush_outbox();
}

void PeerLink::on_closed(reactor::Connection&, std::string_view reason) {
  bool was_up = up_.exchange(false, std::memory_order_relaxed);
  if (was_up) {
    server_.log().write(lane(), peer_, '-', "link down: ", reason);
    if (std::chrono::steady_clock::now() - connected_at_ >= kHealthyAfter) connector_.reset_backoff();
  } else {
    server_.log().write(lane(), peer_, '!', "link not established: ", reason);
  }
  // Free the connection after this iteration (its events may still be in the batch).
  auto* dead = conn_.release();
  loop_.defer([dead] { delete dead; });
  if (!stopped_) connector_.retry();
}

}  // namespace herd
