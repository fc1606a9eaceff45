// The peer links' transport. Their TLS identity: loads peer_tls (the herd CA, this server's certificate
// and key) into one TlsContext that both accepts on the peer port (demanding a client certificate from
// the CA) and dials the neighbours (presenting the same certificate), and checks that the certificate
// names this server. And the connection both ends of a link make of their socket (open_peer_connection).
// Any thread; no state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "herd/config.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/tls_connection.h"
#include "reactor/tls_context.h"

namespace herd {

// The context for server `name`, or nullptr with *error naming the config file, the key, its value
// and the reason (an unreadable file, a key that does not match the certificate, a certificate that
// does not name the server, or one the neighbours would refuse: expired, not yet valid, not signed by
// a CA in ca_file, or without serverAuth or clientAuth). config.peer_tls must be set.
std::unique_ptr<reactor::TlsContext> load_peer_tls(const Config& config, const std::string& name,
                                                   std::string* error);

// Peer connections, both ways, end when the neighbour stops answering for limits.peer_timeout_ms (a
// minute by default): TCP keepalive after half of it without traffic (then kPeerKeepaliveCount probes
// over the rest), and TCP_USER_TIMEOUT for bytes sent and not acknowledged, so a neighbour behind a path
// that went dark is noticed whether or not records are in flight to it.
constexpr int kPeerKeepaliveCount = 3;
// Peer TLS handshakes that take longer than this are abandoned (the link redials with backoff).
constexpr reactor::EventLoop::Millis kPeerHandshakeTimeout{10000};

// The connection over a peer socket `fd`, on either end (kClient: a link that dialled the neighbour
// `peer`, whose certificate must name it; kServer: the peer port, which demands a certificate from the
// herd CA), with keepalive and the user timeout of `timeout_ms` (limits.peer_timeout_ms): TLS with
// `tls`, or plain TCP when `tls` is null. Not started.
std::unique_ptr<reactor::Connection> open_peer_connection(reactor::EventLoop& loop, int fd,
                                                          reactor::ConnectionHandler& handler,
                                                          const reactor::TlsContext* tls,
                                                          reactor::TlsConnection::Role role,
                                                          const std::string& peer, int64_t timeout_ms);

// The start-up warning for a herd without peer_tls (empty when peer_tls is set).
std::string plaintext_peer_warning(const Config& config);

// "a, b, c" for a log line (each name once).
std::string join_names(const std::vector<std::string>& names);

}  // namespace herd
