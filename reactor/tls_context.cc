// TlsContext implementation: building the SSL_CTX, loading and checking the files, certificate names.
#include "reactor/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace reactor {
namespace {

// Identifies the herd's server sessions (OpenSSL wants one when it verifies client certificates).
constexpr unsigned char kSessionIdContext[] = "herd";

// Whether `path` can be opened for reading; *error names the file and the system's reason if not.
bool readable(const std::string& path, const char* what, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error = path + ": cannot read the " + what + ": " + std::strerror(errno);
    return false;
  }
  std::fclose(f);
  return true;
}

std::string asn1_text(const ASN1_STRING* s) {
  if (!s) return {};
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

// "Nov 28 04:54:25 2026 GMT" for an ASN1 time.
std::string time_text(const ASN1_TIME* t) {
  std::string text;
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return text;
  if (t && ASN1_TIME_print(bio, t) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) text.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return text;
}

}  // namespace

std::string take_tls_errors(std::string_view fallback) {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    std::string part = reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
    // The same reason is often queued several times on its way up the stack.
    if (text.find(part) != std::string::npos) continue;
    if (!text.empty()) text += "; ";
    text += part;
  }
  return text.empty() ? std::string(fallback) : text;
}

std::vector<std::string> certificate_names(X509* cert) {
  std::vector<std::string> names;
  if (!cert) return names;
  auto* alt = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (alt) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(alt, i);
      if (g->type == GEN_DNS) names.push_back(asn1_text(g->d.dNSName));
    }
    GENERAL_NAMES_free(alt);
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = -1; subject && (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
    names.push_back(asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i))));
  }
  return names;
}

TlsContext::TlsContext(SSL_CTX* ctx, bool require_peer_certificate)
    : ctx_(ctx), require_peer_certificate_(require_peer_certificate) {}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<TlsContext> TlsContext::create(const Options& options, std::string* error) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_method());
  if (!raw) {
    *error = "cannot create a TLS context: " + take_tls_errors("out of memory");
    return nullptr;
  }
  std::unique_ptr<TlsContext> ctx(new TlsContext(raw, options.require_peer_certificate));

  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  // No renegotiation; a TCP end without close_notify reads as an ordinary end of stream (the
  // interface's on_eof): the line-based protocols above frame their messages themselves, and a
  // message the end delimits (an HTTP body) asks Connection::eof_confirmed whether it is whole.
  SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // SSL_write returns after each record (partial writes), may be retried from a buffer that moved
  // (our output buffer compacts), and idle connections give their record buffers back. The chain sent
  // is the certificate file's own (leaf plus any intermediates), not one completed from the trust
  // store: the peer has the root already.
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  // Connections never resume sessions: no server cache and no TLS 1.3 tickets to compute.
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(raw, 0);
  SSL_CTX_set_session_id_context(raw, kSessionIdContext, sizeof kSessionIdContext - 1);
  int verify = SSL_VERIFY_PEER;
  if (options.require_peer_certificate) verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(raw, verify, nullptr);

  if (options.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(raw) != 1) {
      *error = "cannot load the system's trusted CAs: " + take_tls_errors("unknown error");
      return nullptr;
    }
  } else {
    if (!readable(options.ca_file, "CA file", error)) return nullptr;
    if (SSL_CTX_load_verify_locations(raw, options.ca_file.c_str(), nullptr) != 1) {
      *error = options.ca_file + ": not a PEM CA bundle: " + take_tls_errors("no certificate found");
      return nullptr;
    }
    if (options.require_peer_certificate) {
      // Tells clients which CAs their certificate must come from.
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str());
      if (names) SSL_CTX_set_client_CA_list(raw, names);
      ERR_clear_error();
    }
  }

  if (options.cert_file.empty() != options.key_file.empty()) {
    *error = options.cert_file.empty() ? options.key_file + ": a private key without a certificate"
                                       : options.cert_file + ": a certificate without a private key";
    return nullptr;
  }
  if (!options.cert_file.empty()) {
    if (!readable(options.cert_file, "certificate", error)) return nullptr;
    if (!readable(options.key_file, "private key", error)) return nullptr;
    if (SSL_CTX_use_certificate_chain_file(raw, options.cert_file.c_str()) != 1) {
      *error = options.cert_file + ": not a PEM certificate: " + take_tls_errors("no certificate found");
      return nullptr;
    }
    // OpenSSL checks the key against the certificate while loading it (a key of another type, or
    // of the same type with other values, fails there) and again in SSL_CTX_check_private_key.
    std::string mismatch = options.key_file + ": the private key does not match the certificate " +
                           options.cert_file;
    if (SSL_CTX_use_PrivateKey_file(raw, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      std::string why = take_tls_errors("no private key found");
      bool is_mismatch = why.find("mismatch") != std::string::npos;
      *error = is_mismatch ? mismatch + ": " + why : options.key_file + ": not a PEM private key: " + why;
      return nullptr;
    }
    if (SSL_CTX_check_private_key(raw) != 1) {
      *error = mismatch + ": " + take_tls_errors("key values mismatch");
      return nullptr;
    }
    ctx->has_cert_ = true;
    ctx->own_names_ = certificate_names(SSL_CTX_get0_certificate(raw));
  }
  ERR_clear_error();
  return ctx;
}

std::string TlsContext::own_certificate_problem(bool as_server) const {
  X509* cert = SSL_CTX_get0_certificate(ctx_);
  if (!cert) return {};
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx_, &chain);
  X509_STORE_CTX* check = X509_STORE_CTX_new();
  if (!check || X509_STORE_CTX_init(check, SSL_CTX_get_cert_store(ctx_), cert, chain) != 1) {
    X509_STORE_CTX_free(check);
    return "cannot check the certificate: " + take_tls_errors("out of memory");
  }
  X509_STORE_CTX_set_purpose(check, as_server ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT);
  int verified = X509_verify_cert(check);
  int code = X509_STORE_CTX_get_error(check);
  X509* culprit = X509_STORE_CTX_get_current_cert(check);
  std::string problem;
  if (verified != 1) {
    std::string whose = culprit && culprit != cert ? "a certificate of its chain" : "the certificate";
    switch (code) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
        problem = whose + " expired on " + time_text(X509_get0_notAfter(culprit ? culprit : cert));
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        problem = whose + " is not valid before " + time_text(X509_get0_notBefore(culprit ? culprit : cert));
        break;
      case X509_V_ERR_INVALID_PURPOSE:
        problem = std::string("the certificate cannot ") +
                  (as_server ? "accept TLS connections (its extendedKeyUsage lacks serverAuth)"
                             : "dial TLS connections (its extendedKeyUsage lacks clientAuth)");
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        problem = std::string("the certificate is not signed by a trusted CA (") +
                  X509_verify_cert_error_string(code) + ")";
        break;
      default:
        problem = std::string("the certificate does not verify: ") + X509_verify_cert_error_string(code);
    }
  }
  X509_STORE_CTX_free(check);
  ERR_clear_error();
  return problem;
}

}  // namespace reactor
