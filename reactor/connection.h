// The connection interface (Connection) and what a connection tells its owner (ConnectionHandler).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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
  // The stream can carry application bytes: for TLS, the handshake completed and the peer's
  // certificate was verified (TlsConnection::peer_names() is valid from here on). TcpConnection calls
  // it from start(), at the end of that loop iteration (deferred), so owners can treat both alike.
  virtual void on_established(Connection&) {}
  // All buffered output has reached the kernel.
  virtual void on_drained(Connection&) {}
  // The connection is closed; called exactly once, after which the fd is gone.
  virtual void on_closed(Connection& c, std::string_view reason) = 0;

 protected:
  ~ConnectionHandler() = default;
};

// Connection: the byte-stream interface every owner of a connection codes against, whatever carries
// the bytes (TcpConnection: plain TCP; TlsConnection: TLS over TCP). It buffers what the kernel (or the
// TLS layer) will not take yet, arms write interest only while bytes remain, and lets its handler stop
// reading (backpressure). Concrete classes are final, so an owner that holds one by its concrete type
// pays no virtual call.
//
// Threads: loop thread only, for every method. Lifetime: the owner keeps the Connection alive until
// the end of the loop iteration in which on_closed ran (free it through EventLoop::defer).
class Connection : public Pollable {
 public:
  // Bytes read per read() call, and the most written per write event (fairness between sockets).
  static constexpr size_t kReadChunk = 64 * 1024;
  static constexpr size_t kMaxWritePerEvent = 1024 * 1024;

  virtual ~Connection() = default;

  // Registers with the loop and starts reading (for TLS: starts the handshake).
  virtual void start() = 0;

  // Sends `bytes`: written now as far as the transport takes them, the rest buffered and written when
  // the socket is writable. A write error closes the connection at the end of the iteration.
  virtual void send(std::string_view bytes) = 0;
  // Bytes accepted by send() and not yet handed to the kernel.
  virtual size_t pending_output() const = 0;

  // Backpressure: stop or resume reading. Resuming re-offers unconsumed input to on_data (at the end
  // of the iteration), so lines held back while paused are not forgotten.
  virtual void set_reading(bool on) = 0;
  virtual bool reading() const = 0;
  // Re-offers the unconsumed input to on_data at the end of the iteration (no-op when there is none):
  // for a handler that stopped consuming for a reason of its own and can take more now.
  virtual void redispatch() = 0;

  // Closes once every buffered byte is written (now, if none is).
  virtual void close_when_flushed(std::string_view reason) = 0;
  // Closes now; buffered output is dropped. Idempotent.
  virtual void close(std::string_view reason) = 0;

  virtual bool is_open() const = 0;
  virtual bool eof() const = 0;
  // After on_eof: whether the sender ended the stream on purpose. Always for plain TCP (its FIN is
  // the end); for TLS only when a close_notify came first: a FIN alone may come from a crash or from
  // anyone on the path, so a message delimited by the end of the stream may have been cut short.
  virtual bool eof_confirmed() const = 0;
  // Whether the read that delivered the newest input stopped because its buffer was full rather than
  // because the transport had nothing more: then bytes past those offered to on_data may already
  // wait unseen (in the kernel, or in the TLS layer). A handler that must know where the peer's
  // bytes end (a response on a connection to be reused) cannot count on more arriving later to
  // tell it. Known from the read itself: asking costs no system call.
  virtual bool more_input_may_wait() const = 0;
  virtual int fd() const = 0;
  virtual EventLoop& loop() = 0;

 protected:
  Connection() = default;
};

}  // namespace reactor
