// Server: one member of the herd. It owns the event loops, the client and peer listeners, the
// location table, the backlog and flood router, the catch-up state, the data directory (optional),
// the links to its neighbours, the places provider and the log, and wires them: client lines become
// table updates, floods and places queries; peer lines become table updates and floods; every line in
// and out is logged.
//
// Threads: construct, start() and stop() on the controlling (main) thread. The accessors are
// thread-safe (the objects they return say what is safe on them); backlog(), router() and
// sync_state() exist from start() on. Sessions and links each live on one loop for their whole life.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "herd/config.h"
#include "herd/flood_log.h"
#include "herd/flood_router.h"
#include "herd/location_table.h"
#include "herd/log_sink.h"
#include "herd/memory_trim.h"
#include "herd/metrics.h"
#include "herd/persistence.h"
#include "herd/sync_state.h"
#include "places/places_provider.h"
#include "reactor/listener.h"
#include "reactor/loop_group.h"
#include "reactor/socket.h"
#include "reactor/tls_context.h"

namespace herd {

class AdminSession;
class ClientSession;
class PeerSession;
class PeerLink;
class Server;

// What belongs to one event loop: the sessions it runs and its listeners. Loop thread only.
struct LoopContext {
  LoopContext(reactor::EventLoop& l, Server& s);
  ~LoopContext();
  reactor::EventLoop& loop;
  Server& server;
  std::unordered_map<uint64_t, std::unique_ptr<ClientSession>> clients;
  std::unordered_map<uint64_t, std::unique_ptr<PeerSession>> peers;
  std::unordered_map<uint64_t, std::unique_ptr<AdminSession>> admins;
  LoopMetrics metrics;  // written by this loop only; read by scrapes on any thread
  std::deque<uint64_t> pending_peers;  // peer sessions without a hello yet, oldest first
  std::vector<std::unique_ptr<reactor::Listener>> listeners;
  reactor::EventLoop::TimerId sweep_timer = 0;  // Server::sweep, every sweep_period()
  int index() const { return loop.index(); }
};

class Server {
 public:
  // Inbound connections on the peer port, at most: a hard bound over the two below.
  static constexpr size_t kMaxPeerConnections = 256;
  // Admin connections open at once (operators and a scraper or two).
  static constexpr size_t kMaxAdminConnections = 64;

  // What /healthz reports: serving only between a complete start() and the beginning of stop().
  enum class State { kStarting, kServing, kStopping };
  // Peer connections that have not said hello yet, over all loops (at least 4 per loop). When they
  // are all taken, the oldest makes room for the newcomer: a stranger holding slots cannot lock a
  // neighbour out, and each is closed after limits.peer_hello_timeout_ms anyway.
  static constexpr size_t kMaxPendingPeers = 64;
  // Connections that said hello under one name, at most; a newer one closes the oldest, so that a
  // neighbour's new link always gets in (with peer_tls the name is the certificate's).
  static constexpr size_t kMaxSessionsPerPeer = 4;
  // Inbound peer connections held at most, for `config` with `loops` event loops: the hello-less ones
  // (kMaxPendingPeers, at least 4 per loop), kMaxSessionsPerPeer per server of the herd, and one
  // being replaced per loop; never more than kMaxPeerConnections.
  static size_t peer_connection_bound(const Config& config, int loops);
  // Descriptors a server needs besides its client connections: stdio, the log, each loop's epoll,
  // eventfd and timerfd, the listening sockets (three ports, one each or, with accept: reuseport,
  // one per loop each), its links (each with a dial in flight), the inbound peer
  // connections above, one per loop to accept (and refuse) a client beyond the limit, a google places
  // provider's upstream connections (places.max_inflight), and kSpareFds for the rest (name lookups,
  // data files). herd-server lowers
  // limits.max_connections so that these stay free under RLIMIT_NOFILE: clients can never take the
  // descriptors that peer links redial with.
  static size_t reserved_fds(const Config& config, int loops);
  static constexpr size_t kSpareFds = 64;
  // TCP keepalive on peer connections, both ways: a vanished neighbour is noticed in about a minute.
  static constexpr int kPeerKeepaliveIdleS = 30;
  static constexpr int kPeerKeepaliveIntervalS = 10;
  static constexpr int kPeerKeepaliveCount = 3;

  Server(Config config, std::string name, std::shared_ptr<places::PlacesProvider> places,
         std::unique_ptr<LogSink> log);
  ~Server();

  // Peer TLS handshakes that take longer than this are abandoned (the link redials with backoff).
  static constexpr reactor::EventLoop::Millis kPeerHandshakeTimeout{10000};

  // Before start(): the peer links' TLS identity (load_peer_tls), when the caller loaded it already
  // (herd-server does, to report a bad certificate as a configuration error). Otherwise start()
  // loads it when the config has peer_tls.
  void use_peer_tls(std::shared_ptr<const reactor::TlsContext> context) { peer_tls_ = std::move(context); }

  // Binds the client, peer and admin ports, starts the loops and dials the neighbours. False with *error
  // set (naming the address, or the peer_tls file) when a port cannot be bound or peer_tls loaded.
  bool start(std::string* error);
  // Controlling thread: the graceful part of a stop. Stops accepting, then waits (at most
  // `timeout_ms`) until every client has its replies written and every connected neighbour's outbox
  // is written; /healthz says "stopping" from here on. Returns true when everything drained.
  bool drain(int timeout_ms);
  // Stops the loops, closes every connection and flushes the log. Idempotent.
  void stop();

  const Config& config() const { return config_; }
  const ServerConfig& self() const { return *self_; }
  const Limits& limits() const { return config_.limits; }
  LocationTable& table() { return table_; }
  FloodLog& backlog() { return *backlog_; }
  FloodRouter& router() { return *router_; }
  SyncState& sync_state() { return *sync_; }
  // The data directory's writer, or null without a data_dir.
  Persistence* persistence() { return persistence_.get(); }
  LogSink& log() { return *log_; }
  places::PlacesProvider& places() { return *places_; }
  int loop_count() const { return loops_ ? loops_->size() : 0; }
  // The peer links' TLS context (accepting and dialling alike), or null for plaintext peer links.
  const reactor::TlsContext* peer_tls() const { return peer_tls_.get(); }

  // Any thread, while started: for scrapes (render_metrics) and the admin routes.
  State state() const { return state_.load(std::memory_order_relaxed); }
  const std::string& admin_token() const { return admin_token_; }
  const std::vector<std::unique_ptr<LoopContext>>& contexts() const { return contexts_; }
  const std::vector<std::unique_ptr<PeerLink>>& links() const { return links_; }
  size_t client_connections() const { return clients_.load(std::memory_order_relaxed); }
  size_t peer_connections() const { return peer_conns_.load(std::memory_order_relaxed); }
  size_t admin_connections() const { return admins_.load(std::memory_order_relaxed); }
  // The position of server `name` in config().servers, or -1.
  int server_index(std::string_view name) const;
  // Before start(): the places upstream's counters (google providers; fed by main's log hook).
  void set_upstream_metrics(std::shared_ptr<const UpstreamMetrics> m) { upstream_metrics_ = std::move(m); }
  const UpstreamMetrics* upstream_metrics() const { return upstream_metrics_.get(); }
  // Before start(): the dashboard's map (TopoJSON text); empty: none. Then any thread, read-only.
  void set_world_map(std::string json) { world_map_ = std::move(json); }
  const std::string& world_map() const { return world_map_; }
  // Wall-clock seconds since the epoch at which the server was constructed.
  double start_time() const { return start_time_; }
  // Any thread: bytes buffered (input and output capacity) over every connection of this server.
  int64_t buffered_bytes() const { return buffered_.load(std::memory_order_relaxed); }
  // Any thread, while started: the memory given back to the kernel after bursts (see MemoryTrimmer).
  const MemoryTrimmer* trimmer() const { return trimmer_.get(); }
  // Any thread: the most unsent output a client may hold and still have its commands read, given
  // buffered_bytes() against limits.max_buffered_bytes. No bound while within the budget; past it
  // the heaviest clients stop first: a quarter of max_output_bytes up to 125% of the budget, a
  // sixteenth up to 150%, and kBudgetFloor beyond.
  size_t output_allowance() const;
  static constexpr size_t kBudgetFloor = 16 * 1024;

  // Any thread: a fresh connection id (never reused).
  uint64_t next_id() { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  // Any thread: counts open client connections against limits().max_connections.
  void release_client() { clients_.fetch_sub(1, std::memory_order_relaxed); }
  void release_admin() { admins_.fetch_sub(1, std::memory_order_relaxed); }
  // Loop thread of `ctx`: the peer session `id` said hello as `name` (see kMaxSessionsPerPeer).
  void peer_named(LoopContext& ctx, uint64_t id, const std::string& name);
  // Loop thread of `ctx`: the peer session `id` (named `name`, or not yet: empty) closed.
  void release_peer(LoopContext& ctx, uint64_t id, const std::string& name);

 private:
  enum class Port { kClient, kPeer, kAdmin };
  void on_accept(int loop_index, Port port, int fd, const reactor::SocketAddress& from);
  void adopt(LoopContext& ctx, Port port, int fd, const reactor::SocketAddress& from);
  void report_evictions();  // loop 0: logs the table's evictions since the last report
  // Any thread: commands answered, records received from peers and sent to them, so far.
  uint64_t work_done() const;
  // The trimmer's thread: malloc_trim, logged; returns the fall of the resident set.
  uint64_t trim_after_burst();
  // Loop thread of `ctx`: closes the sessions whose deadlines (limits.*_timeout_ms) have passed.
  void sweep(LoopContext& ctx);
  // How often each loop sweeps: a quarter of the shortest timeout, within [50 ms, 1 s].
  reactor::EventLoop::Millis sweep_period() const;
  // Recovers the data directory (if any) and creates the backlog, the catch-up state and the router.
  bool restore(std::string* error);
  // Binds the listening socket(s) of one port for `loops` loops as config_.accept says, appending
  // them to *fds; false with *error naming the address.
  bool open_listening(const reactor::SocketAddress& addr, int loops, std::vector<int>* fds, std::string* error);
  void close_listening();  // closes every listening socket (controlling thread, no loop watching)
  // Runs `task` on the loop of `ctx` and waits for it (controlling thread, loops running).
  void run_on(LoopContext& ctx, const std::function<void()>& task);

  Config config_;
  const ServerConfig* self_;
  std::shared_ptr<places::PlacesProvider> places_;
  std::shared_ptr<const reactor::TlsContext> peer_tls_;
  std::unique_ptr<LogSink> log_;
  LocationTable table_;
  std::unique_ptr<Persistence> persistence_;
  std::unique_ptr<FloodLog> backlog_;
  std::unique_ptr<SyncState> sync_;
  std::unique_ptr<FloodRouter> router_;
  std::unique_ptr<reactor::LoopGroup> loops_;
  std::vector<std::unique_ptr<LoopContext>> contexts_;
  std::vector<std::unique_ptr<PeerLink>> links_;
  // The listening sockets of each port: one (accept: exclusive) or one per loop (reuseport); the
  // admin port's only with an admin_port. Closed by stop() once no loop watches them.
  std::vector<int> client_fds_;
  std::vector<int> peer_fds_;
  std::vector<int> admin_fds_;
  std::string admin_token_;
  std::string world_map_;
  std::shared_ptr<const UpstreamMetrics> upstream_metrics_;
  double start_time_ = 0;
  std::atomic<State> state_{State::kStarting};
  std::atomic<uint64_t> next_id_{1};
  std::atomic<int64_t> buffered_{0};  // every loop's connection buffers count here
  std::atomic<size_t> clients_{0};
  std::atomic<size_t> peer_conns_{0};
  std::atomic<size_t> admins_{0};
  std::vector<std::string> neighbour_ips_;  // from start() on, read-only: who may use the peer port
  std::mutex named_mu_;
  // Guarded by named_mu_: the sessions that said hello, per name, oldest first: (loop, session id).
  std::unordered_map<std::string, std::deque<std::pair<int, uint64_t>>> named_peers_;
  std::atomic<unsigned> round_robin_{0};
  bool started_ = false;
  uint64_t evictions_reported_ = 0;  // loop 0 only
  // Last, so that it stops before anything it reads (the loops' counters, links_, log_) goes away.
  std::unique_ptr<MemoryTrimmer> trimmer_;
};

}  // namespace herd
