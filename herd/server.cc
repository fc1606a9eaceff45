// Server implementation: binding, loop start-up, accepting and handing connections to loops.
#include "herd/server.h"

#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>

#include "herd/client_session.h"
#include "herd/peer_link.h"
#include "herd/peer_session.h"
#include "herd/peer_tls.h"

namespace herd {
namespace {
constexpr int kListenBacklog = 4096;
}  // namespace

LoopContext::LoopContext(reactor::EventLoop& l, Server& s) : loop(l), server(s) {}
LoopContext::~LoopContext() = default;

Server::Server(Config config, std::string name, std::shared_ptr<places::PlacesProvider> places,
               std::unique_ptr<LogSink> log)
    : config_(std::move(config)), places_(std::move(places)), log_(std::move(log)) {
  self_ = config_.find(name);
}

Server::~Server() { stop(); }

bool Server::restore(std::string* error) {
  std::vector<std::string> neighbour_names;
  for (const ServerConfig* n : config_.neighbours(self_->name)) neighbour_names.push_back(n->name);
  Recovered recovered;
  if (!config_.data_dir.empty()) {
    Persistence::Options o;
    o.dir = config_.resolve_path(config_.data_dir) + "/" + self_->name;
    o.server = self_->name;
    o.neighbours = neighbour_names;
    parse_fsync(config_.fsync, &o.fsync);
    o.compact_bytes = config_.compact_bytes;
    o.backlog_bytes = config_.limits.peer_backlog_bytes;
    o.loops = config_.loop_count();
    persistence_ = Persistence::open(o, table_, *log_, &recovered, error);
    if (!persistence_) return false;
  }
  // The backlog goes on where the recovered history ended, holding its newest entries again (if they
  // reach up to there without a gap) so that neighbours that held them can resume.
  bool refill = !recovered.backlog.empty() &&
                recovered.backlog_first_seq + recovered.backlog.size() == recovered.next_seq;
  backlog_ = std::make_unique<FloodLog>(config_.limits.peer_backlog_bytes,
                                        refill ? recovered.backlog_first_seq : recovered.next_seq);
  if (refill) {
    for (const std::string& raw : recovered.backlog) {
      std::string_view v = raw;
      FloodLog::Entry e;
      if (FloodLog::next_entry(&v, &e)) backlog_->append(e.kind, e.mask, e.line);
    }
  }
  sync_ = std::make_unique<SyncState>(SyncState::new_run_id(), recovered.history);
  for (const auto& [peer, held] : recovered.held) sync_->set_held(peer, held.run, held.seq);
  router_ = std::make_unique<FloodRouter>(self_->name, table_, *backlog_, persistence_ != nullptr);
  return !persistence_ || persistence_->start(*backlog_, *sync_, error);
}

bool Server::start(std::string* error) {
  if (!self_) {
    *error = "unknown server";
    return false;
  }
  if (config_.peer_tls && !peer_tls_) {
    peer_tls_ = load_peer_tls(config_, self_->name, error);
    if (!peer_tls_) return false;
  }
  reactor::SocketAddress client_addr, peer_addr;
  if (!reactor::resolve(self_->host, self_->port, &client_addr, error) ||
      !reactor::resolve(self_->host, self_->peer_port, &peer_addr, error)) {
    return false;
  }
  client_fd_ = reactor::listen_tcp(client_addr, kListenBacklog, error);
  if (client_fd_ < 0) {
    *error = "cannot listen for clients on " + *error;
    return false;
  }
  peer_fd_ = reactor::listen_tcp(peer_addr, kListenBacklog, error);
  if (peer_fd_ < 0) {
    *error = "cannot listen for peers on " + *error;
    return false;
  }
  if (!restore(error)) return false;

  const int threads = config_.loop_count();
  loops_ = std::make_unique<reactor::LoopGroup>(threads);
  for (int i = 0; i < threads; ++i) {
    auto ctx = std::make_unique<LoopContext>(loops_->loop(i), *this);
    for (auto [fd, port] : {std::pair{client_fd_, Port::kClient}, std::pair{peer_fd_, Port::kPeer}}) {
      ctx->listeners.push_back(std::make_unique<reactor::Listener>(
          ctx->loop, fd,
          [this, i, port = port](int cfd, const reactor::SocketAddress& from) { on_accept(i, port, cfd, from); },
          [this, i](int err) {
            log_->write(i, "-", '!', "accept failed: ", std::strerror(err));
          }));
    }
    contexts_.push_back(std::move(ctx));
  }

  // One link per neighbour, spread over the loops.
  auto neighbours = config_.neighbours(self_->name);
  for (size_t k = 0; k < neighbours.size(); ++k) {
    reactor::SocketAddress addr;
    if (!reactor::resolve(neighbours[k]->host, neighbours[k]->peer_port, &addr, error)) {
      *error = "neighbour " + neighbours[k]->name + ": " + *error;
      return false;
    }
    links_.push_back(std::make_unique<PeerLink>(*this, loops_->loop(static_cast<int>(k) % threads),
                                                *neighbours[k], addr, FloodRouter::bit_for(k)));
  }
  std::vector<PeerLink*> link_ptrs;
  for (auto& link : links_) link_ptrs.push_back(link.get());
  router_->set_links(std::move(link_ptrs));

  for (auto& ctx : contexts_) {
    LoopContext* c = ctx.get();
    c->loop.queue([c] {
      for (auto& l : c->listeners) l->start();
    });
  }
  for (auto& link : links_) {
    PeerLink* l = link.get();
    l->loop().queue([l] { l->start(); });
  }
  log_->write(log_->lanes() - 1, "-", '*',
              "server " + self_->name + " up: clients on " + client_addr.to_string() + ", peers on " +
                  peer_addr.to_string() + (peer_tls_ ? " (TLS)" : " (plaintext)") + ", " +
                  std::to_string(threads) + " loops");
  if (!peer_tls_) log_->write(log_->lanes() - 1, "-", '!', "warning: ", plaintext_peer_warning(config_));
  loops_->start();
  started_ = true;
  return true;
}

void Server::stop() {
  if (!loops_) return;
  // Close every connection on its own loop, then stop the loops.
  for (int i = 0; started_ && i < loops_->size(); ++i) {
    LoopContext* c = contexts_[i].get();
    std::vector<PeerLink*> mine;
    for (auto& link : links_) {
      if (&link->loop() == &c->loop) mine.push_back(link.get());
    }
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    c->loop.queue([&, c] {
      for (auto* l : mine) l->stop();
      c->listeners.clear();
      places_->stop_loop(c->loop);  // pending WHATSATs are answered; upstream connections close
      std::lock_guard lock(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  loops_->stop();
  if (persistence_) persistence_->stop();  // what the loops stored is on disk before the exit
  links_.clear();
  contexts_.clear();
  loops_.reset();
  if (client_fd_ >= 0) ::close(client_fd_);
  if (peer_fd_ >= 0) ::close(peer_fd_);
  client_fd_ = peer_fd_ = -1;
  if (log_) {
    log_->write(log_->lanes() - 1, "-", '*', "server " + self_->name + " stopped");
    log_->flush();
  }
}

void Server::on_accept(int loop_index, Port port, int fd, const reactor::SocketAddress& from) {
  // Admission first, on the accepting loop, so the counts never overshoot.
  if (port == Port::kClient) {
    if (clients_.fetch_add(1, std::memory_order_relaxed) >= config_.limits.max_connections) {
      clients_.fetch_sub(1, std::memory_order_relaxed);
      log_->write(loop_index, "-", '!', "client connection limit reached; refusing ", from.to_string());
      ::close(fd);
      return;
    }
  } else if (peer_conns_.fetch_add(1, std::memory_order_relaxed) >= kMaxPeerConnections) {
    peer_conns_.fetch_sub(1, std::memory_order_relaxed);
    log_->write(loop_index, "-", '!', "peer connection limit reached; refusing ", from.to_string());
    ::close(fd);
    return;
  }
  // Spread connections evenly over the loops, whichever loop happened to accept.
  int target = static_cast<int>(round_robin_.fetch_add(1, std::memory_order_relaxed) % contexts_.size());
  LoopContext* ctx = contexts_[target].get();
  if (target == loop_index) {
    adopt(*ctx, port, fd, from);
  } else {
    ctx->loop.queue([this, ctx, port, fd, from] { adopt(*ctx, port, fd, from); });
  }
}

void Server::adopt(LoopContext& ctx, Port port, int fd, const reactor::SocketAddress& from) {
  uint64_t id = next_id();
  if (port == Port::kClient) {
    auto session = std::make_unique<ClientSession>(ctx, id, fd, from);
    ClientSession* s = session.get();
    ctx.clients.emplace(id, std::move(session));
    s->start();
  } else {
    auto session = std::make_unique<PeerSession>(ctx, id, fd, from);
    PeerSession* s = session.get();
    ctx.peers.emplace(id, std::move(session));
    s->start();
  }
}

}  // namespace herd
