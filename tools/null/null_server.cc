// herd-null: the benchmark's floor and ceiling. A do-nothing multi-threaded epoll TCP server that
// answers every complete "\n"-terminated line with one fixed line. Each thread owns its own epoll
// and its own SO_REUSEPORT listener on 127.0.0.1:PORT; sockets are level-triggered and
// non-blocking; one read and one write per readiness event; EPOLLOUT only while output remains.
//
//   herd-null --port P [--threads N] [--reply LINE]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kChunkLines = 1024;  // replies in the precomputed chunk
constexpr int kMaxIov = 1024;
constexpr size_t kMaxPending = 64 * 1024 * 1024;  // output bound per connection

// One accepted client socket. Only the count of complete lines matters to a server whose reply
// is fixed, so a partial line needs no bytes kept: its newline, when it comes, completes it.
struct Conn {
  int fd_ = -1;
  std::string pending_;  // reply bytes not yet written
  size_t pending_off_ = 0;
  bool reading_ = true;   // false while output is pending (EPOLLOUT registered instead)
};

// Marker pointers for the two non-connection fds in each epoll set.
char listener_tag;
char wake_tag;

void die(const char* what) {
  std::fprintf(stderr, "herd-null: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int open_listener(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) die("SO_REUSEPORT");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind");
  if (listen(fd, 4096) < 0) die("listen");
  return fd;
}

// One event-loop thread with its own listener and epoll set.
class Worker {
 public:
  Worker(int port, int wake_fd, const std::string& reply) : wake_fd_(wake_fd) {
    listen_fd_ = open_listener(port);
    chunk_.reserve(reply.size() * kChunkLines);
    for (size_t i = 0; i < kChunkLines; ++i) chunk_ += reply;
    reply_size_ = reply.size();
    buf_.resize(kReadSize);
  }

  void run(const std::atomic<bool>& stop) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) die("epoll_create1");
    add(listen_fd_, EPOLLIN, &listener_tag);
    add(wake_fd_, EPOLLIN, &wake_tag);
    epoll_event events[256];
    while (!stop.load(std::memory_order_relaxed)) {
      int n = epoll_wait(epfd_, events, 256, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        void* ptr = events[i].data.ptr;
        if (ptr == &listener_tag) {
          accept_all();
        } else if (ptr == &wake_tag) {
          // stop is set; the loop condition ends the thread
        } else {
          handle(static_cast<Conn*>(ptr), events[i].events);
        }
      }
    }
    close(listen_fd_);
    close(epfd_);
  }

 private:
  void add(int fd, uint32_t ev, void* ptr) {
    epoll_event e{};
    e.events = ev;
    e.data.ptr = ptr;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl add");
  }

  void modify(Conn* c, uint32_t ev) {
    epoll_event e{};
    e.events = ev;
    e.data.ptr = c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd_, &e);
  }

  void accept_all() {
    for (int i = 0; i < 64; ++i) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or a transient error (EMFILE, ECONNABORTED): try later
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      Conn* c = new Conn;
      c->fd_ = fd;
      add(fd, EPOLLIN | EPOLLRDHUP, c);
    }
  }

  void close_conn(Conn* c) {
    close(c->fd_);  // also removes it from the epoll set
    delete c;
  }

  void handle(Conn* c, uint32_t ev) {
    if (!c->reading_) {
      if (ev & (EPOLLERR | EPOLLHUP)) return close_conn(c);
      if (!flush(c)) return close_conn(c);
      if (c->pending_off_ == c->pending_.size()) {
        c->pending_.clear();
        c->pending_off_ = 0;
        c->reading_ = true;
        modify(c, EPOLLIN | EPOLLRDHUP);
      }
      return;
    }
    ssize_t r = read(c->fd_, buf_.data(), buf_.size());
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return close_conn(c);
    }
    if (r == 0) return close_conn(c);  // nothing pending while reading_: a clean close
    size_t lines = static_cast<size_t>(std::count(buf_.data(), buf_.data() + r, '\n'));
    if (lines > 0 && !reply(c, lines)) return close_conn(c);
  }

  // Writes `lines` replies with one writev over the precomputed chunk; keeps any remainder.
  bool reply(Conn* c, size_t lines) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t total = 0;
    size_t left = lines;
    while (left > 0 && n < kMaxIov) {
      size_t take = std::min(left, kChunkLines);
      iov[n].iov_base = chunk_.data();
      iov[n].iov_len = take * reply_size_;
      total += iov[n].iov_len;
      left -= take;
      ++n;
    }
    ssize_t w = writev(c->fd_, iov, n);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) return false;
      w = 0;
    }
    size_t written = static_cast<size_t>(w);
    if (written == total && left == 0) return true;
    // Keep the unwritten rest (very rare: the socket buffer is full) and wait for EPOLLOUT.
    size_t rest_bytes = (total - written) + left * reply_size_;
    if (rest_bytes > kMaxPending) return false;
    size_t skip = written % chunk_.size();
    c->pending_.reserve(rest_bytes);
    size_t need = rest_bytes;
    c->pending_.append(chunk_, skip, std::min(need, chunk_.size() - skip));
    need -= std::min(need, chunk_.size() - skip);
    while (need > 0) {
      size_t take = std::min(need, chunk_.size());
      c->pending_.append(chunk_, 0, take);
      need -= take;
    }
    c->reading_ = false;
    modify(c, EPOLLOUT);
    return true;
  }

  bool flush(Conn* c) {
    while (c->pending_off_ < c->pending_.size()) {
      ssize_t w = write(c->fd_, c->pending_.data() + c->pending_off_,
                        c->pending_.size() - c->pending_off_);
      if (w < 0) return errno == EAGAIN || errno == EINTR;
      c->pending_off_ += static_cast<size_t>(w);
    }
    return true;
  }

  int listen_fd_ = -1;
  int epfd_ = -1;
  int wake_fd_;
  std::string chunk_;
  size_t reply_size_ = 0;
  std::vector<char> buf_;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: herd-null --port P [--threads N] [--reply LINE]\n"
               "  --port P      TCP port on 127.0.0.1 (required)\n"
               "  --threads N   event-loop threads, each with its own SO_REUSEPORT listener\n"
               "                (default: number of cores)\n"
               "  --reply LINE  the fixed line sent for every line received (a newline is added)\n"
               "                (default: \"AT null +0.000000000 x +0.0+0.0 0\")\n");
  std::exit(code);
}

int parse_int(std::string_view flag, const char* s, int lo, int hi) {
  int v = 0;
  auto [p, ec] = std::from_chars(s, s + std::strlen(s), v);
  if (ec != std::errc() || *p != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "herd-null: %.*s needs an integer in %d..%d, got \"%s\"\n",
                 static_cast<int>(flag.size()), flag.data(), lo, hi, s);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int port = -1;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  std::string reply = "AT null +0.000000000 x +0.0+0.0 0";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") usage(0);
    if (i + 1 >= argc) {
      std::fprintf(stderr, "herd-null: unknown flag or missing value: %s\n", argv[i]);
      usage(2);
    }
    if (a == "--port") {
      port = parse_int(a, argv[++i], 1, 65535);
    } else if (a == "--threads") {
      threads = parse_int(a, argv[++i], 1, 1024);
    } else if (a == "--reply") {
      reply = argv[++i];
    } else {
      std::fprintf(stderr, "herd-null: unknown flag: %s\n", argv[i]);
      usage(2);
    }
  }
  if (port < 0) {
    std::fprintf(stderr, "herd-null: --port is required\n");
    usage(2);
  }
  if (reply.find('\n') != std::string::npos) {
    std::fprintf(stderr, "herd-null: --reply must be one line\n");
    return 2;
  }
  reply += '\n';

  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by the workers; main waits for them

  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) die("eventfd");
  std::atomic<bool> stop{false};
  std::vector<Worker*> workers;
  for (int i = 0; i < threads; ++i) workers.push_back(new Worker(port, wake_fd, reply));
  std::vector<std::thread> pool;
  for (Worker* w : workers) pool.emplace_back([w, &stop] { w->run(stop); });
  std::fprintf(stderr, "herd-null: listening on 127.0.0.1:%d with %d threads\n", port, threads);

  int sig = 0;
  sigwait(&set, &sig);
  stop.store(true);
  uint64_t one = 1;
  if (write(wake_fd, &one, sizeof one) < 0) die("eventfd write");  // level-triggered: wakes all
  for (auto& t : pool) t.join();
  for (Worker* w : workers) delete w;
  close(wake_fd);
  return 0;
}
