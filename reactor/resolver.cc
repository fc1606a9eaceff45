// Resolver implementation: numeric hosts at once; names on one worker thread fed by a bounded queue,
// answers queued on the asking loop behind a flag the Resolver clears when it goes.
#include "reactor/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include "reactor/threads.h"

namespace reactor {

// Shared by the Resolver and its worker, so that the worker can finish a lookup after the Resolver
// is gone without touching anything that went with it.
struct Resolver::State {
  struct Job {
    EventLoop* loop;
    std::string host;
    uint16_t port;
    Done done;
  };

  // Queues `done`'s answer on `loop`; it is dropped there if the Resolver has gone by then.
  static void answer(const std::shared_ptr<State>& state, EventLoop& loop, Done done, Addresses addresses,
                     std::string error) {
    loop.queue([state, done = std::move(done), addresses = std::move(addresses), error = std::move(error)]() mutable {
      if (state->alive.load(std::memory_order_acquire)) done(std::move(addresses), std::move(error));
    });
  }

  void run(const std::shared_ptr<State>& self);

  std::atomic<bool> alive{true};  // false once the Resolver is destroyed
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;              // guarded by mu
  EventLoop* busy_loop = nullptr;    // guarded by mu: the loop of the lookup in progress
  bool stopping = false;             // guarded by mu
  bool worker_running = false;       // guarded by mu
};

Resolver::Resolver() : state_(std::make_shared<State>()) {}

Resolver::~Resolver() {
  state_->alive.store(false, std::memory_order_release);
  std::deque<State::Job> dropped;  // their callbacks die outside the lock (see forget)
  {
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
    dropped.swap(state_->jobs);
  }
  state_->cv.notify_all();
}

void Resolver::resolve(EventLoop& loop, std::string host, uint16_t port, Done done) {
  SocketAddress numeric;
  if (numeric_address(host, port, &numeric)) {
    State::answer(state_, loop, std::move(done), {numeric}, {});
    return;
  }
  std::unique_lock lock(state_->mu);
  if (state_->jobs.size() >= kMaxQueued) {
    lock.unlock();
    State::answer(state_, loop, std::move(done), {}, "cannot resolve host '" + host + "': too many lookups waiting");
    return;
  }
  state_->jobs.push_back(State::Job{&loop, std::move(host), port, std::move(done)});
  if (!state_->worker_running) {
    // A process at its thread limit cannot start the worker: the lookup fails like any other (and a
    // later one tries again), rather than the exception ending the process.
    try {
      start_thread("resolver", [state = state_] { state->run(state); }).detach();
      state_->worker_running = true;
    } catch (const std::system_error& e) {
      State::Job job = std::move(state_->jobs.back());
      state_->jobs.pop_back();
      lock.unlock();
      State::answer(state_, loop, std::move(job.done), {},
                    "cannot resolve host '" + job.host + "': " + e.what());
      return;
    }
  }
  lock.unlock();
  state_->cv.notify_one();
}

void Resolver::forget(EventLoop& loop) {
  // The dropped callbacks are destroyed after the lock is let go: what they capture may, in its
  // destructor, ask this Resolver for something.
  std::vector<State::Job> dropped;
  std::lock_guard lock(state_->mu);
  for (auto it = state_->jobs.begin(); it != state_->jobs.end();) {
    if (it->loop == &loop) {
      dropped.push_back(std::move(*it));
      it = state_->jobs.erase(it);
    } else {
      ++it;
    }
  }
  if (state_->busy_loop == &loop) state_->busy_loop = nullptr;  // the worker drops its answer
}

void Resolver::State::run(const std::shared_ptr<State>& self) {
  std::unique_lock lock(mu);
  for (;;) {
    cv.wait(lock, [this] { return stopping || !jobs.empty(); });
    if (stopping) return;
    Job job = std::move(jobs.front());
    jobs.pop_front();
    busy_loop = job.loop;
    lock.unlock();

    Addresses addresses;
    std::string error;
    resolve_all(job.host, job.port, &addresses, &error);

    lock.lock();
    // Queued under the lock, so forget() cannot return between the check and the queueing.
    if (busy_loop == job.loop && !stopping) {
      answer(self, *job.loop, std::move(job.done), std::move(addresses), std::move(error));
    }
    busy_loop = nullptr;
    if (job.done) {  // an answer nobody waits for any more: its callback dies outside the lock
      lock.unlock();
      job.done = nullptr;
      lock.lock();
    }
  }
}

bool numeric_address(const std::string& host, uint16_t port, SocketAddress* out) {
  *out = SocketAddress{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->length = sizeof(sockaddr_in);
    return true;
  }
  *out = SocketAddress{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace reactor
