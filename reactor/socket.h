// Thin, error-reporting wrappers over the BSD socket calls the reactor needs: address resolution,
// listening sockets, non-blocking connects, and socket options. Any thread; no state.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace reactor {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  std::string to_string() const;  // "127.0.0.1:12000" or "[::1]:12000"
};

// Resolves `host` (a numeric IPv4/IPv6 address or a name) and `port`. Blocking (for start-up only).
bool resolve(const std::string& host, uint16_t port, SocketAddress* out, std::string* error);

// A non-blocking, close-on-exec listening TCP socket bound to `addr`, or -1 with *error set
// (e.g. "127.0.0.1:12000: Address already in use") and errno the failing call's (EADDRINUSE).
int listen_tcp(const SocketAddress& addr, int backlog, std::string* error);

// `count` listening sockets (non-blocking, close-on-exec) bound to the same `addr` with SO_REUSEPORT,
// so that the kernel spreads incoming connections over them by a hash of the connection's addresses.
// Before binding them, a probe socket without SO_REUSEPORT is bound to `addr` and closed: an address
// that something already listens on fails here (EADDRINUSE) instead of the group silently joining a
// second process's SO_REUSEPORT sockets. With port 0 the group shares the port the first one got.
// True with the sockets appended to *fds; false with *error set, errno the failing call's, and
// nothing left open.
bool listen_tcp_reuseport(const SocketAddress& addr, int count, int backlog, std::vector<int>* fds,
                          std::string* error);

// Starts a non-blocking connect to `addr`. Returns the socket (connect in progress or done) or -1
// with *error set.
int connect_tcp(const SocketAddress& addr, std::string* error);

// The pending error of a socket (SO_ERROR), 0 when none.
int socket_error(int fd);

// Whether the connected socket `fd` is connected to itself: a dial to a port in the kernel's
// ephemeral range (net.ipv4.ip_local_port_range) on this host, while nothing listens there, can be
// given that very port as its own and meet itself (TCP's simultaneous open).
bool connected_to_itself(int fd);

// The kernel's range of ports for outgoing connections (net.ipv4.ip_local_port_range); false when
// it cannot be read.
bool ephemeral_port_range(uint16_t* low, uint16_t* high);

// Closes `fd` with a reset instead of a FIN (SO_LINGER 0): it leaves no TIME-WAIT behind, which for
// a socket connected to itself would hold the port against the listener that is meant to have it.
void close_with_reset(int fd);

void set_nodelay(int fd);

// TCP keepalive on `fd`: after `idle_s` seconds without traffic, a probe every `interval_s` seconds;
// `count` unanswered probes end the connection (a neighbour that vanished without a FIN or RST is
// noticed in idle_s + interval_s * count seconds instead of never).
void set_keepalive(int fd, int idle_s, int interval_s, int count);

// TCP_USER_TIMEOUT on `fd`: data sent and not acknowledged for `ms` milliseconds ends the connection
// (ETIMEDOUT), as does keepalive failing for that long. Keepalive covers only an idle connection: while
// data is in flight the kernel retransmits instead, for net.ipv4.tcp_retries2 (about 15 minutes).
void set_user_timeout(int fd, unsigned ms);

// The IP address of `addr` as text, without the port; an IPv4-mapped IPv6 address is given as IPv4.
std::string ip_of(const SocketAddress& addr);

// Every address `host` resolves to, in getaddrinfo's order; false with *error when none. Blocking:
// for start-up, and for the Resolver's worker thread (reactor/resolver.h), never on a loop.
bool resolve_all(const std::string& host, uint16_t port, std::vector<SocketAddress>* out, std::string* error);

// Bytes written to `fd` that the peer has not acknowledged yet (SIOCOUTQ), or -1. A count that
// shrinks means the peer is reading.
int64_t unacked_bytes(int fd);

// Raises the open-file limit to the hard limit; returns the new soft limit.
uint64_t raise_fd_limit();

}  // namespace reactor
