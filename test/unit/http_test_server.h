// A scripted HTTP/1.1 server for the unit tests of the HTTP client and the Google providers: it
// listens on 127.0.0.1 (a free port), runs on its own thread with blocking sockets and poll(), reads
// each request (head and Content-Length body) and answers what the test's function says: bytes to
// write, then optionally close, or stall (write nothing more and read nothing more); a function of the
// test's may be told the socket once the bytes are written (to wait until they reached the client).
// With a certificate and key it speaks TLS (blocking OpenSSL, independent of the reactor's TLS
// transport).
//
// Threads: the respond function runs on the server's thread; the counters are atomics; the
// destructor stops the thread and closes every socket.
#pragma once

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace testing_http {

struct Reply {
  std::string bytes;         // written as they are
  bool close_after = false;  // close the connection once written
  bool stall = false;        // then ignore the connection (no reads, no writes) until the end
  bool close_notify = false; // with TLS and close_after: say close_notify first (else a bare FIN)
  std::function<void(int fd)> after_write;  // called with the TCP socket once `bytes` are written
};

// Request `index` (0-based over the whole server) on connection `conn` (0-based), and its bytes.
using Respond = std::function<Reply(int conn, int index, const std::string& request)>;

// "HTTP/1.1 <status>\r\nContent-Length: n\r\n<extra>\r\n<body>".
inline std::string response(const std::string& status, const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 " + status + "\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

class TestServer {
 public:
  explicit TestServer(Respond respond, const std::string& cert_file = "", const std::string& key_file = "")
      : respond_(std::move(respond)) {
    if (!cert_file.empty()) {
      tls_ = SSL_CTX_new(TLS_server_method());
      if (SSL_CTX_use_certificate_chain_file(tls_, cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(tls_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        std::abort();
      }
    }
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0) std::abort();
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    for (auto& c : clients_) drop(c);
    ::close(listen_fd_);
    if (tls_) SSL_CTX_free(tls_);
  }

  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int handshakes_failed() const { return handshakes_failed_.load(); }
  int requests() const { return requests_.load(); }
  // Every request received so far, in order.
  std::vector<std::string> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  struct Client {
    int fd;
    int index;
    std::string in;
    bool stalled = false;
    SSL* ssl = nullptr;
  };

  void drop(Client& c) {
    if (c.ssl) SSL_free(c.ssl);
    c.ssl = nullptr;
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }
  ssize_t read_some(Client& c, char* buf, size_t n) {
    if (!c.ssl) return ::recv(c.fd, buf, n, 0);
    int r = SSL_read(c.ssl, buf, static_cast<int>(n));
    return r > 0 ? r : -1;
  }
  ssize_t write_some(Client& c, const char* buf, size_t n) {
    if (!c.ssl) return ::send(c.fd, buf, n, MSG_NOSIGNAL);
    int r = SSL_write(c.ssl, buf, static_cast<int>(n));
    return r > 0 ? r : -1;
  }

  // A complete request at the front of `in`: its length, or 0.
  static size_t complete_request(const std::string& in) {
    size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) return 0;
    size_t body = 0;
    std::string head = in.substr(0, end);
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t cl = head.find("content-length:");
    if (cl != std::string::npos) body = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
    return in.size() >= end + 4 + body ? end + 4 + body : 0;
  }

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (auto& c : clients_) fds.push_back({c.fd >= 0 && !c.stalled ? c.fd : -1, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          Client c{fd, connections_.fetch_add(1), {}};
          if (tls_) {
            c.ssl = SSL_new(tls_);
            SSL_set_fd(c.ssl, fd);
            if (SSL_accept(c.ssl) != 1) {  // blocking: the client's handshake, or its refusal
              handshakes_failed_.fetch_add(1);
              drop(c);
              continue;
            }
          }
          clients_.push_back(c);
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Client& c = clients_[i - 1];
        char buf[65536];
        ssize_t n = read_some(c, buf, sizeof buf);
        if (n <= 0) {
          drop(c);
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        while (c.fd >= 0 && !c.stalled) {
          size_t len = complete_request(c.in);
          if (len == 0) break;
          std::string request = c.in.substr(0, len);
          c.in.erase(0, len);
          int index = requests_.fetch_add(1);
          {
            std::lock_guard lock(mu_);
            received_.push_back(request);
          }
          Reply r = respond_(c.index, index, request);
          size_t off = 0;
          while (off < r.bytes.size()) {
            ssize_t w = write_some(c, r.bytes.data() + off, r.bytes.size() - off);
            if (w <= 0) break;
            off += static_cast<size_t>(w);
          }
          if (r.after_write) r.after_write(c.fd);
          if (r.close_after) {
            if (r.close_notify && c.ssl) SSL_shutdown(c.ssl);
            drop(c);
          } else if (r.stall) {
            c.stalled = true;
          }
        }
      }
    }
  }

  Respond respond_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> handshakes_failed_{0};
  SSL_CTX* tls_ = nullptr;
  std::vector<Client> clients_;  // server thread only
  std::mutex mu_;
  std::vector<std::string> received_;  // guarded by mu_
};

}  // namespace testing_http
