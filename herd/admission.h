// What a server lets in.
//
// refusal(): which reports the location table takes: the limits a client's IAMAT or a peer's AT
// record must meet before it is offered (limits.max_id_bytes, limits.max_clock_skew). Client and peer
// sessions ask the same question, so a record one server refuses is refused by every server of a herd
// that shares the config. Pure; any thread.
//
// Admission: which connections it holds, over all its loops. It counts open connections against
// their bounds (clients: limits.max_connections; peers: peer_connection_bound; admin:
// kMaxAdminConnections), keeps the account every connection's buffers count in against
// limits.max_buffered_bytes (and the output allowance and input bounds that follow from it), and
// remembers which peer connections said hello under which name, so a neighbour holds at most
// kMaxSessionsPerPeer.
// Threads: any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "herd/config.h"
#include "protocol/timestamp.h"

namespace herd {

// nullptr when a report for `client_id` dated `time` may be offered to the table at `now`; else
// why not, for the log.
inline const char* refusal(const Limits& limits, std::string_view client_id, protocol::Timestamp time,
                           protocol::Timestamp now) {
  if (client_id.size() > limits.max_id_bytes) return "client ID longer than limits.max_id_bytes";
  if (protocol::too_far_ahead(time, now, limits.max_clock_skew)) {
    return "time more than limits.max_clock_skew ahead of this server's clock";
  }
  return nullptr;
}

class Admission {
 public:
  enum class Port { kClient, kPeer, kAdmin };

  // Inbound connections on the peer port, at most: a hard bound over the two below.
  static constexpr size_t kMaxPeerConnections = 256;
  // Admin connections open at once (operators and a scraper or two).
  static constexpr size_t kMaxAdminConnections = 64;
  // Peer connections that have not said hello yet, over all loops (at least 4 per loop). When they
  // are all taken, the oldest makes room for the newcomer: a stranger holding slots cannot lock a
  // neighbour out, and each is closed after limits.peer_hello_timeout_ms anyway.
  static constexpr size_t kMaxPendingPeers = 64;
  // Connections that said hello under one name, at most; a newer one closes the oldest, so that a
  // neighbour's new link always gets in (with peer_tls the name is the certificate's).
  static constexpr size_t kMaxSessionsPerPeer = 4;
  // The smallest output allowance, however far past its budget the server is.
  static constexpr size_t kBudgetFloor = 16 * 1024;
  // Past the budget, a client's line may be at most this much longer than limits.max_id_bytes (and
  // never longer than limits.max_line): room for any command, none for a line built to hold memory.
  static constexpr size_t kTightLineSlack = 4 * 1024;
  // Past the budget, a client connection reads at most this much at a time, so that the commands it
  // has sent but the server has not taken yet (its replies wait) stay few.
  static constexpr size_t kTightRead = 4 * 1024;

  // Inbound peer connections held at most, for `config` with `loops` event loops: the hello-less ones
  // (kMaxPendingPeers, at least 4 per loop), kMaxSessionsPerPeer per server of the herd, and one
  // being replaced per loop; never more than kMaxPeerConnections.
  static size_t peer_connection_bound(const Config& config, int loops);
  // Hello-less peer connections one loop holds at most (kMaxPendingPeers shared by `loops` loops).
  static size_t pending_peers_per_loop(int loops);

  Admission(const Limits& limits, size_t peer_bound) : limits_(limits), peer_bound_(peer_bound) {}

  // Counts one more connection on `port`, or returns false (counting nothing) at its bound.
  bool admit(Port port);
  // A connection counted by admit(port) closed.
  void release(Port port) { count(port).fetch_sub(1, std::memory_order_relaxed); }
  size_t open(Port port) const { return count(port).load(std::memory_order_relaxed); }

  // Every connection's buffers count here (reactor::EventLoop::set_buffer_account).
  std::atomic<int64_t>* buffer_account() { return &buffered_; }
  // Bytes buffered (input and output capacity) over every connection.
  int64_t buffered_bytes() const { return buffered_.load(std::memory_order_relaxed); }
  // The most unsent output a client may hold and still have its commands read. No bound while
  // buffered_bytes() is within limits.max_buffered_bytes; past it the heaviest clients stop first: a
  // quarter of limits.max_output_bytes up to 125% of the budget, a sixteenth up to 150%, and
  // kBudgetFloor beyond.
  size_t output_allowance() const;
  // buffered_bytes() is past limits.max_buffered_bytes.
  bool over_budget() const { return buffered_bytes() > static_cast<int64_t>(limits_.max_buffered_bytes); }
  // The longest line a client may send while over_budget(): limits.max_id_bytes + kTightLineSlack, or
  // limits.max_line if that is shorter. Within the budget the bound is limits.max_line.
  size_t tight_line_limit() const { return std::min(limits_.max_line, limits_.max_id_bytes + kTightLineSlack); }

  // Where a peer session runs: its loop's index and its id there.
  struct PeerSlot {
    int loop;
    uint64_t id;
    bool operator==(const PeerSlot& o) const { return loop == o.loop && id == o.id; }
  };
  // Peer session `slot` said hello as `name`. Returns the session it replaces (the oldest of that
  // name when it has more than kMaxSessionsPerPeer), which the caller closes on its loop.
  std::optional<PeerSlot> peer_named(PeerSlot slot, const std::string& name);
  // Peer session `slot`, named `name` (empty: it said no hello), closed; uncounts it.
  void release_peer(PeerSlot slot, const std::string& name);

 private:
  std::atomic<size_t>& count(Port port) const;

  const Limits& limits_;
  const size_t peer_bound_;
  mutable std::atomic<size_t> clients_{0};
  mutable std::atomic<size_t> peers_{0};
  mutable std::atomic<size_t> admins_{0};
  std::atomic<int64_t> buffered_{0};
  std::mutex named_mu_;
  // Guarded by named_mu_: the sessions that said hello, per name, oldest first.
  std::unordered_map<std::string, std::deque<PeerSlot>> named_;
};

}  // namespace herd
