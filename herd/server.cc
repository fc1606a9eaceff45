// Server implementation: binding, loop start-up, accepting and handing connections to loops.
#include "herd/server.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "herd/admin_session.h"
#include "herd/client_session.h"
#include "herd/peer_link.h"
#include "herd/peer_session.h"
#include "herd/peer_tls.h"
#include "places/google_places.h"
#include "reactor/lingering_close.h"
#include "reactor/listener.h"

namespace herd {
namespace {
constexpr int kListenBacklog = 4096;
// How often evictions from the location table are reported in the log (when there were any).
constexpr reactor::EventLoop::Millis kEvictionReportPeriod{1000};

// What to add to a listening error (`err`, the failing call's errno) when the port was in use and
// lies in the kernel's range for outgoing connections: then an outgoing connection (any program's,
// or a neighbour's dial while this server was down) may be what holds it, and the port should be
// reserved or moved.
std::string in_use_hint(uint16_t port, int err) {
  uint16_t low = 0, high = 0;
  if (err != EADDRINUSE || !reactor::ephemeral_port_range(&low, &high) || port < low || port > high) return "";
  return " (port " + std::to_string(port) + " is in the kernel's range for outgoing connections, " +
         std::to_string(low) + "-" + std::to_string(high) +
         ", so an outgoing connection may hold it: choose a port below it, or reserve the port with "
         "sysctl net.ipv4.ip_local_reserved_ports)";
}
}  // namespace

Server::Server(Config config, std::string name, std::shared_ptr<places::PlacesProvider> places,
               std::unique_ptr<LogSink> log)
    : config_(std::move(config)),
      places_(std::move(places)),
      log_(std::move(log)),
      table_(config_.limits.max_clients, config_.limits.max_table_bytes, SipKey::random(),
             config_.packed_records),
      admission_(config_.limits, Admission::peer_connection_bound(config_, config_.loop_count())) {
  self_ = config_.find(name);
  start_time_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
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
    if (!persistence_) {
      *error = "data_dir: " + *error;
      return false;
    }
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
  reactor::SocketAddress client_addr, peer_addr, admin_addr;
  const std::string& bind_host = self_->listen.empty() ? self_->host : self_->listen;
  const std::string key = "servers." + self_->name + (self_->listen.empty() ? ".host" : ".listen");
  if (!reactor::resolve(bind_host, self_->port, &client_addr, error) ||
      !reactor::resolve(bind_host, self_->peer_port, &peer_addr, error)) {
    *error = key + ": " + *error;
    return false;
  }
  if (self_->admin_port != 0) {
    if (!reactor::resolve(self_->admin_listen, self_->admin_port, &admin_addr, error)) {
      *error = "servers." + self_->name + ".admin_listen: " + *error;
      return false;
    }
    if (!config_.admin_token_env.empty()) {
      const char* token = std::getenv(config_.admin_token_env.c_str());
      if (!token || !*token) {
        *error = "admin_token_env: the environment variable " + config_.admin_token_env + " is not set";
        return false;
      }
      admin_token_ = token;
    }
  }
  // Every listening socket is bound (and listening) before a loop runs: the server is reachable on
  // all of them once start() returns, and a port that cannot be bound fails the start as a whole.
  const int threads = config_.loop_count();
  // Opens one kind of listening socket, or says which could not be opened and why.
  auto listen_on = [&](const reactor::SocketAddress& addr, uint16_t port, std::vector<int>* fds, const char* what) {
    if (open_listening(addr, threads, fds, error)) return true;
    const int err = errno;
    *error = std::string("cannot listen for ") + what + " on " + *error + in_use_hint(port, err);
    close_listening();
    return false;
  };
  if (!listen_on(client_addr, self_->port, &client_fds_, "clients") ||
      !listen_on(peer_addr, self_->peer_port, &peer_fds_, "peers") ||
      (self_->admin_port != 0 && !listen_on(admin_addr, self_->admin_port, &admin_fds_, "admin requests"))) {
    return false;
  }
  if (!restore(error)) {
    close_listening();
    return false;
  }

  parts_.reset(new ServerParts{config_, *self_, table_, *router_, *backlog_, *sync_, persistence_.get(), *places_,
                                peer_tls_.get(), admission_, *log_, {}});
  loops_ = std::make_unique<reactor::LoopGroup>(threads);
  for (int i = 0; i < threads; ++i) loops_->loop(i).set_buffer_account(admission_.buffer_account());
  for (int i = 0; i < threads; ++i) {
    auto ctx = std::make_unique<LoopContext>(loops_->loop(i), *parts_);
    parts_->loops.push_back(ctx.get());
    // exclusive: every loop watches the one socket of each port; reuseport: loop i its own, the i-th.
    const auto sharing = config_.accept == AcceptMode::kReusePort ? reactor::Listener::Sharing::kOwn
                                                                   : reactor::Listener::Sharing::kShared;
    for (auto [fds, port] : {std::pair{&client_fds_, Port::kClient}, std::pair{&peer_fds_, Port::kPeer},
                             std::pair{&admin_fds_, Port::kAdmin}}) {
      if (fds->empty()) continue;
      const int fd = (*fds)[fds->size() == 1 ? 0 : static_cast<size_t>(i)];
      auto listener = std::make_unique<reactor::Listener>(
          ctx->loop, fd,
          [this, i, port = port](int cfd, const reactor::SocketAddress& from) { on_accept(i, port, cfd, from); },
          [this, i](int err) {
            log_->write(i, "-", '!', "accept failed: ", std::strerror(err));
          },
          sharing);
      if (port == Port::kAdmin) {
        ctx->admin_listener = std::move(listener);
      } else {
        ctx->listeners.push_back(std::move(listener));
      }
    }
    contexts_.push_back(std::move(ctx));
  }

  // One link per neighbour, spread over the loops. The peer port takes connections only from the
  // addresses the neighbours' hosts resolve to.
  auto neighbours = config_.neighbours(self_->name);
  for (size_t k = 0; k < neighbours.size(); ++k) {
    reactor::SocketAddress addr;
    std::vector<reactor::SocketAddress> all;
    if (!reactor::resolve(neighbours[k]->host, neighbours[k]->peer_port, &addr, error) ||
        !reactor::resolve_all(neighbours[k]->host, neighbours[k]->peer_port, &all, error)) {
      *error = "servers." + neighbours[k]->name + ".host: " + *error;
      return false;
    }
    for (const auto& a : all) neighbour_ips_.push_back(reactor::ip_of(a));
    links_.push_back(std::make_unique<PeerLink>(*contexts_[k % contexts_.size()], *neighbours[k],
                                                FloodRouter::bit_for(k)));
  }
  std::vector<PeerLink*> link_ptrs;
  for (auto& link : links_) link_ptrs.push_back(link.get());
  router_->set_links(std::move(link_ptrs));

  for (auto& ctx : contexts_) {
    LoopContext* c = ctx.get();
    c->loop.queue([this, c] {
      for (auto& l : c->listeners) l->start();
      if (c->admin_listener) c->admin_listener->start();
      c->sweep_timer = c->loop.run_every(sweep_period(), [c] { c->sweep(); });
    });
  }
  for (auto& link : links_) {
    PeerLink* l = link.get();
    l->loop().queue([l] { l->start(); });
  }
  // Evictions from the location table are counted there and reported here, once per period at
  // most (the timer dies with the loops in stop()).
  loops_->loop(0).queue([this] {
    loops_->loop(0).run_every(kEvictionReportPeriod, [this] { report_evictions(); });
  });
  log_->off_loop().write("-", '*',
                         "server " + self_->name + " up: clients on " + client_addr.to_string() + ", peers on " +
                             peer_addr.to_string() + (peer_tls_ ? " (TLS)" : " (plaintext)") +
                             (admin_fds_.empty() ? std::string() : ", admin on " + admin_addr.to_string()) + ", " +
                             std::to_string(threads) + " loops, accept " + accept_mode_name(config_.accept));
  if (!peer_tls_) log_->off_loop().write("-", '!', "warning: ", plaintext_peer_warning(config_));
  trimmer_ = std::make_unique<MemoryTrimmer>([this] { return work_done(); }, MemoryTrimmer::kPeriod,
                                             MemoryTrimmer::kBurst, MemoryTrimmer::kCalmSamples,
                                             [this] { return trim_after_burst(); });
  trimmer_->start();
  loops_->start();
  started_ = true;
  state_.store(State::kServing, std::memory_order_relaxed);
  return true;
}

void Server::run_on(LoopContext& ctx, const std::function<void()>& task) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  ctx.loop.queue([&] {
    task();
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
}

bool Server::drain(int timeout_ms) {
  if (!loops_ || !started_) return true;
  state_.store(State::kStopping, std::memory_order_relaxed);
  for (auto& ctx : contexts_) {
    LoopContext* c = ctx.get();
    run_on(*c, [c] { c->close_listeners(true); });
  }
  // Closed, not only unwatched: a listening socket left open would go on completing handshakes into
  // its backlog that nobody accepts, and clients and probes would wait on silent connections until
  // the exit. Closed, the kernel refuses them (and resets those queued), so they can go elsewhere at
  // once. The admin port stays, answering /healthz with 503 stopping.
  close_listening(true);
  log_->off_loop().write("-", '*', "stopping: no longer accepting; draining replies and what the peer links owe");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    bool busy = false;
    for (auto& ctx : contexts_) {
      LoopContext* c = ctx.get();
      run_on(*c, [&busy, c, this] {
        for (auto& [id, session] : c->clients) busy = busy || !session->quiet();
        for (auto& link : links_) {
          if (&link->loop() != &c->loop) continue;
          link->pump();  // moves the cursor past what is owed to others, so a link owed nothing is quiet
          busy = busy || !link->quiet();
        }
      });
    }
    if (!busy) return true;
    if (drain_cut_.load(std::memory_order_relaxed)) {
      log_->off_loop().write("-", '!', "stopping: a second stop signal; output still unsent is dropped");
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      log_->off_loop().write("-", '!', "stopping: shutdown_timeout_ms passed with output still unsent");
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool Server::open_listening(const reactor::SocketAddress& addr, int loops, std::vector<int>* fds,
                            std::string* error) {
  if (config_.accept == AcceptMode::kReusePort) {
    return reactor::listen_tcp_reuseport(addr, loops, kListenBacklog, fds, error);
  }
  int fd = reactor::listen_tcp(addr, kListenBacklog, error);
  if (fd < 0) return false;
  fds->push_back(fd);
  return true;
}

void Server::close_listening(bool keep_admin) {
  for (auto* fds : {&client_fds_, &peer_fds_, &admin_fds_}) {
    if (keep_admin && fds == &admin_fds_) continue;
    for (int fd : *fds) ::close(fd);
    fds->clear();
  }
}

void Server::stop() {
  if (!loops_) {
    close_listening();  // a start that failed before its loops existed
    return;
  }
  state_.store(State::kStopping, std::memory_order_relaxed);
  if (trimmer_) trimmer_->stop();
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
      c->close_listeners();
      c->loop.cancel(c->sweep_timer);
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
  close_listening();
  if (log_) {
    log_->off_loop().write("-", '*', "server " + self_->name + " stopped");
    log_->flush();
  }
}

void Server::report_evictions() {
  uint64_t total = table_.evictions();
  if (total == evictions_reported_) return;
  log_->write(0, "-", '!',
              "location table full: " + std::to_string(total - evictions_reported_) +
                  " least recently updated clients evicted (" + std::to_string(total) + " in all, " +
                  std::to_string(table_.size()) + " held; limits.max_clients " +
                  std::to_string(config_.limits.max_clients) + ", limits.max_table_bytes " +
                  std::to_string(config_.limits.max_table_bytes) + ")");
  evictions_reported_ = total;
}

uint64_t Server::work_done() const {
  uint64_t total = 0;
  const size_t servers = config_.servers.size();
  for (const auto& c : contexts_) {
    for (const auto& by_result : c->metrics.commands) {
      for (const auto& n : by_result) total += n.get();
    }
    for (size_t i = 0; i < servers; ++i) total += c->metrics.peer_received[i].get();
    // A connection is work too: a burst of them (thousands of clients each holding a partial line
    // or unread replies) leaves as much freed heap behind as a burst of commands, with few commands.
    total += kWorkPerConnection * (c->metrics.client_accepted.get() + c->metrics.peer_accepted.get());
  }
  for (const auto& link : links_) total += link->records_sent();
  return total;
}

uint64_t Server::trim_after_burst() {
  const auto started = std::chrono::steady_clock::now();
  const uint64_t released = MemoryTrimmer::trim_heap();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  log_->off_loop().write("-", '*',
                         "memory: a burst has passed; " + std::to_string(released >> 20) +
                             " MiB of freed heap given back to the system in " + std::to_string(us.count() / 1000) +
                             "." + std::to_string(us.count() % 1000 / 100) + " ms");
  return released;
}

size_t Server::reserved_fds(const Config& config, int loops) {
  const auto n = static_cast<size_t>(loops < 1 ? 1 : loops);
  size_t links = 0;
  for (const auto& s : config.servers) links = std::max(links, config.neighbours(s.name).size());
  // A google places provider has up to max_inflight upstream connections carrying calls, and each
  // loop keeps up to its share of max_inflight idle, plus one dialling per loop.
  const auto inflight = static_cast<size_t>(config.places.max_inflight);
  const size_t places =
      config.places.provider == "offline" ? 0 : inflight + n * places::GooglePlaces::idle_per_loop(inflight, n) + n;
  const size_t listening = 3 /* client, peer, admin */ * (config.accept == AcceptMode::kReusePort ? n : 1);
  return 3 /* stdio */ + 3 /* log, its O_DIRECT twin, a reopening */ + 3 * n /* epoll, eventfd, timerfd */ +
         listening + 2 * links + Admission::peer_connection_bound(config, loops) + n + places +
         n * reactor::LingeringClose::kMaxSockets + kSpareFds;
}

reactor::EventLoop::Millis Server::sweep_period() const {
  int64_t shortest = 1000;
  for (int64_t ms : {config_.limits.line_timeout_ms, config_.limits.idle_timeout_ms,
                     config_.limits.write_timeout_ms, config_.limits.peer_hello_timeout_ms}) {
    if (ms > 0) shortest = std::min(shortest, ms / 4);
  }
  return reactor::EventLoop::Millis(std::clamp<int64_t>(shortest, 50, 1000));
}

void Server::on_accept(int loop_index, Port port, int fd, const reactor::SocketAddress& from) {
  if (port == Port::kClient) contexts_[loop_index]->metrics.client_accepts.add();
  // Admission first, on the accepting loop, so the counts never overshoot.
  if (port == Port::kPeer) {
    const std::string ip = reactor::ip_of(from);
    if (std::find(neighbour_ips_.begin(), neighbour_ips_.end(), ip) == neighbour_ips_.end()) {
      log_->write(loop_index, "-", '!', "peer connection refused: not from a neighbour's address: ", from.to_string());
      ::close(fd);
      return;
    }
  }
  if (!admission_.admit(port)) {
    const char* what = port == Port::kClient ? "client" : port == Port::kPeer ? "peer" : "admin";
    log_->write(loop_index, "-", '!', std::string(what) + " connection limit reached; refusing ", from.to_string());
    ::close(fd);
    return;
  }
  // exclusive: spread client connections evenly over the loops, whichever loop happened to wake
  // (EPOLLEXCLUSIVE favours some). reuseport: the kernel's hash already picked this loop; keep it.
  // Peer connections always stay on the accepting loop: there, a newcomer's slot is freed (the
  // oldest hello-less connection closed) before the next accept, so the count never overshoots.
  int target = port == Port::kPeer || config_.accept == AcceptMode::kReusePort
                   ? loop_index
                   : static_cast<int>(round_robin_.fetch_add(1, std::memory_order_relaxed) % contexts_.size());
  LoopContext* ctx = contexts_[target].get();
  if (target == loop_index) {
    adopt(*ctx, port, fd, from);
  } else {
    // The task owns the fd until it runs: a loop that stops first closes it when it goes.
    reactor::hand_over(ctx->loop, fd, [this, ctx, port, from](int owned) { adopt(*ctx, port, owned, from); });
  }
}

void Server::adopt(LoopContext& ctx, Port port, int fd, const reactor::SocketAddress& from) {
  const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  if (port == Port::kClient) {
    ctx.metrics.client_accepted.add();
    auto session = std::make_unique<ClientSession>(ctx, id, fd, from);
    ClientSession* s = session.get();
    ctx.clients.emplace(id, std::move(session));
    s->start();
  } else if (port == Port::kAdmin) {
    auto session = std::make_unique<AdminSession>(ctx, *this, id, fd, from);
    AdminSession* s = session.get();
    ctx.admins.emplace(id, std::move(session));
    s->start();
  } else {
    ctx.metrics.peer_accepted.add();
    ctx.add_pending_peer(id);  // slots without a hello are few; the oldest may make room
    auto session = std::make_unique<PeerSession>(ctx, id, fd, from);
    PeerSession* s = session.get();
    ctx.peers.emplace(id, std::move(session));
    s->start();
  }
}

}  // namespace herd
