// LoopContext implementation: the peer slots of one loop, and its deadline sweep.
#include "herd/loop_context.h"

#include <algorithm>
#include <chrono>

#include "herd/admin_session.h"
#include "herd/client_session.h"
#include "herd/peer_session.h"

namespace herd {

LoopContext::LoopContext(reactor::EventLoop& l, ServerParts& s)
    : loop(l), server(s), log(s.log, l.index()), metrics(s.config.servers.size()) {}

LoopContext::~LoopContext() = default;

void LoopContext::add_pending_peer(uint64_t id) {
  const size_t cap = Admission::pending_peers_per_loop(static_cast<int>(server.loops.size()));
  while (pending_peers.size() >= cap) {
    uint64_t oldest = pending_peers.front();
    pending_peers.pop_front();
    auto it = peers.find(oldest);
    if (it != peers.end()) it->second->close("its slot went to a newer peer connection (no hello yet)");
  }
  pending_peers.push_back(id);
}

void LoopContext::peer_named(uint64_t id, const std::string& name) {
  pending_peers.erase(std::remove(pending_peers.begin(), pending_peers.end(), id), pending_peers.end());
  auto replaced = server.admission.peer_named({index(), id}, name);
  if (!replaced) return;
  LoopContext* owner = server.loops[static_cast<size_t>(replaced->loop)];
  owner->loop.queue([owner, old = replaced->id] {
    auto it = owner->peers.find(old);
    if (it != owner->peers.end()) it->second->close("replaced by a newer connection from the same neighbour");
  });
}

void LoopContext::release_peer(uint64_t id, const std::string& name) {
  pending_peers.erase(std::remove(pending_peers.begin(), pending_peers.end(), id), pending_peers.end());
  server.admission.release_peer({index(), id}, name);
}

void LoopContext::close_listeners(bool keep_admin) {
  if (!keep_admin && admin_listener) listeners.push_back(std::move(admin_listener));
  if (listeners.empty()) return;
  for (auto& l : listeners) l->stop();
  auto gone = std::make_shared<std::vector<std::unique_ptr<reactor::Listener>>>(std::move(listeners));
  listeners.clear();
  loop.defer([gone] {});
}

void LoopContext::sweep() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, session] : clients) session->check_deadlines(now);
  for (auto& [id, session] : peers) session->check_deadlines(now);
}

}  // namespace herd
