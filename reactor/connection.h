// Connection: a non-blocking TCP stream owned by one EventLoop. It reads into a per-thread scratch
// area and keeps only unconsumed bytes, tries every write at once and buffers only what the kernel
// would not take, arms EPOLLOUT only while bytes remain, and lets its handler stop reading
// (backpressure). An idle connection holds no buffer memory.
//
// Threads: loop thread only, for every method. Lifetime: the owner keeps the Connection alive until
// the end of the loop iteration in which on_closed ran (free it through EventLoop::defer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "reactor/buffer.h"
#include "reactor/event_loop.h"

namespace reactor {

class Connection;

// What a Connection tells its owner. All calls come on the connection's loop thread.
class ConnectionHandler {
 public:
  // New bytes arrived. `data` is every unconsumed byte so far (older leftovers first). Returns how
  // many bytes from the front were consumed; the rest is offered again with the next bytes.
  virtual size_t on_data(Connection& c, std::string_view data) = 0;
  // The peer half-closed: no more bytes will come. `rest` is what on_data left unconsumed. Output can
  // still be sent; the handler decides when to close (usually close_when_flushed()).
  virtual void on_eof(Connection& c, std::string_view rest) = 0;
  // All buffered output has reached the kernel.
  virtual void on_drained(Connection&) {}
  // The connection is closed; called exactly once, after which the fd is gone.
  virtual void on_closed(Connection& c, std::string_view reason) = 0;

 protected:
  ~ConnectionHandler() = default;
};

class Connection final : public Pollable {
 public:
  // Bytes read per read() call, and the most written per EPOLLOUT event (fairness between sockets).
  static constexpr size_t kReadChunk = 64 * 1024;
  static constexpr size_t kMaxWritePerEvent = 1024 * 1024;

  // Takes ownership of the connected, non-blocking `fd`. Nothing happens until start().
  Connection(EventLoop& loop, int fd, ConnectionHandler& handler);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Registers with the loop and starts reading.
  void start();

  // Sends `bytes`: written now as far as the kernel takes them, the rest buffered and written when the
  // socket is writable. A write error closes the connection at the end of the iteration.
  void send(std::string_view bytes);
  size_t pending_output() const { return out_.size(); }

  // Backpressure: stop or resume reading. Resuming re-offers unconsumed input to on_data (at the end of
  // the iteration), so lines held back while paused are not forgotten.
  void set_reading(bool on);
  bool reading() const { return want_read_; }

  // Closes once every buffered byte is written (now, if none is).
  void close_when_flushed(std::string_view reason);
  // Closes now; buffered output is dropped. Idempotent.
  void close(std::string_view reason);

  bool is_open() const { return fd_ >= 0; }
  bool eof() const { return eof_; }
  int fd() const { return fd_; }
  EventLoop& loop() { return loop_; }

  void on_events(uint32_t events) override;

 private:
  void handle_read();
  void handle_write();
  void update_interest();
  void dispatch_input();

  EventLoop& loop_;
  int fd_;
  ConnectionHandler& handler_;
  Buffer in_;   // unconsumed input
  Buffer out_;  // unsent output
  uint32_t interest_ = 0;  // events registered with epoll
  bool registered_ = false;
  bool want_read_ = true;
  bool eof_ = false;
  bool close_when_flushed_ = false;
  bool redispatch_queued_ = false;
  bool write_failed_ = false;
  std::string close_reason_;
};

}  // namespace reactor
