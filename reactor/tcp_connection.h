// TcpConnection: a non-blocking TCP stream owned by one EventLoop. It reads into a per-thread scratch
// area and keeps only unconsumed bytes, tries every write at once and buffers only what the kernel
// would not take, arms EPOLLOUT only while bytes remain, and lets its handler stop reading
// (backpressure). An idle connection holds no buffer memory.
//
// Threads and lifetime: as for every Connection (reactor/connection.h).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "reactor/buffer.h"
#include "reactor/connection.h"

namespace reactor {

class TcpConnection final : public Connection {
 public:
  // Takes ownership of the connected, non-blocking `fd`. Nothing happens until start().
  TcpConnection(EventLoop& loop, int fd, ConnectionHandler& handler);
  ~TcpConnection() override;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  void start() override;
  void send(std::string_view bytes) override;
  size_t pending_output() const override { return out_.size(); }
  void set_reading(bool on) override;
  bool reading() const override { return want_read_; }
  void redispatch() override;
  void close_when_flushed(std::string_view reason) override;
  void close(std::string_view reason) override;
  bool is_open() const override { return fd_ >= 0; }
  bool eof() const override { return eof_; }
  bool eof_confirmed() const override { return true; }
  bool more_input_may_wait() const override { return more_may_wait_; }
  int fd() const override { return fd_; }
  EventLoop& loop() override { return loop_; }
  // Reads at most `bytes` (1 to kReadChunk) per read() from now on; kReadChunk to begin with. A
  // handler under memory pressure takes its input in smaller steps, so that less of it waits here.
  void set_read_size(size_t bytes) { read_size_ = std::clamp<size_t>(bytes, 1, kReadChunk); }

  void on_events(uint32_t events) override;

 private:
  void handle_events(uint32_t events);
  void handle_read();
  void handle_write();
  void update_interest();
  void dispatch_input();
  // Closes with `reason` at the end of the iteration (for failures inside calls from the handler);
  // until then nothing more is written or registered.
  void fail_later(std::string reason);
  // Closes with `reason`; `flushed` when every byte sent reached the kernel (close_when_flushed):
  // then the socket ends through the loop's lingering close, so unread input cannot reset it.
  void end(std::string_view reason, bool flushed);

  EventLoop& loop_;
  int fd_;
  ConnectionHandler& handler_;
  Buffer in_;   // unconsumed input
  Buffer out_;  // unsent output
  size_t read_size_ = kReadChunk;  // bytes asked of each read()
  uint32_t interest_ = 0;  // events registered with epoll
  bool registered_ = false;
  bool want_read_ = true;
  bool eof_ = false;
  bool more_may_wait_ = false;  // the latest read() got all it asked for: more may be in the kernel
  bool close_when_flushed_ = false;
  bool redispatch_queued_ = false;
  bool write_failed_ = false;   // a write or an epoll registration failed: closing at iteration end
  std::string close_reason_;
};

}  // namespace reactor
