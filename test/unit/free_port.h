// unused_loopback_port: a port on 127.0.0.1 for a server a test starts.
//
// A port the kernel hands out for port 0 lies in its range for outgoing connections, and a test that
// starts two linked servers dials from that range: the first server's dial to the second can be
// given, as its own source port, a port the second is about to listen on, and the second then fails
// with "Address already in use". So the port is chosen below the range where there is room, tried
// with a bind (nothing bound there now, not even a TIME-WAIT), and never handed out twice in one
// process. Only with no free port below the range does it fall back to one the kernel picks.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <random>
#include <set>

#include "reactor/socket.h"

namespace testing_net {

// Whether a socket can bind 127.0.0.1:port now (port 0: any); the port bound, or 0.
inline uint16_t try_bind_loopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  uint16_t bound = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    bound = ntohs(a.sin_port);
  }
  ::close(fd);
  return bound;
}

inline uint16_t unused_loopback_port() {
  static std::mutex mu;
  static std::set<uint16_t> given;
  static std::mt19937 rng{std::random_device{}()};
  std::lock_guard lock(mu);
  uint16_t low = 0, high = 0;
  constexpr uint16_t kFloor = 10000;  // above the well-known and most registered services' ports
  if (reactor::ephemeral_port_range(&low, &high) && low > kFloor + 1000) {
    std::uniform_int_distribution<unsigned> pick(kFloor, low - 1u);
    for (int attempt = 0; attempt < 200; ++attempt) {
      const auto port = static_cast<uint16_t>(pick(rng));
      if (given.count(port) == 0 && try_bind_loopback(port) == port) {
        given.insert(port);
        return port;
      }
    }
  }
  for (int attempt = 0; attempt < 200; ++attempt) {
    const uint16_t port = try_bind_loopback(0);
    if (port != 0 && given.insert(port).second) return port;
  }
  return 0;  // no socket can be bound at all: the server's start then fails and says why
}

}  // namespace testing_net
