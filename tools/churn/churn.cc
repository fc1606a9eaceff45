// herd-churn: connection churn against one herd server, for comparing accept strategies (issue 11).
// Each of --threads threads, until --duration has passed, repeats: connect (blocking), send one
// IAMAT, read its reply line, check it is an AT line, close. It reports the connections completed
// per second and the distribution of their whole time (connect to reply), its errors, and its own
// CPU. Loopback targets only (an IPv4 or IPv6 literal); bounded by --duration and a per-connection
// receive timeout.
//
// Threads: the workers share nothing but an atomic stop flag; each keeps its own samples and they
// are merged after join.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "reactor/host_text.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxThreads = 256;
constexpr double kMaxDurationS = 600;
constexpr int kReplyTimeoutS = 5;  // a reply not in by then counts as an error
constexpr size_t kMaxReply = 4096;  // an IAMAT's reply is one AT line, far shorter

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 4;
  double duration_s = 5;
  bool json = false;
};

struct Worker {
  std::vector<uint32_t> micros;  // per completed connection: connect to reply
  uint64_t connect_errors = 0, reply_errors = 0, bad_replies = 0;
};

bool parse_target(const std::string& text, Options* o) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  o->host = std::string(reactor::unbracket_host(std::string_view(text).substr(0, colon)));
  o->port = std::atoi(text.c_str() + colon + 1);
  return o->port > 0 && o->port < 65536;
}

void usage() {
  std::fprintf(stderr,
               "usage: herd-churn --target HOST:PORT [--threads N] [--duration S] [--json]\n"
               "  each thread repeats connect, one IAMAT, its reply, close for S seconds (default 5;\n"
               "  N default 4); reports connections/s and connect-to-reply time percentiles\n");
}

void run(const sockaddr_storage& addr, socklen_t len, int index, Clock::time_point end,
         Worker* w) {
  char buf[kMaxReply];
  uint64_t k = 0;
  while (Clock::now() < end) {
    const auto t0 = Clock::now();
    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ++w->connect_errors;
      continue;
    }
    timeval tv{kReplyTimeoutS, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
      ++w->connect_errors;
      ::close(fd);
      continue;
    }
    char line[128];
    int n = std::snprintf(line, sizeof line, "IAMAT churn%d-%llu +34.068930-118.445127 1600000000.%llu\n",
                          index, static_cast<unsigned long long>(k), static_cast<unsigned long long>(k % 1000));
    ++k;
    if (::send(fd, line, static_cast<size_t>(n), MSG_NOSIGNAL) != n) {
      ++w->reply_errors;
      ::close(fd);
      continue;
    }
    size_t got = 0;
    bool whole = false;
    while (got < sizeof buf) {
      ssize_t r = ::recv(fd, buf + got, sizeof buf - got, 0);
      if (r <= 0) break;
      got += static_cast<size_t>(r);
      if (std::memchr(buf, '\n', got)) {
        whole = true;
        break;
      }
    }
    ::close(fd);
    if (!whole) {
      ++w->reply_errors;
      continue;
    }
    if (got < 3 || std::memcmp(buf, "AT ", 3) != 0) {
      ++w->bad_replies;
      continue;
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
    w->micros.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
  }
}

double percentile_ms(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)] / 1000.0;
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool have_target = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--target") {
      if (!parse_target(value(), &o)) {
        std::fprintf(stderr, "herd-churn: --target wants HOST:PORT\n");
        return 2;
      }
      have_target = true;
    } else if (a == "--threads") {
      o.threads = std::atoi(value().c_str());
    } else if (a == "--duration") {
      o.duration_s = std::atof(value().c_str());
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--help") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (!have_target || o.threads < 1 || o.threads > kMaxThreads || !(o.duration_s > 0) ||
      o.duration_s > kMaxDurationS) {
    usage();
    return 2;
  }
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (::inet_pton(AF_INET, o.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(o.port));
    len = sizeof *v4;
    if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) {
      std::fprintf(stderr, "herd-churn: loopback targets only\n");
      return 2;
    }
  } else if (::inet_pton(AF_INET6, o.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(o.port));
    len = sizeof *v6;
    if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
      std::fprintf(stderr, "herd-churn: loopback targets only\n");
      return 2;
    }
  } else {
    std::fprintf(stderr, "herd-churn: %s is not an IP literal\n", o.host.c_str());
    return 2;
  }

  std::vector<Worker> workers(static_cast<size_t>(o.threads));
  std::vector<std::thread> pool;
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
  for (int t = 0; t < o.threads; ++t) {
    pool.emplace_back([&, t] { run(addr, len, t, end, &workers[static_cast<size_t>(t)]); });
  }
  for (auto& t : pool) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu0;

  std::vector<uint32_t> all;
  uint64_t connect_errors = 0, reply_errors = 0, bad = 0;
  for (auto& w : workers) {
    all.insert(all.end(), w.micros.begin(), w.micros.end());
    connect_errors += w.connect_errors;
    reply_errors += w.reply_errors;
    bad += w.bad_replies;
  }
  std::sort(all.begin(), all.end());
  const double rate = static_cast<double>(all.size()) / elapsed;
  const double p50 = percentile_ms(all, 0.5), p90 = percentile_ms(all, 0.9), p99 = percentile_ms(all, 0.99),
               p999 = percentile_ms(all, 0.999), max = all.empty() ? 0 : all.back() / 1000.0;
  if (o.json) {
    std::printf(
        "{\"connections\": %zu, \"seconds\": %.3f, \"per_s\": %.1f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
        "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, \"connect_errors\": %llu, \"reply_errors\": %llu, "
        "\"bad_replies\": %llu, \"cpu_s\": %.3f, \"threads\": %d}\n",
        all.size(), elapsed, rate, p50, p90, p99, p999, max, static_cast<unsigned long long>(connect_errors),
        static_cast<unsigned long long>(reply_errors), static_cast<unsigned long long>(bad), cpu, o.threads);
  } else {
    std::printf("%zu connections in %.2f s: %.0f/s; connect-to-reply p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f ms\n",
                all.size(), elapsed, rate, p50, p90, p99, p999, max);
    std::printf("errors: connect %llu, reply %llu, bad reply %llu; own CPU %.2f s (%d threads)\n",
                static_cast<unsigned long long>(connect_errors), static_cast<unsigned long long>(reply_errors),
                static_cast<unsigned long long>(bad), cpu, o.threads);
  }
  return all.empty() || bad > 0 ? 1 : 0;
}
