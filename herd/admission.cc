// Admission implementation.
#include "herd/admission.h"

#include <algorithm>
#include <cstdint>

namespace herd {

size_t Admission::pending_peers_per_loop(int loops) {
  return std::max<size_t>(4, kMaxPendingPeers / static_cast<size_t>(loops < 1 ? 1 : loops));
}

size_t Admission::peer_connection_bound(const Config& config, int loops) {
  const auto n = static_cast<size_t>(loops < 1 ? 1 : loops);
  return std::min(kMaxPeerConnections,
                  pending_peers_per_loop(loops) * n + kMaxSessionsPerPeer * config.servers.size() + n);
}

std::atomic<size_t>& Admission::count(Port port) const {
  switch (port) {
    case Port::kClient: return clients_;
    case Port::kPeer: return peers_;
    case Port::kAdmin: break;
  }
  return admins_;
}

bool Admission::admit(Port port) {
  const size_t bound = port == Port::kClient ? limits_.max_connections
                       : port == Port::kPeer ? peer_bound_
                                             : kMaxAdminConnections;
  // Counted first, then checked: concurrent accepts on several loops never overshoot the bound.
  std::atomic<size_t>& n = count(port);
  if (n.fetch_add(1, std::memory_order_relaxed) < bound) return true;
  n.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

size_t Admission::output_allowance() const {
  const int64_t used = buffered_bytes();
  const auto budget = static_cast<int64_t>(limits_.max_buffered_bytes);
  const size_t per_client = limits_.max_output_bytes;
  if (used <= budget) return SIZE_MAX;
  if (used <= budget + budget / 4) return std::max(per_client / 4, kBudgetFloor);
  if (used <= budget + budget / 2) return std::max(per_client / 16, kBudgetFloor);
  return kBudgetFloor;
}

std::optional<Admission::PeerSlot> Admission::peer_named(PeerSlot slot, const std::string& name) {
  std::lock_guard lock(named_mu_);
  auto& sessions = named_[name];
  sessions.push_back(slot);
  if (sessions.size() <= kMaxSessionsPerPeer) return std::nullopt;
  PeerSlot oldest = sessions.front();
  sessions.pop_front();
  return oldest;
}

void Admission::release_peer(PeerSlot slot, const std::string& name) {
  release(Port::kPeer);
  if (name.empty()) return;
  std::lock_guard lock(named_mu_);
  auto it = named_.find(name);
  if (it == named_.end()) return;
  auto& sessions = it->second;
  sessions.erase(std::remove(sessions.begin(), sessions.end(), slot), sessions.end());
}

}  // namespace herd
