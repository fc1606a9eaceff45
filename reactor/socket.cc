// Socket helpers: resolution, listen, non-blocking connect, options.
#include "reactor/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace reactor {

std::string SocketAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (storage.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (storage.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

bool resolve(const std::string& host, uint16_t port, SocketAddress* out, std::string* error) {
  std::vector<SocketAddress> all;
  if (!resolve_all(host, port, &all, error)) return false;
  *out = all.front();
  return true;
}

namespace {
// Closes `fd` on a failure path, leaving errno as the failing call set it (see socket.h).
void close_keeping_errno(int fd) {
  const int saved = errno;
  ::close(fd);
  errno = saved;
}

// A socket with SO_REUSEADDR (and SO_REUSEPORT when `reuseport`) bound to `addr`, or -1 with *error.
int bound_socket(const SocketAddress& addr, bool reuseport, std::string* error) {
  int fd = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    *error = addr.to_string() + ": SO_REUSEPORT: " + std::strerror(errno);
    close_keeping_errno(fd);
    return -1;
  }
  if (::bind(fd, addr.get(), addr.length) < 0) {
    *error = addr.to_string() + ": " + std::strerror(errno);
    close_keeping_errno(fd);
    return -1;
  }
  return fd;
}

uint16_t port_of(const SocketAddress& addr) {
  if (addr.storage.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr.storage)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr.storage)->sin6_port);
}

void set_port(SocketAddress* addr, uint16_t port) {
  if (addr->storage.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&addr->storage)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&addr->storage)->sin6_port = htons(port);
  }
}
// bound_socket, listening; -1 with *error.
int listening_socket(const SocketAddress& addr, bool reuseport, int backlog, std::string* error) {
  int fd = bound_socket(addr, reuseport, error);
  if (fd >= 0 && ::listen(fd, backlog) < 0) {
    *error = addr.to_string() + ": " + std::strerror(errno);
    close_keeping_errno(fd);
    return -1;
  }
  return fd;
}
}  // namespace

int listen_tcp(const SocketAddress& addr, int backlog, std::string* error) {
  return listening_socket(addr, false, backlog, error);
}

bool listen_tcp_reuseport(const SocketAddress& addr, int count, int backlog, std::vector<int>* fds,
                          std::string* error) {
  SocketAddress at = addr;
  if (port_of(at) != 0) {
    int probe = bound_socket(at, false, error);
    if (probe < 0) return false;
    ::close(probe);
  }
  std::vector<int> made;
  for (int i = 0; i < count; ++i) {
    const int fd = listening_socket(at, true, backlog, error);
    if (fd < 0) {
      for (int m : made) close_keeping_errno(m);
      return false;
    }
    made.push_back(fd);
    if (port_of(at) == 0) {  // the others join the port the kernel gave the first
      SocketAddress got;
      got.length = sizeof got.storage;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&got.storage), &got.length) < 0) {
        *error = at.to_string() + ": getsockname: " + std::strerror(errno);
        for (int m : made) close_keeping_errno(m);
        return false;
      }
      set_port(&at, port_of(got));
    }
  }
  fds->insert(fds->end(), made.begin(), made.end());
  return true;
}

int connect_tcp(const SocketAddress& addr, std::string* error) {
  int fd = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (::connect(fd, addr.get(), addr.length) < 0 && errno != EINPROGRESS) {
    *error = addr.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

bool connected_to_itself(int fd) {
  SocketAddress self, peer;
  self.length = peer.length = sizeof(sockaddr_storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self.storage), &self.length) != 0) return false;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) != 0) return false;
  return self.length == peer.length && std::memcmp(&self.storage, &peer.storage, self.length) == 0;
}

bool ephemeral_port_range(uint16_t* low, uint16_t* high) {
  FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
  if (!f) return false;
  unsigned a = 0, b = 0;
  const bool ok = std::fscanf(f, "%u %u", &a, &b) == 2 && a <= b && b <= 65535;
  std::fclose(f);
  if (!ok) return false;
  *low = static_cast<uint16_t>(a);
  *high = static_cast<uint16_t>(b);
  return true;
}

void close_with_reset(int fd) {
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_keepalive(int fd, int idle_s, int interval_s, int count) {
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

void set_user_timeout(int fd, unsigned ms) {
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
}

std::string ip_of(const SocketAddress& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.storage.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr.storage)->sin_addr, host, sizeof host);
  } else if (addr.storage.ss_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&addr.storage)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      ::inet_ntop(AF_INET, a.s6_addr + 12, host, sizeof host);
    } else {
      ::inet_ntop(AF_INET6, &a, host, sizeof host);
    }
  }
  return host;
}

bool resolve_all(const std::string& host, uint16_t port, std::vector<SocketAddress>* out, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  // Only an IPv6 literal holds a colon: never ask a name service about one that does not parse.
  if (host.find(':') != std::string::npos) hints.ai_flags |= AI_NUMERICHOST;
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0 || !result) {
    *error = "cannot resolve host '" + host + "': " + ::gai_strerror(rc);
    return false;
  }
  const size_t before = out->size();
  for (addrinfo* a = result; a; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SocketAddress s;
    std::memcpy(&s.storage, a->ai_addr, a->ai_addrlen);
    s.length = a->ai_addrlen;
    out->push_back(s);
  }
  ::freeaddrinfo(result);
  if (out->size() == before) {
    *error = "cannot resolve host '" + host + "': no address";
    return false;
  }
  return true;
}

int64_t unacked_bytes(int fd) {
  int n = 0;
  if (::ioctl(fd, SIOCOUTQ, &n) != 0) return -1;
  return n;
}

uint64_t raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace reactor
