// The peer links' TLS identity: loads peer_tls (the herd CA, this server's certificate and key) into
// one TlsContext that both accepts on the peer port (demanding a client certificate from the CA) and
// dials the neighbours (presenting the same certificate), and checks that the certificate names this
// server. Any thread; no state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "herd/config.h"
#include "reactor/tls_context.h"

namespace herd {

// The context for server `name`, or nullptr with *error naming the config file, the key, its value
// and the reason (an unreadable file, a key that does not match the certificate, a certificate that
// does not name the server). config.peer_tls must be set.
std::unique_ptr<reactor::TlsContext> load_peer_tls(const Config& config, const std::string& name,
                                                   std::string* error);

// The start-up warning for a herd without peer_tls (empty when peer_tls is set).
std::string plaintext_peer_warning(const Config& config);

// "a, b, c" for a log line (each name once).
std::string join_names(const std::vector<std::string>& names);

}  // namespace herd
