// SyncState implementation.
#include "herd/sync_state.h"

#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "protocol/sync_line.h"

namespace herd {

SyncState::SyncState(std::string run, std::vector<EarlierRun> history)
    : run_(std::move(run)), history_(std::move(history)) {}

std::string SyncState::new_run_id() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
    // No random source: the clock still makes two starts differ.
    r = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) * 0x9e3779b97f4a7c15ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
  return buf;
}

void SyncState::append_sync_line(std::string& out) const {
  protocol::RunHead heads[protocol::SyncLine::kMaxHistory];
  size_t n = std::min(history_.size(), protocol::SyncLine::kMaxHistory);
  for (size_t i = 0; i < n; ++i) heads[i] = {history_[i].run, history_[i].last_seq};
  protocol::append_sync(out, run_, heads, n);
}

std::optional<uint64_t> SyncState::resume_point(std::string_view run, uint64_t seq) const {
  if (run == run_) return seq;
  for (const auto& h : history_) {
    // Beyond last_seq the neighbour holds records this server lost (a tail not yet on disk when it
    // stopped): it holds all that survived, and the seqs after last_seq now name other records.
    if (run == h.run) return std::min(seq, h.last_seq);
  }
  return std::nullopt;
}

std::optional<SyncState::Held> SyncState::held(std::string_view peer) const {
  std::lock_guard lock(mu_);
  auto it = held_.find(peer);
  if (it == held_.end()) return std::nullopt;
  return it->second;
}

void SyncState::set_held(std::string_view peer, std::string_view run, uint64_t seq) {
  std::lock_guard lock(mu_);
  auto it = held_.find(peer);
  if (it == held_.end()) {
    held_.emplace(std::string(peer), Held{std::string(run), seq});
    return;
  }
  Held& h = it->second;
  if (h.run != run) {
    h.run.assign(run);
    h.seq = seq;
  } else if (seq > h.seq) {
    h.seq = seq;
  }
}

bool SyncState::wants_everything_from(std::string_view peer) const {
  if (history_.empty()) return false;  // a first start: nothing was flooded before
  std::lock_guard lock(mu_);
  return caught_up_.find(peer) == caught_up_.end();
}

void SyncState::catch_up_completed(std::string_view peer) {
  std::lock_guard lock(mu_);
  caught_up_.emplace(peer);
}

std::map<std::string, SyncState::Held> SyncState::all_held() const {
  std::lock_guard lock(mu_);
  return {held_.begin(), held_.end()};
}

}  // namespace herd
