// Propagation mode: N fresh clients reported to the entry server; each other server is polled
// with "WHATSAT <id> 0.001 1" (one request outstanding per server) until it knows the client.
#include "tools/load/propagation.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tools/load/arg_parse.h"
#include "tools/load/herd_config.h"
#include "tools/load/herd_reply.h"
#include "tools/load/histogram.h"
#include "tools/load/worker.h"
#include "tools/load/workload.h"

namespace herd_load {

namespace {

// One polled server (or the entry) and what was seen of it.
struct Probe {
  const ServerEntry* server = nullptr;
  int hops = -1;
  int fd = -1;
  std::string in;
  bool awaiting = false;  // a request is outstanding
  bool done = false;      // saw the client (or failed) in this round
  Histogram delays;
  Histogram poll_rtt;    // each poll's round trip: the resolution of this server's delays
  int64_t poll_sent = 0;
  uint64_t misses = 0;   // rounds that timed out
  uint64_t polls = 0;
  uint64_t errors = 0;
};

int connect_to(const ServerEntry& s) {
  SocketAddress addr;
  if (!make_address(s.host, s.port, &addr)) return -1;
  int fd = socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, addr.get(), addr.length) < 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(w);
  }
  return true;
}

void reconnect(Probe* p, int epfd) {
  if (p->fd >= 0) close(p->fd);
  p->in.clear();
  p->awaiting = false;
  p->fd = connect_to(*p->server);
  if (p->fd < 0) return;
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.ptr = p;
  epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &e);
}

}  // namespace

int run_propagation(const Options& o) {
  HerdConfig config;
  std::string error;
  if (!load_herd_config(o.config_path, &config, &error)) {
    std::fprintf(stderr, "herd-load: %s\n", error.c_str());
    return 2;
  }
  const std::string& entry_name = o.entries[0];
  if (!config.find(entry_name)) {
    std::fprintf(stderr, "herd-load: --entry %s is not a server of %s\n", entry_name.c_str(), o.config_path.c_str());
    return 2;
  }
  std::map<std::string, int> hops = config.hops_from(entry_name);
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  Probe entry;
  entry.server = config.find(entry_name);
  entry.hops = 0;
  reconnect(&entry, epfd);
  if (entry.fd < 0) {
    std::fprintf(stderr, "herd-load: cannot connect to entry %s at %s:%d\n", entry_name.c_str(),
                 entry.server->host.c_str(), entry.server->port);
    return 1;
  }
  std::vector<Probe> probes(config.servers.size());
  size_t n_probes = 0;
  for (const auto& s : config.servers) {
    if (s.name == entry_name) continue;
    Probe& p = probes[n_probes++];
    p.server = &s;
    p.hops = hops.count(s.name) ? hops[s.name] : -1;
    reconnect(&p, epfd);
    if (p.fd < 0)
      std::fprintf(stderr, "herd-load: cannot connect to %s at %s:%d (it will count as missed)\n",
                   s.name.c_str(), s.host.c_str(), s.port);
  }
  probes.resize(n_probes);
  const int64_t timeout_ns = static_cast<int64_t>(o.timeout * 1e9);
  uint64_t entry_errors = 0;
  std::vector<std::string> samples;
  auto sample = [&](const std::string& s) {
    if (samples.size() < static_cast<size_t>(o.show_errors)) samples.push_back(s);
  };
  const std::string location = "+34.068930-118.445127";
  const uint64_t tag = static_cast<uint64_t>(getpid()) * 1000003u ^ static_cast<uint64_t>(monotonic_ns());
  epoll_event events[64];

  for (int round = 0; round < o.propagation; ++round) {
    const std::string id = "prop" + std::to_string(tag % 100000000) + "-" + std::to_string(round) + ".load";
    char tbuf[32];
    timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    std::string time(tbuf, format_client_time(static_cast<uint64_t>(rt.tv_sec) * 1000000000ull +
                                                  static_cast<uint64_t>(rt.tv_nsec), tbuf));
    const std::string whatsat = "WHATSAT " + id + " 0.001 1\n";
    if (entry.fd < 0) reconnect(&entry, epfd);
    const int64_t t0 = monotonic_ns();
    bool entry_done = entry.fd < 0 || !send_all(entry.fd, "IAMAT " + id + " " + location + " " + time + "\n");
    if (entry_done) ++entry_errors;
    for (auto& p : probes) {
      p.done = false;
      if (p.fd < 0) reconnect(&p, epfd);
      if (p.fd >= 0 && send_all(p.fd, whatsat)) {
        p.awaiting = true;
        p.poll_sent = monotonic_ns();
        ++p.polls;
      }
    }
    for (;;) {
      int64_t now = monotonic_ns();
      bool all = entry_done && std::all_of(probes.begin(), probes.end(), [](const Probe& p) { return p.done; });
      if (all || now - t0 > timeout_ns) break;
      int n = epoll_wait(epfd, events, 64, 10);
      now = monotonic_ns();
      for (int i = 0; i < n; ++i) {
        Probe* p = static_cast<Probe*>(events[i].data.ptr);
        char buf[16384];
        ssize_t r = read(p->fd, buf, sizeof buf);
        if (r <= 0) {
          if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
          sample(p->server->name + ": connection closed");
          ++(p == &entry ? entry_errors : p->errors);
          reconnect(p, epfd);
          if (p == &entry) entry_done = true;
          else p->done = true;
          continue;
        }
        p->in.append(buf, static_cast<size_t>(r));
        for (;;) {
          size_t len = 0;
          if (p == &entry) {
            if (frame_line(p->in, &len) != Frame::kComplete) break;
            bool stale = false;
            ErrorKind err = check_iamat_reply(std::string_view(p->in).substr(0, len), id, location, time,
                                              entry_name, &stale);
            if (err != ErrorKind::kNone) {
              ++entry_errors;
              sample(std::string(error_kind_name(err)) + " from entry " + entry_name + ": " + p->in.substr(0, len));
            }
            entry_done = true;
          } else {
            if (frame_whatsat(p->in, &len) != Frame::kComplete) break;
            p->awaiting = false;
            p->poll_rtt.record(static_cast<uint64_t>(std::max<int64_t>(0, now - p->poll_sent)));
            std::string_view reply = std::string_view(p->in).substr(0, len);
            if (!p->done) {
              if (reply.substr(0, 2) == "? ") {
                if (send_all(p->fd, whatsat)) {
                  p->awaiting = true;
                  p->poll_sent = monotonic_ns();
                  ++p->polls;
                }
              } else {
                WhatsatInfo info;
                ErrorKind err = check_whatsat_reply(reply, id, 1, &info);
                if (err == ErrorKind::kNone) {
                  p->delays.record(static_cast<uint64_t>(now - t0));
                } else {
                  ++p->errors;
                  sample(std::string(error_kind_name(err)) + " from " + p->server->name + ": " +
                         std::string(reply.substr(0, 300)));
                }
                p->done = true;
              }
            }
          }
          p->in.erase(0, len);
        }
      }
    }
    // Servers that never showed the client this round: count a miss; drop any late reply.
    for (auto& p : probes) {
      if (!p.done) ++p.misses;
      if (p.awaiting) reconnect(&p, epfd);
    }
    if (!entry_done) {
      ++entry_errors;
      sample("timeout waiting for the entry's IAMAT reply");
      reconnect(&entry, epfd);
    }
  }
  close(epfd);
  for (auto& p : probes)
    if (p.fd >= 0) close(p.fd);
  if (entry.fd >= 0) close(entry.fd);

  // Aggregate by hop distance.
  std::map<int, Histogram> by_hop;
  std::map<int, uint64_t> hop_misses, hop_servers;
  for (const auto& p : probes) {
    by_hop[p.hops].merge(p.delays);
    hop_misses[p.hops] += p.misses;
    ++hop_servers[p.hops];
  }
  auto ms = [](uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  if (o.json) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("entry");
    w.String(entry_name.c_str());
    w.Key("rounds");
    w.Int(o.propagation);
    w.Key("entry_errors");
    w.Uint64(entry_errors);
    auto figures = [&](const Histogram& h, uint64_t misses) {
      w.Key("seen");
      w.Uint64(h.count());
      w.Key("missed");
      w.Uint64(misses);
      for (auto [k, p] : {std::pair{"p50_ms", 50.0}, {"p90_ms", 90.0}, {"p99_ms", 99.0}, {"p99.9_ms", 99.9}}) {
        w.Key(k);
        w.Double(ms(h.percentile(p)));
      }
      w.Key("max_ms");
      w.Double(ms(h.max()));
    };
    w.Key("by_hops");
    w.StartArray();
    for (const auto& [hop, h] : by_hop) {
      w.StartObject();
      w.Key("hops");
      w.Int(hop);
      w.Key("servers");
      w.Uint64(hop_servers[hop]);
      figures(h, hop_misses[hop]);
      w.EndObject();
    }
    w.EndArray();
    w.Key("servers");
    w.StartArray();
    for (const auto& p : probes) {
      w.StartObject();
      w.Key("name");
      w.String(p.server->name.c_str());
      w.Key("hops");
      w.Int(p.hops);
      w.Key("polls");
      w.Uint64(p.polls);
      w.Key("errors");
      w.Uint64(p.errors);
      w.Key("poll_rtt_p50_ms");
      w.Double(ms(p.poll_rtt.percentile(50)));
      w.Key("poll_rtt_p99_ms");
      w.Double(ms(p.poll_rtt.percentile(99)));
      figures(p.delays, p.misses);
      w.EndObject();
    }
    w.EndArray();
    w.Key("error_samples");
    w.StartArray();
    for (const auto& s : samples) w.String(s.c_str());
    w.EndArray();
    w.EndObject();
    std::printf("%s\n", sb.GetString());
  } else {
    std::printf("herd-load propagation: %d rounds from %s (timeout %.1f s)\n\n", o.propagation,
                entry_name.c_str(), o.timeout);
    std::printf("%-6s %-8s %8s %8s %10s %10s %10s %10s\n", "hops", "servers", "seen", "missed", "p50 ms",
                "p90 ms", "p99 ms", "max ms");
    for (const auto& [hop, h] : by_hop)
      std::printf("%-6d %-8llu %8llu %8llu %10.3f %10.3f %10.3f %10.3f\n", hop,
                  static_cast<unsigned long long>(hop_servers[hop]), static_cast<unsigned long long>(h.count()),
                  static_cast<unsigned long long>(hop_misses[hop]), ms(h.percentile(50)), ms(h.percentile(90)),
                  ms(h.percentile(99)), ms(h.max()));
    std::printf("\n%-12s %-6s %8s %8s %8s %10s %10s %14s\n", "server", "hops", "seen", "missed", "errors", "p50 ms",
                "max ms", "poll rtt p50");
    for (const auto& p : probes)
      std::printf("%-12s %-6d %8llu %8llu %8llu %10.3f %10.3f %11.3f ms\n", p.server->name.c_str(), p.hops,
                  static_cast<unsigned long long>(p.delays.count()), static_cast<unsigned long long>(p.misses),
                  static_cast<unsigned long long>(p.errors), ms(p.delays.percentile(50)), ms(p.delays.max()),
                  ms(p.poll_rtt.percentile(50)));
    std::printf("\nentry IAMAT errors: %llu\n", static_cast<unsigned long long>(entry_errors));
    for (const auto& s : samples) std::printf("  %s\n", s.c_str());
  }
  uint64_t bad = entry_errors;
  for (const auto& p : probes) bad += p.misses + p.errors;
  return bad == 0 ? 0 : 1;
}

}  // namespace herd_load
