// LingeringClose: the last step of a connection that has said everything it had to say. Closing a
// TCP socket whose input was not all read makes the kernel answer with a reset instead of a FIN, and
// a reset throws away whatever the kernel has not sent yet: a client that sent more than the server
// read (a line over the limit, a request body after a refusal) would lose the very reply that tells
// it why it is dropped, and see "connection reset". So a socket handed here has its sending side shut
// (the FIN goes after the bytes still queued), and what arrives is read and thrown away until the
// peer's FIN, an error, kMaxDiscardBytes or kMaxLinger, and only then closed.
//
// Every socket here is bounded in time and bytes, and the number lingering in one loop is bounded
// (kMaxSockets; beyond it a socket is closed at once, as it would have been without this).
//
// Threads: loop thread only; one per EventLoop (EventLoop::close_lingering creates it).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <unordered_map>

namespace reactor {

class EventLoop;

class LingeringClose {
 public:
  static constexpr std::chrono::milliseconds kMaxLinger{2000};
  static constexpr size_t kMaxDiscardBytes = 4 << 20;
  static constexpr size_t kMaxSockets = 16;  // per loop (herd-server reserves their descriptors)

  explicit LingeringClose(EventLoop& loop);
  // Closes every socket still lingering (the loop is going: nothing is deregistered).
  ~LingeringClose();
  LingeringClose(const LingeringClose&) = delete;
  LingeringClose& operator=(const LingeringClose&) = delete;

  // Takes `fd` (a connected socket, deregistered from the loop, its output all written): shuts its
  // sending side and closes it once the peer has finished, or a bound is reached.
  void close(int fd);

 private:
  struct Socket;
  void finish(int fd);

  EventLoop& loop_;
  std::unordered_map<int, std::unique_ptr<Socket>> sockets_;
};

}  // namespace reactor
