// GooglePlaces implementation: per-loop calls with coalescing, a server-wide slot count with a
// bounded FIFO per loop, retries on loop timers, answers rendered per bound.
#include "places/google_places.h"

#include <algorithm>
#include <deque>
#include <random>
#include <vector>

#include "places/legacy_api.h"
#include "places/new_api.h"

namespace places {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One upstream call and the WHATSATs waiting for it.
struct GooglePlaces::Call {
  uint64_t id = 0;
  std::string key;      // what identical requests share: method, target and body
  http::Request request;
  std::string shown;    // the request for the log, key redacted
  struct Waiter {
    int bound;
    Done done;
    Wanted wanted;  // empty: always
  };
  std::vector<Waiter> waiters;
  // Whether any waiter still wants the answer.
  bool wanted() const {
    return std::any_of(waiters.begin(), waiters.end(), [](const Waiter& w) { return !w.wanted || w.wanted(); });
  }
  Clock::time_point deadline;
  Clock::time_point attempt_started;
  int attempts = 0;
  // The upstream's answer that a retry was scheduled after: passed on if the retries end in no
  // answer at all (the WHATSAT's time runs out in the middle of one, or it cannot connect).
  std::shared_ptr<const PlacesAnswer> last_answer;
  bool holds_slot = false;
  bool queued = false;
  reactor::EventLoop::TimerId timer = 0;  // the queue deadline, or the backoff before a retry
};

// The provider's state on one loop. Loop thread only, except `waiting` (read by other loops).
struct GooglePlaces::LoopState : std::enable_shared_from_this<LoopState> {
  explicit LoopState(reactor::EventLoop& l) : loop(l), rng(std::random_device{}()) {}
  reactor::EventLoop& loop;
  std::unordered_map<uint64_t, std::unique_ptr<Call>> calls;
  std::unordered_map<std::string, uint64_t> by_key;
  std::deque<uint64_t> queue;     // calls waiting for a slot, oldest first
  std::atomic<size_t> waiting{0};  // queue.size(), for other loops
  uint64_t next_id = 1;
  bool stopped = false;
  std::mt19937_64 rng;  // retry jitter
};

GooglePlaces::GooglePlaces(GoogleOptions options)
    : options_(std::move(options)),
      max_queued_(options_.max_queued ? options_.max_queued : kQueuedPerSlot * options_.max_inflight) {
  if (options_.provider == "google-new") {
    api_ = std::make_unique<NewApi>(options_.key);
  } else {
    api_ = std::make_unique<LegacyApi>(options_.key);
  }
  http::ClientOptions ho;
  ho.endpoint = options_.endpoint;
  ho.tls = options_.tls;
  // The loops share max_inflight calls, so steady traffic needs about max_inflight connections over
  // all loops: each keeps its share idle (so steady traffic opens no new ones; the idle timeout
  // closes what a burst left over), and the server never holds more than about twice max_inflight
  // upstream connections (Server::reserved_fds), however the bursts fall on the loops.
  ho.max_idle_per_loop = idle_per_loop(options_.max_inflight, options_.loops);
  if (options_.log) {
    PlacesLog sink = options_.log;
    ho.log = [sink](reactor::EventLoop& loop, std::string_view event) { sink(loop.index(), '*', event); };
  }
  http_ = std::make_unique<http::HttpClient>(std::move(ho));
}

GooglePlaces::~GooglePlaces() = default;

void GooglePlaces::log(reactor::EventLoop& loop, char kind, std::string_view text) const {
  if (options_.log) options_.log(loop.index(), kind, text);
}

std::shared_ptr<GooglePlaces::LoopState> GooglePlaces::state_for(reactor::EventLoop& loop) {
  std::lock_guard lock(mu_);
  auto& s = loops_[&loop];
  if (!s) s = std::make_shared<LoopState>(loop);
  return s;
}

bool GooglePlaces::try_acquire() {
  size_t cur = inflight_.load();
  while (cur < options_.max_inflight) {
    if (inflight_.compare_exchange_weak(cur, cur + 1)) return true;
  }
  return false;
}

void GooglePlaces::nearby(reactor::EventLoop& loop, const PlacesQuery& q, Done done, Wanted wanted) {
  loop.assert_in_loop();
  std::shared_ptr<LoopState> ls = state_for(loop);
  if (ls->stopped) {
    done(error_reply("UNKNOWN_ERROR", "the server is stopping"));
    return;
  }
  http::Request request = api_->request(q);
  std::string key = request.method + " " + request.target + "\n" + request.body;
  if (auto it = ls->by_key.find(key); it != ls->by_key.end()) {
    ls->calls[it->second]->waiters.push_back({q.bound, std::move(done), std::move(wanted)});
    coalesced_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  calls_.fetch_add(1, std::memory_order_relaxed);
  auto owned = std::make_unique<Call>();
  Call& call = *owned;
  call.id = ls->next_id++;
  call.key = std::move(key);
  call.shown = request.method + " " + options_.endpoint.origin() + options_.endpoint.base_path +
               redact(request.target, options_.key);
  call.request = std::move(request);
  call.waiters.push_back({q.bound, std::move(done), std::move(wanted)});
  call.deadline = Clock::now() + options_.timeout;
  ls->by_key.emplace(call.key, call.id);
  ls->calls.emplace(call.id, std::move(owned));

  if (try_acquire()) {
    call.holds_slot = true;
    start_attempt(*ls, call);
    return;
  }
  if (queued_.load() >= max_queued_) drop_unwanted(*ls);  // calls whose clients left give way
  if (queued_.fetch_add(1) >= max_queued_) {
    queued_.fetch_sub(1);
    refused_.fetch_add(1, std::memory_order_relaxed);
    log(loop, '!', "too many places requests: " + std::to_string(options_.max_inflight) + " in flight and " +
                       std::to_string(max_queued_) + " waiting; answering UNKNOWN_ERROR");
    complete(*ls, call.id,
             error_answer("UNKNOWN_ERROR", "too many places requests in progress (max_inflight " +
                                               std::to_string(options_.max_inflight) + "); try again later"));
    return;
  }
  call.queued = true;
  ls->queue.push_back(call.id);
  ls->waiting.fetch_add(1);
  call.timer = loop.run_after(options_.timeout, [this, w = std::weak_ptr<LoopState>(ls), id = call.id] {
    if (auto s = w.lock()) on_queue_timeout(*s, id);
  });
  drain(*ls);  // a slot may have come free on another loop meanwhile
}

void GooglePlaces::drain(LoopState& ls) {
  bool gave_back = false;
  while (!ls.stopped && !ls.queue.empty() && try_acquire()) {
    uint64_t id = ls.queue.front();
    ls.queue.pop_front();
    ls.waiting.fetch_sub(1);
    queued_.fetch_sub(1);
    auto it = ls.calls.find(id);
    if (it == ls.calls.end()) {
      inflight_.fetch_sub(1);
      gave_back = true;
      continue;
    }
    Call& call = *it->second;
    call.queued = false;
    call.holds_slot = true;
    if (call.timer) {
      ls.loop.cancel(call.timer);
      call.timer = 0;
    }
    // Its clients left while it waited (no upstream call for no one), or it is too late for an
    // attempt to finish (answered as the queue timeout would): the slot goes back.
    const bool wanted = call.wanted();
    if (!wanted || call.deadline - Clock::now() < kMinAttempt) {
      call.holds_slot = false;
      inflight_.fetch_sub(1);
      gave_back = true;
      if (!wanted) {
        abandon(ls, id);
      } else {
        complete(ls, id, slots_busy_answer());
      }
      continue;
    }
    start_attempt(ls, call);
  }
  // A slot taken here and given back may be the one another loop's drain found taken a moment ago,
  // after the wake-up that sent both here: wake the loops that still wait, or their calls sit until
  // their timeout.
  if (gave_back) wake_others(ls);
}

void GooglePlaces::release(LoopState& ls) {
  inflight_.fetch_sub(1);
  drain(ls);
  wake_others(ls);
}

void GooglePlaces::wake_others(LoopState& ls) {
  if (queued_.load() == 0) return;
  // Calls wait on other loops: wake those, so a slot freed here is not lost to them.
  std::vector<std::weak_ptr<LoopState>> others;
  {
    std::lock_guard lock(mu_);
    for (auto& [loop, s] : loops_) {
      if (s.get() != &ls && s->waiting.load() > 0) others.push_back(s);
    }
  }
  for (auto& w : others) {
    if (auto s = w.lock()) {
      s->loop.queue([this, w] {
        if (auto p = w.lock()) drain(*p);
      });
    }
  }
}

void GooglePlaces::start_attempt(LoopState& ls, Call& call) {
  ++call.attempts;
  attempts_.fetch_add(1, std::memory_order_relaxed);
  call.attempt_started = Clock::now();
  auto left = std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(call.deadline - call.attempt_started));
  log(ls.loop, '>', call.attempts == 1 ? call.shown : call.shown + " (attempt " + std::to_string(call.attempts) + ")");
  http_->send(ls.loop, call.request, left,
              [this, w = ls.weak_from_this(), id = call.id](http::Result result) {
                if (auto s = w.lock()) on_result(*s, id, std::move(result));
              });
}

void GooglePlaces::on_result(LoopState& ls, uint64_t call_id, http::Result result) {
  auto it = ls.calls.find(call_id);
  if (it == ls.calls.end()) return;
  Call& call = *it->second;
  auto now = Clock::now();
  auto took = std::chrono::duration_cast<milliseconds>(now - call.attempt_started).count();
  PlacesAnswer answer;
  if (!result.ok()) {
    std::string why = redact(result.error, options_.key);
    log(ls.loop, '!', "failed after " + std::to_string(took) + " ms: " + why);
    answer = result.timed_out
                 ? error_answer("UNKNOWN_ERROR", "no answer from the places upstream within " +
                                                     std::to_string(options_.timeout.count()) + " ms")
                 : error_answer("UNKNOWN_ERROR", "the places upstream failed: " + why);
  } else {
    answer = api_->interpret(result.response);
    bool fine = answer.status == "OK" || answer.status == "ZERO_RESULTS";
    log(ls.loop, fine ? '<' : '!',
        "HTTP " + std::to_string(result.response.status) + " in " + std::to_string(took) + " ms: " + answer.summary);
  }
  if (answer.retryable && call.attempts < options_.retry.max_attempts && call.wanted()) {
    milliseconds delay = options_.retry.delay(call.attempts, ls.rng);
    if (now + delay < call.deadline) {
      if (result.ok()) call.last_answer = std::make_shared<const PlacesAnswer>(answer);
      log(ls.loop, '*', "retrying in " + std::to_string(delay.count()) + " ms");
      call.timer = ls.loop.run_after(delay, [this, w = ls.weak_from_this(), id = call.id] {
        auto s = w.lock();
        if (!s) return;
        auto c = s->calls.find(id);
        if (c == s->calls.end()) return;
        c->second->timer = 0;
        start_attempt(*s, *c->second);
      });
      return;
    }
  }
  if (!result.ok() && call.last_answer) {
    log(ls.loop, '*', "passing on the last answer: " + call.last_answer->summary);
    const std::shared_ptr<const PlacesAnswer> last = call.last_answer;  // the call goes in complete()
    complete(ls, call_id, *last);
    return;
  }
  complete(ls, call_id, answer);
}

void GooglePlaces::abandon(LoopState& ls, uint64_t call_id) {
  abandoned_.fetch_add(1, std::memory_order_relaxed);
  complete(ls, call_id, error_answer("UNKNOWN_ERROR", "the client left before the places request was sent"));
}

void GooglePlaces::drop_unwanted(LoopState& ls) {
  std::vector<uint64_t> unwanted;
  for (uint64_t id : ls.queue) {
    auto it = ls.calls.find(id);
    if (it != ls.calls.end() && !it->second->wanted()) unwanted.push_back(id);
  }
  for (uint64_t id : unwanted) abandon(ls, id);
}

void GooglePlaces::on_queue_timeout(LoopState& ls, uint64_t call_id) {
  auto it = ls.calls.find(call_id);
  if (it == ls.calls.end()) return;
  it->second->timer = 0;
  log(ls.loop, '!', "no upstream slot came free within " + std::to_string(options_.timeout.count()) + " ms");
  complete(ls, call_id, slots_busy_answer());
}

PlacesAnswer GooglePlaces::slots_busy_answer() const {
  return error_answer("UNKNOWN_ERROR", "no answer from the places upstream within " +
                                           std::to_string(options_.timeout.count()) + " ms (all " +
                                           std::to_string(options_.max_inflight) + " upstream slots busy)");
}

void GooglePlaces::complete(LoopState& ls, uint64_t call_id, const PlacesAnswer& answer) {
  auto it = ls.calls.find(call_id);
  if (it == ls.calls.end()) return;
  std::unique_ptr<Call> call = std::move(it->second);
  ls.calls.erase(it);
  ls.by_key.erase(call->key);
  if (call->timer) ls.loop.cancel(call->timer);
  if (call->queued) {
    ls.queue.erase(std::remove(ls.queue.begin(), ls.queue.end(), call_id), ls.queue.end());
    ls.waiting.fetch_sub(1);
    queued_.fetch_sub(1);
  }
  // One rendering per distinct bound.
  std::vector<std::pair<int, std::string>> rendered;
  for (Call::Waiter& w : call->waiters) {
    auto r = std::find_if(rendered.begin(), rendered.end(), [b = w.bound](const auto& x) { return x.first == b; });
    if (r == rendered.end()) {
      rendered.emplace_back(w.bound, render_answer(answer, w.bound));
      r = rendered.end() - 1;
    }
    w.done(r->second);
  }
  if (call->holds_slot) release(ls);
}

void GooglePlaces::stop_loop(reactor::EventLoop& loop) {
  loop.assert_in_loop();
  // The state stays, marked stopped, so that a WHATSAT arriving on this loop before it ends is
  // answered at once instead of starting upstream work nobody would stop.
  std::shared_ptr<LoopState> ls = state_for(loop);
  if (!ls->stopped) {
    ls->stopped = true;
    std::vector<uint64_t> ids;
    for (auto& [id, call] : ls->calls) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (uint64_t id : ids) complete(*ls, id, error_answer("UNKNOWN_ERROR", "the server is stopping"));
  }
  http_->stop_loop(loop);  // answers still in flight there find no call and are dropped
}

}  // namespace places
