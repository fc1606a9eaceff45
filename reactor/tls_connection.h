// TlsConnection: a TLS stream (OpenSSL, non-blocking) over a connected TCP socket, owned by one
// EventLoop, with the same contract as TcpConnection: reads go through a per-thread scratch area and
// only unconsumed plaintext is kept, writes are tried at once and buffered only when the kernel
// pushes back, EPOLLOUT is armed only while bytes remain, and the handler can stop reading
// (backpressure).
//
// OpenSSL reads straight from the socket but writes its records into this connection's output
// buffer, which the connection hands to the kernel itself: OpenSSL never sees a write block. That
// keeps a record half-taken by the kernel out of OpenSSL's state, which OpenSSL 3.0 cannot combine
// with a TLS 1.3 KeyUpdate arriving meanwhile (it fails the connection with "bad length").
//
// The handshake runs first (client or server role) under a timeout; on_established tells the handler
// once it completed and the peer's certificate was verified. OpenSSL's "want read"/"want write" are
// followed in both directions (records a read produces, such as a KeyUpdate answer or an alert, are
// flushed like any output; a write that must first read waits for the socket). close_when_flushed
// sends close_notify after the last byte; a close_notify (or the plain end of the TCP stream) from
// the peer is on_eof. Renegotiation is refused (TlsContext). Failures become on_closed(reason) with
// OpenSSL's reason text; nothing here throws.
//
// Threads and lifetime: as for every Connection (reactor/connection.h); the TlsContext outlives it.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/buffer.h"
#include "reactor/connection.h"
#include "reactor/tls_context.h"

namespace reactor {

class TlsConnection final : public Connection {
 public:
  enum class Role { kClient, kServer };
  static constexpr EventLoop::Millis kDefaultHandshakeTimeout{10000};

  // Any thread (usually the loop's). Takes ownership of the connected non-blocking `fd`. For
  // kClient, `verify_name` is the name the server's certificate must carry (host name verification;
  // an IP literal is matched against the certificate's IP entries; a DNS name is also sent as SNI);
  // empty means "any certificate the CAs vouch for". For kServer it is ignored. Nothing happens until
  // start(). send() before the handshake completes is buffered and written after it. A handshake that
  // fails or does not finish within `handshake_timeout` closes the connection with a reason such as
  // "TLS handshake failed: certificate verify failed (unable to get local issuer certificate)".
  TlsConnection(EventLoop& loop, int fd, ConnectionHandler& handler, const TlsContext& context,
                Role role, std::string verify_name,
                EventLoop::Millis handshake_timeout = kDefaultHandshakeTimeout);
  ~TlsConnection() override;
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  // Loop thread, as every method below.
  void start() override;
  void send(std::string_view bytes) override;
  // Plaintext waiting for the handshake, plus the TLS records not yet taken by the kernel (the
  // plaintext they carry and a few bytes of framing per record): zero exactly when all is written.
  size_t pending_output() const override { return plain_.size() + out_.size(); }
  void set_reading(bool on) override;
  bool reading() const override { return want_read_; }
  void redispatch() override;
  void close_when_flushed(std::string_view reason) override;
  void close(std::string_view reason) override;
  bool is_open() const override { return fd_ >= 0; }
  bool eof() const override { return eof_; }
  bool eof_confirmed() const override { return close_notify_received_; }
  bool more_input_may_wait() const override { return more_may_wait_; }
  int fd() const override { return fd_; }
  EventLoop& loop() override { return loop_; }

  void on_events(uint32_t events) override;

  Role role() const { return role_; }
  bool established() const { return established_; }
  // After on_established: subjectAltName DNS entries then the subject CN of the verified peer
  // certificate (empty when the peer sent none).
  const std::vector<std::string>& peer_names() const { return peer_names_; }
  // Any of peer_names() equals `name` exactly (byte comparison, no wildcards).
  bool peer_has_name(std::string_view name) const;
  // After on_established: the negotiated protocol ("TLSv1.3") and cipher, for logs.
  std::string_view protocol() const;
  std::string_view cipher() const;
  // The OpenSSL object (after start()), for diagnostics and tests; the connection keeps driving it.
  SSL* native() const { return ssl_; }

 private:
  void handle_events(uint32_t events);  // on_events, which catches std::bad_alloc
  // OpenSSL's I/O (a BIO of our own): reads come from the socket, writes go to out_, never blocking.
  static int bio_read(BIO* bio, char* data, int len);
  static int bio_write(BIO* bio, const char* data, int len);
  static long bio_ctrl(BIO* bio, int cmd, long num, void* ptr);
  static const BIO_METHOD* bio_method();

  bool setup(std::string* error);
  void step_handshake();
  void finish_handshake();
  void handle_read();
  void handle_write();
  // send() without its catch: encrypts or keeps `bytes`; may throw std::bad_alloc.
  void send_or_keep(std::string_view bytes);
  // Fails the connection with `reason` at the end of the iteration (from inside a call that must
  // not re-enter the handler); the first reason wins.
  void fail_later(std::string reason);
  // Encrypts plain_ into out_ (after the handshake). False with *error when OpenSSL failed.
  bool encrypt_pending(std::string* error);
  // Hands out_ to the kernel (at most `budget` bytes). False with *error on a socket error.
  bool flush(size_t budget, std::string* error);
  void begin_shutdown();
  // Closes with `reason`; `flushed` when everything to be sent (a close_notify, or a failed
  // handshake's alert) reached the kernel: then the socket ends through the loop's lingering close.
  void end(std::string_view reason, bool flushed);
  void dispatch_input();
  void deliver_eof();
  void schedule_pump();
  void pump();
  void update_interest();
  // The reason for a failed SSL call (`result` and SSL_get_error's `code`), from the error queue.
  std::string describe(int code, int result);

  EventLoop& loop_;
  int fd_;
  ConnectionHandler& handler_;
  const TlsContext& context_;
  const Role role_;
  const std::string verify_name_;
  const EventLoop::Millis handshake_timeout_;
  SSL* ssl_ = nullptr;
  Buffer in_;     // unconsumed plaintext input
  Buffer plain_;  // plaintext not yet encrypted (sent before the handshake completed)
  Buffer out_;    // TLS records not yet taken by the kernel
  std::vector<std::string> peer_names_;
  EventLoop::TimerId handshake_timer_ = 0;
  uint32_t interest_ = 0;            // events registered with epoll
  bool registered_ = false;
  bool hello_started_ = false;       // SSL_do_handshake ran at least once
  bool established_ = false;
  bool want_read_ = true;
  bool eof_ = false;                 // on_eof delivered
  bool peer_closed_ = false;         // close_notify or end of stream read, maybe not yet delivered
  bool transport_eof_ = false;       // the socket's read returned 0 (set by bio_read)
  // The end came with a close_notify: OpenSSL (SSL_OP_IGNORE_UNEXPECTED_EOF) reports a bare FIN the
  // same way, but reads no further than the record it needs, so a close_notify is processed before
  // the FIN behind it is read: the end is confirmed when the socket had not ended yet.
  bool close_notify_received_ = false;
  bool read_wants_write_ = false;    // SSL_read asked for a writable socket
  // The latest handle_read stopped before the socket ran dry (its chunk filled, or SSL_read asked to
  // write first), or OpenSSL holds bytes it read and has not delivered (decrypted plaintext, or part
  // of a record): more input may wait behind what on_data was offered.
  bool more_may_wait_ = false;
  bool write_wants_read_ = false;    // SSL_write asked for a readable socket
  bool close_when_flushed_ = false;
  bool close_notify_queued_ = false; // SSL_shutdown ran: close once out_ is flushed
  bool pump_queued_ = false;
  bool write_failed_ = false;
  bool bio_out_of_memory_ = false;   // bio_write could not keep OpenSSL's output
  std::string close_reason_;
};

}  // namespace reactor
