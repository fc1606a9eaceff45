// Server: one member of the herd. It owns the event loops, the client and peer listeners, the
// location table, the backlog and flood router, the catch-up state, the data directory (optional),
// the links to its neighbours, the places provider and the log, and wires them: client lines become
// table updates, floods and places queries; peer lines become table updates and floods; every line in
// and out is logged.
//
// Sessions and links never see the Server: each is handed the LoopContext of the loop it lives on
// (herd/loop_context.h), which holds that loop's state and the ServerParts they share. The Server
// keeps what is its alone: binding the ports, accepting and handing connections to loops, draining
// and stopping, and the periodic chores (eviction reports, the memory trim).
//
// Threads: construct, start() and stop() on the controlling (main) thread. The accessors are
// thread-safe (the objects they return say what is safe on them); backlog(), router() and
// sync_state() exist from start() on. Sessions and links each live on one loop for their whole life.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "herd/admission.h"
#include "herd/config.h"
#include "herd/flood_log.h"
#include "herd/flood_router.h"
#include "herd/location_table.h"
#include "herd/log_sink.h"
#include "herd/loop_context.h"
#include "herd/memory_trim.h"
#include "herd/metrics.h"
#include "herd/persistence.h"
#include "herd/sync_state.h"
#include "places/places_provider.h"
#include "reactor/loop_group.h"
#include "reactor/socket.h"
#include "reactor/tls_context.h"

namespace herd {

class PeerLink;

class Server {
 public:
  // What /healthz reports: serving only between a complete start() and the beginning of stop().
  enum class State { kStarting, kServing, kStopping };
  // Descriptors a server needs besides its client connections: stdio, the log (with its O_DIRECT
  // twin, and one more while it reopens), each loop's epoll, eventfd and timerfd, the listening
  // sockets (three ports, one each or, with accept: reuseport, one per loop each), its links (each
  // with a dial in flight), the inbound peer connections (Admission::peer_connection_bound), one per
  // loop to accept (and refuse) a client beyond the limit, a google places provider's upstream
  // connections (up to places.max_inflight carrying calls and as many again idle, shared out among
  // the loops), the sockets each loop may hold in a lingering close after their connections ended
  // (reactor/lingering_close.h), and kSpareFds for the rest (name lookups, data files).
  // herd-server lowers limits.max_connections so that these stay free under RLIMIT_NOFILE: clients
  // can never take the descriptors that peer links redial with.
  static size_t reserved_fds(const Config& config, int loops);
  static constexpr size_t kSpareFds = 64;

  Server(Config config, std::string name, std::shared_ptr<places::PlacesProvider> places,
         std::unique_ptr<LogSink> log);
  ~Server();

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
  // Any thread: a drain in progress (or the next) returns at once, unsent output left behind (a
  // second stop signal: the operator will not wait).
  void cut_drain_short() { drain_cut_.store(true, std::memory_order_relaxed); }
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
  const Admission& admission() const { return admission_; }
  // Before start(): the places upstream's counters (google providers; fed by main's log hook).
  void set_upstream_metrics(std::shared_ptr<const UpstreamMetrics> m) { upstream_metrics_ = std::move(m); }
  const UpstreamMetrics* upstream_metrics() const { return upstream_metrics_.get(); }
  // Before start(): the dashboard's map (TopoJSON text); empty: none. Then any thread, read-only.
  void set_world_map(std::string json) { world_map_ = std::move(json); }
  const std::string& world_map() const { return world_map_; }
  // Wall-clock seconds since the epoch at which the server was constructed.
  double start_time() const { return start_time_; }
  // Any thread, while started: the memory given back to the kernel after bursts (see MemoryTrimmer).
  const MemoryTrimmer* trimmer() const { return trimmer_.get(); }

 private:
  using Port = Admission::Port;
  void on_accept(int loop_index, Port port, int fd, const reactor::SocketAddress& from);
  void adopt(LoopContext& ctx, Port port, int fd, const reactor::SocketAddress& from);
  void report_evictions();  // loop 0: logs the table's evictions since the last report
  // Any thread: commands answered, records received from peers and sent to them, and connections
  // accepted (kWorkPerConnection each), so far: what the memory trimmer watches for bursts.
  uint64_t work_done() const;
  static constexpr uint64_t kWorkPerConnection = 64;
  // The trimmer's thread: malloc_trim, logged; returns the fall of the resident set.
  uint64_t trim_after_burst();
  // How often each loop sweeps (LoopContext::sweep): a quarter of the shortest timeout, within [50 ms, 1 s].
  reactor::EventLoop::Millis sweep_period() const;
  // Recovers the data directory (if any) and creates the backlog, the catch-up state and the router.
  bool restore(std::string* error);
  // Binds the listening socket(s) of one port for `loops` loops as config_.accept says, appending
  // them to *fds; false with *error naming the address.
  bool open_listening(const reactor::SocketAddress& addr, int loops, std::vector<int>* fds, std::string* error);
  // Closes every listening socket, or all but the admin port's (controlling thread, no loop watching
  // them).
  void close_listening(bool keep_admin = false);
  // Runs `task` on the loop of `ctx` and waits for it (controlling thread, loops running).
  void run_on(LoopContext& ctx, const std::function<void()>& task);

  Config config_;
  const ServerConfig* self_;
  std::shared_ptr<places::PlacesProvider> places_;
  std::shared_ptr<const reactor::TlsContext> peer_tls_;
  std::unique_ptr<LogSink> log_;
  LocationTable table_;
  std::unique_ptr<Persistence> persistence_;
  std::atomic<bool> drain_cut_{false};
  std::unique_ptr<FloodLog> backlog_;
  std::unique_ptr<SyncState> sync_;
  std::unique_ptr<FloodRouter> router_;
  Admission admission_;
  std::unique_ptr<ServerParts> parts_;  // from start() on: what the loops' contexts hand out
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
  std::vector<std::string> neighbour_ips_;  // from start() on, read-only: who may use the peer port
  std::atomic<unsigned> round_robin_{0};
  bool started_ = false;
  uint64_t evictions_reported_ = 0;  // loop 0 only
  // Last, so that it stops before anything it reads (the loops' counters, links_, log_) goes away.
  std::unique_ptr<MemoryTrimmer> trimmer_;
};

}  // namespace herd
