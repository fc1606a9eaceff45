// EventLoop: one epoll instance driven by one thread, with timers (one timerfd), a cross-thread task
// queue woken through an eventfd, and end-of-iteration deferred work (close by flag, free later).
//
// Ownership and threads: an EventLoop is created on any thread and then driven by exactly one thread,
// the one that calls run(). Methods marked "loop thread" must only be called from that thread, or,
// before run() is first called, from the one thread that sets the loop up; they check it and abort
// with a message otherwise. Methods marked "any thread" are thread-safe.
//
// Errors: registering or changing a descriptor returns false with errno set (a failed epoll_ctl for
// one connection must cost only that connection); the owner of the descriptor decides what to drop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

namespace reactor {

class LingeringClose;

// Something registered with an EventLoop for one file descriptor. The loop calls on_events with the
// epoll event bits. An object must stay alive until the end of the loop iteration in which it was
// removed (free it through EventLoop::defer), since events for it may still be in the current batch.
class Pollable {
 public:
  virtual void on_events(uint32_t events) = 0;

 protected:
  ~Pollable() = default;
};

class EventLoop {
 public:
  using Task = std::function<void()>;
  using TimerId = uint64_t;
  using Millis = std::chrono::milliseconds;

  // Any thread. The loop belongs to no thread until run() is called.
  explicit EventLoop(int index = 0);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Loop thread (the caller becomes it): dispatches events, timers and tasks until stop().
  void run();
  // Any thread: makes run() return after the current iteration (or at once, if called before run():
  // a stop is never lost to a thread that starts late; each stop ends one run).
  void stop();

  // Any thread: runs `task` on the loop thread, in FIFO order. From another thread the loop is woken
  // by one eventfd write per batch, not per task; from the loop thread itself the task runs at the end
  // of the current iteration, before the loop sleeps. A task still queued when the loop is destroyed
  // (it stopped first) is destroyed without running: what it carries must free itself then (a
  // descriptor: see reactor::hand_over).
  void queue(Task task);

  // Loop thread: runs `task` at the end of the current iteration (after every event of the batch).
  void defer(Task task);

  // Loop thread: epoll registration of `fd` for `events` (EPOLLIN, EPOLLOUT, EPOLLEXCLUSIVE, ...).
  // add and modify return false with errno set when the kernel refuses (ENOMEM, ENOSPC for
  // max_user_watches, ...): nothing is registered or changed then, and the caller drops what the fd
  // belongs to. remove never fails in a way the caller could act on.
  [[nodiscard]] bool add(int fd, uint32_t events, Pollable* target);
  [[nodiscard]] bool modify(int fd, uint32_t events, Pollable* target);
  void remove(int fd);

  // Loop thread: closes a connected socket (deregistered) whose output is all written, without
  // the reset that closing it with unread input would send: see reactor/lingering_close.h.
  void close_lingering(int fd);

  // Loop thread: timers. `task` runs on the loop thread once after `delay` (run_after) or every
  // `period` (run_every) until cancelled. Cancelling an unknown or finished timer is a no-op.
  TimerId run_after(Millis delay, Task task);
  TimerId run_every(Millis period, Task task);
  void cancel(TimerId id);

  // The counter in which the buffers of this loop's connections count their capacity (see
  // reactor::Buffer): the loop's own by default; set one shared by several loops before run().
  std::atomic<int64_t>* buffer_account() const { return buffer_account_; }
  void set_buffer_account(std::atomic<int64_t>* counter) { buffer_account_ = counter ? counter : &own_account_; }

  // Any thread.
  bool in_loop_thread() const { return std::this_thread::get_id() == owner_.load(std::memory_order_relaxed); }
  int index() const { return index_; }
  void assert_in_loop() const;

 private:
  struct Timer {
    Task task;
    Millis period;  // zero for a one-shot timer
  };
  struct Deadline {
    std::chrono::steady_clock::time_point when;
    TimerId id;
    bool operator>(const Deadline& o) const { return when > o.when; }
  };
  class CounterHandler;

  bool ctl(int op, int fd, uint32_t events, Pollable* target);
  void run_tasks();
  void run_due_timers();
  void arm_timerfd();

  const int index_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int timer_fd_ = -1;
  std::atomic<bool> stop_requested_{false};
  std::atomic<std::thread::id> owner_;

  std::mutex tasks_mu_;
  std::vector<Task> tasks_;           // guarded by tasks_mu_
  bool wake_pending_ = false;         // guarded by tasks_mu_: an eventfd write is outstanding
  std::vector<Task> deferred_;        // loop thread only

  std::unordered_map<TimerId, Timer> timers_;  // loop thread only
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<Deadline>> deadlines_;
  TimerId next_timer_ = 1;
  std::chrono::steady_clock::time_point armed_for_{};

  std::atomic<int64_t> own_account_{0};
  std::atomic<int64_t>* buffer_account_ = &own_account_;

  std::unique_ptr<CounterHandler> wake_handler_;
  std::unique_ptr<CounterHandler> timer_handler_;
  std::unique_ptr<LingeringClose> lingering_;  // loop thread only; made on first use
};

}  // namespace reactor
