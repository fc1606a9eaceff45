// TlsContext: one OpenSSL SSL_CTX carrying the herd's TLS settings (TLS 1.2 minimum, renegotiation
// refused, certificate verification always on) and, optionally, the process's own identity (a
// certificate chain and its key). Also the helpers that read names out of a certificate and turn
// OpenSSL's per-thread error queue into text.
//
// Threads: create() on any thread (usually at start-up); afterwards the context is immutable and
// shared by every loop (SSL_new on an SSL_CTX is thread-safe). It must outlive every TlsConnection
// made from it.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reactor {

class TlsContext {
 public:
  struct Options {
    std::string ca_file;    // PEM bundle of trusted CAs; empty = the system store (client side)
    std::string cert_file;  // own certificate chain (PEM); empty = none (plain client)
    std::string key_file;   // own private key (PEM)
    bool require_peer_certificate = false;  // server side: demand and verify a client certificate
  };

  // Any thread. nullptr with *error naming the file and OpenSSL's reason (unreadable CA, cert/key
  // mismatch ...). A key_file without a cert_file (or the reverse) is an error too.
  static std::unique_ptr<TlsContext> create(const Options& options, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Any thread.
  SSL_CTX* native() const { return ctx_; }
  bool require_peer_certificate() const { return require_peer_certificate_; }
  bool has_identity() const { return has_cert_; }
  // The names (subjectAltName DNS entries, then the subject CN) of the context's own certificate;
  // empty without one.
  std::vector<std::string> own_names() const { return own_names_; }
  // Why a peer that trusts what this context trusts would refuse the context's own certificate
  // (with the chain its file carries), verified now for a TLS server (`as_server`) or client: an
  // expired or not yet valid certificate, one that does not chain to the trusted CAs, one whose
  // extendedKeyUsage leaves that role out. Empty when it verifies, or when there is no certificate.
  std::string own_certificate_problem(bool as_server) const;

 private:
  TlsContext(SSL_CTX* ctx, bool require_peer_certificate);

  SSL_CTX* ctx_;
  bool require_peer_certificate_;
  bool has_cert_ = false;
  std::vector<std::string> own_names_;
};

// Any thread: subjectAltName DNS entries, in order, then the subject's common name(s); an empty
// vector for nullptr.
std::vector<std::string> certificate_names(X509* cert);

// Any thread: the calling thread's OpenSSL error queue as text ("reason; reason"), emptied; `fallback`
// when the queue holds nothing.
std::string take_tls_errors(std::string_view fallback);

}  // namespace reactor
