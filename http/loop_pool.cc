// LoopPool implementation.
#include "http/loop_pool.h"

#include <algorithm>

namespace http {
namespace {

bool has_line_break(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

}  // namespace

LoopPool::LoopPool(reactor::EventLoop& loop, const ClientOptions& options, reactor::Resolver& resolver,
                   ClientCounters& counters)
    : loop_(loop), options_(options), resolver_(resolver), counters_(counters) {}

LoopPool::~LoopPool() {
  // After stop() nothing is left to cancel, and the loop may be gone already. Without it, the loop
  // exists (the HttpClient contract) but may no longer run: its timers die with it and must not be
  // touched from another thread.
  if (stopped_ || !loop_.in_loop_thread()) return;
  for (auto& [id, ex] : exchanges_) {
    if (ex.timer) loop_.cancel(ex.timer);
  }
  for (auto& [id, timer] : idle_timers_) loop_.cancel(timer);
}

void LoopPool::send(Request request, std::chrono::milliseconds timeout, Done done) {
  loop_.assert_in_loop();
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  std::string refused;
  if (stopped_) refused = "the HTTP client is stopping";
  if (has_line_break(request.method) || has_line_break(request.target) || request.target.empty() ||
      request.target[0] != '/') {
    refused = "invalid request line";
  }
  for (const auto& h : request.headers) {
    if (h.name.empty() || has_line_break(h.name) || has_line_break(h.value)) refused = "invalid request header";
  }
  if (!refused.empty()) {
    loop_.defer([done = std::move(done), refused] { done(Result{refused, {}}); });
    return;
  }
  request.target = options_.endpoint.base_path + request.target;
  uint64_t id = next_id_++;
  Exchange ex;
  ex.bytes = serialize(request, options_.endpoint.authority(), options_.gzip);
  ex.done = std::move(done);
  ex.timeout = timeout;
  ex.timer = loop_.run_after(timeout, [this, id] { on_timeout(id); });
  exchanges_.emplace(id, std::move(ex));
  // Started at the end of the iteration, so that no outcome can reach `done` inside send().
  loop_.defer([weak = weak_from_this(), id] {
    if (auto self = weak.lock()) self->start(id);
  });
}

void LoopPool::start(uint64_t ex_id) {
  auto it = exchanges_.find(ex_id);
  if (it == exchanges_.end() || stopped_) return;
  while (!idle_.empty()) {
    uint64_t cid = idle_.back();
    forget_idle(cid);
    auto c = conns_.find(cid);
    if (c == conns_.end() || !c->second->open()) continue;
    it->second.conn = cid;
    carrying_[cid] = ex_id;
    counters_.reused.fetch_add(1, std::memory_order_relaxed);
    c->second->exchange(it->second.bytes);
    return;
  }
  open_connection(ex_id);
}

void LoopPool::open_connection(uint64_t ex_id) {
  if (!addresses_.empty() && std::chrono::steady_clock::now() < addresses_until_) {
    dial(ex_id);
    return;
  }
  reactor::SocketAddress numeric;
  if (reactor::numeric_address(options_.endpoint.host, options_.endpoint.port, &numeric)) {
    addresses_ = {numeric};
    addresses_until_ = std::chrono::steady_clock::time_point::max();
    dial(ex_id);
    return;
  }
  waiting_for_address_.push_back(ex_id);
  if (resolving_) return;
  resolving_ = true;
  resolver_.resolve(loop_, options_.endpoint.host, options_.endpoint.port,
                    [weak = weak_from_this()](reactor::Resolver::Addresses addresses, std::string error) {
                      if (auto self = weak.lock()) self->on_resolved(std::move(addresses), std::move(error));
                    });
}

void LoopPool::on_resolved(reactor::Resolver::Addresses addresses, std::string error) {
  resolving_ = false;
  std::vector<uint64_t> waiting;
  waiting.swap(waiting_for_address_);
  if (error.empty()) {
    addresses_ = std::move(addresses);
    addresses_until_ = std::chrono::steady_clock::now() + options_.dns_ttl;
  }
  for (uint64_t id : waiting) {
    if (!exchanges_.count(id)) continue;
    if (error.empty()) {
      dial(id);
    } else {
      finish(id, Result{error, {}});
    }
  }
}

void LoopPool::dial(uint64_t ex_id) {
  auto it = exchanges_.find(ex_id);
  if (it == exchanges_.end()) return;
  uint64_t cid = next_id_++;
  auto conn = std::make_unique<UpstreamConnection>(loop_, cid, options_, *this);
  counters_.connections_opened.fetch_add(1, std::memory_order_relaxed);
  std::string error;
  if (!conn->dial(addresses_, &error)) {
    addresses_until_ = {};  // look the name up again next time
    finish(ex_id, Result{error, {}});
    return;
  }
  UpstreamConnection* c = conn.get();
  conns_.emplace(cid, std::move(conn));
  carrying_[cid] = ex_id;
  it->second.conn = cid;
  c->exchange(it->second.bytes);
}

void LoopPool::on_outcome(UpstreamConnection& c, UpstreamConnection::Outcome outcome) {
  uint64_t cid = c.id();
  uint64_t ex_id = 0;
  if (auto ci = carrying_.find(cid); ci != carrying_.end()) {
    ex_id = ci->second;
    carrying_.erase(ci);
  }
  bool was_reused = c.completed() > (outcome.error.empty() ? 1 : 0);
  if (c.open() && outcome.reusable && !stopped_) {
    make_idle(c);
  } else {
    c.abort("not reusable");
    retire(cid);
  }
  auto it = exchanges_.find(ex_id);
  if (it == exchanges_.end()) return;
  it->second.conn = 0;
  if (!outcome.error.empty() && !outcome.response_started) {
    if (was_reused && !it->second.fresh_retry && !stopped_) {
      // A kept-alive connection the server had already given up on: send once more, fresh.
      it->second.fresh_retry = true;
      if (options_.log) options_.log(loop_, "kept-alive connection was stale (" + outcome.error + "); sending on a new one");
      open_connection(ex_id);
      return;
    }
    if (!was_reused) addresses_until_ = {};  // a fresh connection failed: look the name up again
  }
  finish(ex_id, Result{std::move(outcome.error), std::move(outcome.response)});
}

void LoopPool::on_lost(UpstreamConnection& c, std::string_view reason) {
  uint64_t cid = c.id();
  forget_idle(cid);
  if (options_.log) options_.log(loop_, "idle connection closed: " + std::string(reason));
  retire(cid);
}

void LoopPool::make_idle(UpstreamConnection& c) {
  uint64_t cid = c.id();
  if (idle_.size() >= options_.max_idle_per_loop) {
    c.abort("idle pool full");
    retire(cid);
    return;
  }
  idle_.push_back(cid);
  idle_timers_[cid] = loop_.run_after(options_.idle_timeout, [this, cid] {
    idle_timers_.erase(cid);
    idle_.erase(std::remove(idle_.begin(), idle_.end(), cid), idle_.end());
    if (auto it = conns_.find(cid); it != conns_.end()) it->second->abort("idle timeout");
    retire(cid);
  });
}

void LoopPool::forget_idle(uint64_t cid) {
  idle_.erase(std::remove(idle_.begin(), idle_.end(), cid), idle_.end());
  if (auto t = idle_timers_.find(cid); t != idle_timers_.end()) {
    loop_.cancel(t->second);
    idle_timers_.erase(t);
  }
}

void LoopPool::retire(uint64_t cid) {
  auto it = conns_.find(cid);
  if (it == conns_.end()) return;
  graveyard_.emplace(cid, std::move(it->second));
  conns_.erase(it);
  loop_.defer([weak = weak_from_this(), cid] {
    if (auto self = weak.lock()) self->graveyard_.erase(cid);
  });
}

void LoopPool::on_timeout(uint64_t ex_id) {
  auto it = exchanges_.find(ex_id);
  if (it == exchanges_.end()) return;
  it->second.timer = 0;
  uint64_t cid = it->second.conn;
  if (cid) {
    carrying_.erase(cid);
    if (auto c = conns_.find(cid); c != conns_.end()) c->second->abort("request timed out");
    retire(cid);
  } else {
    waiting_for_address_.erase(std::remove(waiting_for_address_.begin(), waiting_for_address_.end(), ex_id),
                               waiting_for_address_.end());
  }
  Result timed_out{"no complete response within " + std::to_string(it->second.timeout.count()) + " ms", {}, true};
  finish(ex_id, std::move(timed_out));
}

void LoopPool::finish(uint64_t ex_id, Result result) {
  auto it = exchanges_.find(ex_id);
  if (it == exchanges_.end()) return;
  Done done = std::move(it->second.done);
  if (it->second.timer) loop_.cancel(it->second.timer);
  exchanges_.erase(it);
  done(std::move(result));
}

void LoopPool::stop(std::string_view reason) {
  loop_.assert_in_loop();
  if (stopped_) return;
  stopped_ = true;
  for (auto& [cid, timer] : idle_timers_) loop_.cancel(timer);
  idle_timers_.clear();
  idle_.clear();
  carrying_.clear();
  waiting_for_address_.clear();
  std::vector<uint64_t> conn_ids;
  for (auto& [cid, c] : conns_) conn_ids.push_back(cid);
  for (uint64_t cid : conn_ids) {
    conns_[cid]->abort(reason);
    retire(cid);
  }
  std::vector<uint64_t> ids;
  for (auto& [id, ex] : exchanges_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());  // oldest first
  for (uint64_t id : ids) finish(id, Result{std::string(reason), {}});
}

}  // namespace http
