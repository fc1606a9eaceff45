// Loading and checking the peer links' TLS identity; opening their connections.
#include "herd/peer_tls.h"

#include <openssl/x509v3.h>

#include <algorithm>

#include "reactor/socket.h"
#include "reactor/tcp_connection.h"

namespace herd {

std::unique_ptr<reactor::Connection> open_peer_connection(reactor::EventLoop& loop, int fd,
                                                          reactor::ConnectionHandler& handler,
                                                          const reactor::TlsContext* tls,
                                                          reactor::TlsConnection::Role role,
                                                          const std::string& peer, int64_t timeout_ms) {
  const int64_t timeout_s = std::max<int64_t>(timeout_ms / 1000, 1);
  const int idle_s = static_cast<int>(std::max<int64_t>(timeout_s / 2, 1));
  const int interval_s = static_cast<int>(std::max<int64_t>((timeout_s - idle_s) / kPeerKeepaliveCount, 1));
  reactor::set_keepalive(fd, idle_s, interval_s, kPeerKeepaliveCount);
  reactor::set_user_timeout(fd, static_cast<unsigned>(timeout_ms));
  if (tls) return std::make_unique<reactor::TlsConnection>(loop, fd, handler, *tls, role, peer, kPeerHandshakeTimeout);
  return std::make_unique<reactor::TcpConnection>(loop, fd, handler);
}

std::string join_names(const std::vector<std::string>& names) {
  std::vector<std::string> said;  // a name in both the subjectAltName and the CN is said once
  std::string out;
  for (const auto& n : names) {
    if (std::find(said.begin(), said.end(), n) != said.end()) continue;
    said.push_back(n);
    out += (out.empty() ? "" : ", ") + n;
  }
  return out.empty() ? "no name" : out;
}

std::unique_ptr<reactor::TlsContext> load_peer_tls(const Config& config, const std::string& name,
                                                   std::string* error) {
  const PeerTlsConfig& tls = *config.peer_tls;
  struct File {
    const char* key;
    const std::string& value;
    std::string path;
  } files[] = {{"ca_file", tls.ca_file, config.peer_tls_path(tls.ca_file, name)},
               {"cert_file", tls.cert_file, config.peer_tls_path(tls.cert_file, name)},
               {"key_file", tls.key_file, config.peer_tls_path(tls.key_file, name)}};
  auto where = [&](const File& f) {
    std::string text = config.source + ": peer_tls." + f.key + ": '" + f.value + "'";
    if (f.path != f.value) text += " (" + f.path + ")";
    return text;
  };

  std::string why;
  auto ctx = reactor::TlsContext::create({files[0].path, files[1].path, files[2].path, true}, &why);
  if (!ctx) {
    // TlsContext names the file first; name the key that gave it. A mismatch names the key file.
    const File* culprit = &files[2];
    for (const File& f : files) {
      if (why.rfind(f.path + ":", 0) == 0) {
        culprit = &f;
        break;
      }
    }
    std::string reason = why.substr(std::min(why.size(), culprit->path.size() + 2));
    *error = where(*culprit) + ": " + reason;
    return nullptr;
  }
  // The certificate must carry the server's own name exactly: as a subjectAltName DNS entry, or as
  // the CN of a certificate without DNS entries (what a dialling neighbour's host name check wants),
  // and byte for byte among its names (what an accepting neighbour compares with the hello).
  X509* cert = SSL_CTX_get0_certificate(ctx->native());
  std::vector<std::string> names = ctx->own_names();
  bool exact = std::find(names.begin(), names.end(), name) != names.end();
  if (!exact || X509_check_host(cert, name.data(), name.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) != 1) {
    *error = where(files[1]) + ": the certificate names " + join_names(names) + ", not this server " + name +
             " (it needs a subjectAltName DNS:" + name + ")";
    return nullptr;
  }
  // One certificate both accepts on the peer port and dials the neighbours, and the neighbours trust
  // what ca_file holds: a certificate they would refuse (expired, from another CA, without serverAuth
  // or clientAuth) is a configuration error now rather than a herd that never links.
  for (bool as_server : {true, false}) {
    std::string problem = ctx->own_certificate_problem(as_server);
    if (!problem.empty()) {
      *error = where(files[1]) + ": " + problem + "; neighbours that trust peer_tls.ca_file (" + files[0].path +
               ") would refuse it";
      return nullptr;
    }
  }
  return ctx;
}

std::string plaintext_peer_warning(const Config& config) {
  if (config.peer_tls) return "";
  return config.source +
         ": no peer_tls: peer links are plaintext and unauthenticated (anyone who can reach a peer port "
         "can inject locations); see `make certs` and peer_tls in the README";
}

}  // namespace herd
