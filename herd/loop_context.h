// What sessions and links work with, instead of the Server that made them.
//
// ServerParts: the parts of one server its connections share: the location table, the flood router
// and its backlog, the catch-up state, the data directory, the places provider, the peer links' TLS,
// the connection admission and the log, with the config they were made from. The Server builds it
// once in start(), after recovery and before any loop runs; from then on it is fixed (each part says
// what is safe on it from which thread). Binding, accepting, draining and stopping stay the Server's.
//
// LoopContext: one event loop and what runs on it: its client, peer and admin sessions, its counters,
// its listeners and its lane of the log (LoopLog), and the ServerParts. A session or link is handed
// the context of the loop it lives on for its whole life and reaches the table, the router and the
// limits through it, so the IAMAT route reads in one pass: ClientSession, ctx.server.router, the
// table, the backlog, the links.
//
// Threads: a context's members are its loop thread's, except `metrics` (scrapes read it from any
// thread) and what is fixed after construction.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "herd/admission.h"
#include "herd/config.h"
#include "herd/flood_log.h"
#include "herd/flood_router.h"
#include "herd/location_table.h"
#include "herd/log_sink.h"
#include "herd/metrics.h"
#include "herd/persistence.h"
#include "herd/sync_state.h"
#include "places/places_provider.h"
#include "reactor/event_loop.h"
#include "reactor/listener.h"
#include "reactor/tls_context.h"

namespace herd {

class AdminSession;
class ClientSession;
class PeerSession;
struct LoopContext;

struct ServerParts {
  const Config& config;
  const ServerConfig& self;
  LocationTable& table;
  FloodRouter& router;
  FloodLog& backlog;
  SyncState& sync;
  Persistence* persistence;              // null without a data_dir
  places::PlacesProvider& places;
  const reactor::TlsContext* peer_tls;   // null: plaintext peer links
  Admission& admission;
  LogSink& log;
  // Every loop's context, by loop index (a peer connection that a newer one from the same neighbour
  // replaces is closed on the loop that runs it). Filled by the Server before the loops start.
  std::vector<LoopContext*> loops;

  const Limits& limits() const { return config.limits; }
};

struct LoopContext {
  LoopContext(reactor::EventLoop& loop, ServerParts& server);
  ~LoopContext();
  LoopContext(const LoopContext&) = delete;
  LoopContext& operator=(const LoopContext&) = delete;

  reactor::EventLoop& loop;
  ServerParts& server;
  const LoopLog log;  // this loop's lane
  LoopMetrics metrics;  // written by this loop only; read by scrapes on any thread
  std::unordered_map<uint64_t, std::unique_ptr<ClientSession>> clients;
  std::unordered_map<uint64_t, std::unique_ptr<PeerSession>> peers;
  std::unordered_map<uint64_t, std::unique_ptr<AdminSession>> admins;
  std::deque<uint64_t> pending_peers;  // peer sessions without a hello yet, oldest first
  std::vector<std::unique_ptr<reactor::Listener>> listeners;  // the client and peer ports
  std::unique_ptr<reactor::Listener> admin_listener;         // null without an admin port
  reactor::EventLoop::TimerId sweep_timer = 0;  // sweep(), every Server::sweep_period()

  int index() const { return loop.index(); }

  // Loop thread: a new peer session `id` (no hello yet) takes a pending slot; when this loop's are all
  // taken (Admission::pending_peers_per_loop), the oldest hello-less session is closed to make room.
  void add_pending_peer(uint64_t id);
  // Loop thread: the peer session `id` said hello as `name`: its slot is no longer a pending one, and
  // the oldest session under that name goes (on its own loop) when there are too many.
  void peer_named(uint64_t id, const std::string& name);
  // Loop thread: the peer session `id` (named `name`, or not yet: empty) closed.
  void release_peer(uint64_t id, const std::string& name);
  // Loop thread: stops accepting on this loop at once, on the client and peer ports (and on the
  // admin port too unless `keep_admin`: it answers /healthz with 503 while the server drains); the
  // listeners are freed at the end of the turn (an event of theirs may still be waiting in it).
  void close_listeners(bool keep_admin = false);
  // Loop thread: closes the sessions whose deadlines (limits.*_timeout_ms) have passed. Those that
  // close are erased at the end of the iteration.
  void sweep();
};

}  // namespace herd
