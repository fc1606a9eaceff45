// EventLoop implementation: epoll_wait dispatch, eventfd wake-ups, a timerfd over a deadline heap.
#include "reactor/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>

#include "reactor/lingering_close.h"

namespace reactor {
namespace {

// Events handled per epoll_wait call. More wait in the kernel for the next call.
constexpr int kMaxEventsPerWait = 256;

[[noreturn]] void die(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

// Drains a counter fd (eventfd or timerfd) when it is readable, then runs the loop's handler for it.
class EventLoop::CounterHandler final : public Pollable {
 public:
  CounterHandler(int fd, std::function<void()> then) : fd_(fd), then_(std::move(then)) {}
  void on_events(uint32_t) override {
    uint64_t n;
    while (::read(fd_, &n, sizeof n) > 0) {
    }
    then_();
  }

 private:
  int fd_;
  std::function<void()> then_;
};

EventLoop::EventLoop(int index) : index_(index), owner_(std::thread::id()) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) die("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) die("eventfd");
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) die("timerfd_create");
  wake_handler_ = std::make_unique<CounterHandler>(wake_fd_, [this] { run_tasks(); });
  timer_handler_ = std::make_unique<CounterHandler>(timer_fd_, [this] {
    armed_for_ = {};
    run_due_timers();
  });
  if (!ctl(EPOLL_CTL_ADD, wake_fd_, EPOLLIN, wake_handler_.get()) ||
      !ctl(EPOLL_CTL_ADD, timer_fd_, EPOLLIN, timer_handler_.get())) {
    die("epoll_ctl(ADD)");  // construction: the caller cannot have a loop without these
  }
}

EventLoop::~EventLoop() {
  lingering_.reset();
  ::close(timer_fd_);
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void EventLoop::assert_in_loop() const {
  // Before the first run(), the thread setting the loop up may use it (no other thread can yet).
  if (!in_loop_thread() && owner_.load(std::memory_order_relaxed) != std::thread::id()) {
    std::fprintf(stderr, "reactor: loop %d used from a foreign thread\n", index_);
    std::abort();
  }
}

void EventLoop::run() {
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  epoll_event events[kMaxEventsPerWait];
  // A stop() that came before the thread got here ends the loop at once; each stop() ends one run().
  while (!stop_requested_.load(std::memory_order_acquire)) {
    int timeout = -1;
    {
      std::lock_guard lock(tasks_mu_);
      if (!tasks_.empty()) timeout = 0;
    }
    if (!deferred_.empty()) timeout = 0;
    int n = ::epoll_wait(epoll_fd_, events, kMaxEventsPerWait, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      static_cast<Pollable*>(events[i].data.ptr)->on_events(events[i].events);
    }
    run_tasks();
    // Deferred work may defer more work (a close that frees a session that closes a link...).
    while (!deferred_.empty()) {
      std::vector<Task> batch;
      batch.swap(deferred_);
      for (auto& task : batch) task();
    }
  }
  stop_requested_.store(false, std::memory_order_release);
  // Stopped: whoever tears the loop's objects down now (after joining this thread) may touch it.
  owner_.store(std::thread::id(), std::memory_order_relaxed);
}

void EventLoop::stop() {
  stop_requested_.store(true, std::memory_order_release);
  queue([] {});
}

void EventLoop::queue(Task task) {
  if (in_loop_thread()) {
    // Runs before the loop sleeps again: no wake-up needed.
    deferred_.push_back(std::move(task));
    return;
  }
  bool wake;
  {
    std::lock_guard lock(tasks_mu_);
    tasks_.push_back(std::move(task));
    wake = !wake_pending_;
    wake_pending_ = true;
  }
  if (wake) {
    uint64_t one = 1;
    ssize_t r = ::write(wake_fd_, &one, sizeof one);
    (void)r;  // EAGAIN means the counter is already non-zero: the loop will wake anyway.
  }
}

void EventLoop::run_tasks() {
  std::vector<Task> batch;
  {
    std::lock_guard lock(tasks_mu_);
    batch.swap(tasks_);
    wake_pending_ = false;
  }
  for (auto& task : batch) task();
}

void EventLoop::defer(Task task) {
  assert_in_loop();
  deferred_.push_back(std::move(task));
}

bool EventLoop::ctl(int op, int fd, uint32_t events, Pollable* target) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = target;
  return ::epoll_ctl(epoll_fd_, op, fd, &ev) == 0;
}

bool EventLoop::add(int fd, uint32_t events, Pollable* target) {
  assert_in_loop();
  return ctl(EPOLL_CTL_ADD, fd, events, target);
}

bool EventLoop::modify(int fd, uint32_t events, Pollable* target) {
  assert_in_loop();
  return ctl(EPOLL_CTL_MOD, fd, events, target);
}

void EventLoop::remove(int fd) {
  assert_in_loop();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::close_lingering(int fd) {
  assert_in_loop();
  if (!lingering_) {
    lingering_.reset(new (std::nothrow) LingeringClose(*this));
    if (!lingering_) {
      ::close(fd);  // as it would be without lingering
      return;
    }
  }
  lingering_->close(fd);
}

EventLoop::TimerId EventLoop::run_after(Millis delay, Task task) {
  assert_in_loop();
  TimerId id = next_timer_++;
  timers_.emplace(id, Timer{std::move(task), Millis::zero()});
  deadlines_.push({std::chrono::steady_clock::now() + delay, id});
  arm_timerfd();
  return id;
}

EventLoop::TimerId EventLoop::run_every(Millis period, Task task) {
  assert_in_loop();
  if (period <= Millis::zero()) period = Millis(1);
  TimerId id = next_timer_++;
  timers_.emplace(id, Timer{std::move(task), period});
  deadlines_.push({std::chrono::steady_clock::now() + period, id});
  arm_timerfd();
  return id;
}

void EventLoop::cancel(TimerId id) {
  assert_in_loop();
  timers_.erase(id);  // its heap entry is skipped when it comes due
}

void EventLoop::run_due_timers() {
  auto now = std::chrono::steady_clock::now();
  // Cap the work per iteration so that a storm of timers never starves I/O.
  constexpr int kMaxTimersPerIteration = 1024;
  for (int fired = 0; fired < kMaxTimersPerIteration && !deadlines_.empty(); ++fired) {
    Deadline d = deadlines_.top();
    if (d.when > now) break;
    deadlines_.pop();
    auto it = timers_.find(d.id);
    if (it == timers_.end()) continue;
    if (it->second.period > Millis::zero()) {
      deadlines_.push({now + it->second.period, d.id});
      Task task = it->second.task;  // copy: the task may cancel its own timer
      task();
    } else {
      Task task = std::move(it->second.task);
      timers_.erase(it);
      task();
    }
  }
  // Drop cancelled entries at the top so the timerfd is armed for a live deadline.
  while (!deadlines_.empty() && !timers_.count(deadlines_.top().id)) deadlines_.pop();
  arm_timerfd();
}

void EventLoop::arm_timerfd() {
  if (deadlines_.empty()) return;
  auto when = deadlines_.top().when;
  if (armed_for_ != std::chrono::steady_clock::time_point{} && armed_for_ <= when) return;
  armed_for_ = when;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  if (ns <= 0) ns = 1;
  itimerspec spec{};
  spec.it_value.tv_sec = ns / 1000000000;
  spec.it_value.tv_nsec = ns % 1000000000;
  if (::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) < 0) die("timerfd_settime");
}

}  // namespace reactor
