// Metrics implementation: the histogram and the /metrics page.
#include "herd/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "herd/admin_session.h"
#include "herd/peer_link.h"
#include "herd/server.h"
#include "http/prometheus_text.h"
#include "protocol/location.h"

namespace herd {
namespace {

struct ProcessStats {
  double cpu_seconds = 0;
  uint64_t rss_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;
  uint64_t threads = 0;
};

ProcessStats read_process_stats() {
  ProcessStats p;
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after the last ')'.
  size_t close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in(text.substr(close + 2));
    std::string field[24];
    for (auto& f : field) in >> f;
    // field[0] is the state (stat field 3); utime and stime are fields 14 and 15.
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    try {
      p.cpu_seconds = (std::stod(field[11]) + std::stod(field[12])) / tick;
      p.threads = std::stoull(field[17]);
      p.virtual_bytes = std::stoull(field[20]);
      p.rss_bytes = std::stoull(field[21]) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    } catch (const std::exception&) {
    }
  }
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++p.open_fds;
    }
    ::closedir(d);
    if (p.open_fds) --p.open_fds;  // the directory stream's own descriptor
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = rl.rlim_cur;
  return p;
}

}  // namespace

const char* command_label(CommandKind k) {
  switch (k) {
    case CommandKind::kIamat: return "IAMAT";
    case CommandKind::kWhatsat: return "WHATSAT";
    case CommandKind::kInvalid: return "invalid";
  }
  return "?";
}

const char* result_label(CommandResult r) {
  switch (r) {
    case CommandResult::kOk: return "ok";
    case CommandResult::kStale: return "stale";
    case CommandResult::kUnknownClient: return "unknown_client";
    case CommandResult::kError: return "error";
  }
  return "?";
}

void LatencyHistogram::observe(std::chrono::nanoseconds d, uint64_t times) {
  const double seconds = std::chrono::duration<double>(d).count();
  size_t i = 0;
  while (i < kBuckets && seconds > kBounds[i]) ++i;
  buckets[i].add(times);
  count.add(times);
  sum_ns.add(static_cast<uint64_t>(d.count() < 0 ? 0 : d.count()) * times);
}

void RecentLocations::add(std::string_view client, std::string_view origin, std::string_view location,
                          int64_t unix_ms) {
  const int64_t window = unix_ms / kWindowMs;
  if (window != window_) {
    window_ = window;
    taken_in_window_ = 0;
  }
  if (taken_in_window_ == kSize) return;
  ++taken_in_window_;
  std::lock_guard lock(mu_);
  Entry& e = ring_[next_];
  e.client.assign(client.substr(0, kMaxIdBytes));
  e.origin.assign(origin);
  const protocol::Location where = protocol::parse_location(location).value_or(protocol::Location{});
  e.lat = where.lat;
  e.lng = where.lng;
  e.unix_ms = unix_ms;
  next_ = (next_ + 1) % kSize;
  count_ = std::min(count_ + 1, kSize);
}

void RecentLocations::copy_to(std::vector<Entry>* out) const {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < count_; ++i) out->push_back(ring_[(next_ + kSize - 1 - i) % kSize]);
}

void UpstreamMetrics::observe_log(int lane, std::string_view text) {
  if (lane < 0 || lane >= count_) lane = count_ - 1;
  size_t outcome;
  std::string_view rest;
  if (text.substr(0, 5) == "HTTP ") {
    int status = 0;
    size_t i = 5;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') status = status * 10 + (text[i++] - '0');
    outcome = status >= 200 && status < 300 ? 0 : status >= 400 && status < 500 ? 1 : status >= 500 && status < 600 ? 2 : 3;
    size_t in = text.find(" in ", i);
    if (in == std::string_view::npos) return;
    rest = text.substr(in + 4);
  } else if (text.substr(0, 13) == "failed after ") {
    outcome = 4;
    rest = text.substr(13);
  } else {
    return;  // requests sent, retries, notices: not an attempt's end
  }
  uint64_t ms = 0;
  for (size_t i = 0; i < rest.size() && rest[i] >= '0' && rest[i] <= '9'; ++i) ms = ms * 10 + static_cast<uint64_t>(rest[i] - '0');
  Lane& l = lanes_[static_cast<size_t>(lane)];
  l.outcomes[outcome].add();
  const double seconds = static_cast<double>(ms) / 1000.0;
  size_t b = 0;
  while (b < LatencyHistogram::kBuckets && seconds > LatencyHistogram::kBounds[b]) ++b;
  l.buckets[b].add();
  l.sum_ms.add(ms);
}

uint64_t UpstreamMetrics::count(size_t outcome) const {
  uint64_t n = 0;
  for (int i = 0; i < count_; ++i) n += lanes_[static_cast<size_t>(i)].outcomes[outcome].get();
  return n;
}

void UpstreamMetrics::latency(uint64_t* cumulative, uint64_t* total, uint64_t* sum_ms) const {
  for (int i = 0; i < count_; ++i) {
    const Lane& l = lanes_[static_cast<size_t>(i)];
    uint64_t running = 0;
    for (size_t b = 0; b < LatencyHistogram::kBuckets; ++b) {
      running += l.buckets[b].get();
      cumulative[b] += running;
    }
    *total += running + l.buckets[LatencyHistogram::kBuckets].get();
    *sum_ms += l.sum_ms.get();
  }
}

std::string render_dashboard_json(Server& server) {
  const auto& contexts = server.contexts();
  const Config& config = server.config();
  std::string j = "{\"server\":";
  append_json_string(j, server.self().name);
  j += ",\"state\":";
  j += server.state() == Server::State::kServing ? "\"serving\"" : server.state() == Server::State::kStarting ? "\"starting\"" : "\"stopping\"";
  j += ",\"time_ms\":" + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch()).count());
  j += ",\"servers\":[";
  for (size_t i = 0; i < config.servers.size(); ++i) {
    const ServerConfig& s = config.servers[i];
    if (i) j += ',';
    j += "{\"name\":";
    append_json_string(j, s.name);
    j += ",\"admin\":";
    if (s.admin_port) {
      // A wildcard bind is reached at the address neighbours use.
      std::string host = s.admin_listen == "0.0.0.0" || s.admin_listen == "::" ? s.host : s.admin_listen;
      if (host.find(':') != std::string::npos) host = "[" + host + "]";
      append_json_string(j, "http://" + host + ":" + std::to_string(s.admin_port));
    } else {
      j += "null";
    }
    j += '}';
  }
  j += "],\"links\":[";
  for (size_t i = 0; i < config.links.size(); ++i) {
    if (i) j += ',';
    j += '[';
    append_json_string(j, config.links[i].first);
    j += ',';
    append_json_string(j, config.links[i].second);
    j += ']';
  }
  j += "],\"link_up\":{";
  bool first = true;
  for (const auto& l : server.links()) {
    if (!first) j += ',';
    first = false;
    append_json_string(j, l->peer_name());
    j += l->up() ? ":true" : ":false";
  }
  uint64_t by[kCommandKinds][kCommandResults] = {};
  std::vector<RecentLocations::Entry> recent;
  for (const auto& c : contexts) {
    for (size_t k = 0; k < kCommandKinds; ++k) {
      for (size_t r = 0; r < kCommandResults; ++r) by[k][r] += c->metrics.commands[k][r].get();
    }
    c->metrics.recent.copy_to(&recent);
  }
  const uint64_t updates = by[0][0];
  const uint64_t errors = by[2][3] + by[1][2];
  uint64_t commands = 0;
  for (auto& row : by) {
    for (uint64_t v : row) commands += v;
  }
  j += "},\"counters\":{\"updates\":" + std::to_string(updates) + ",\"errors\":" + std::to_string(errors) +
       ",\"commands\":" + std::to_string(commands) + "}";
  j += ",\"clients_stored\":" + std::to_string(server.table().size());
  std::sort(recent.begin(), recent.end(), [](const auto& a, const auto& b) { return a.unix_ms > b.unix_ms; });
  j += ",\"recent\":[";
  for (size_t i = 0; i < recent.size(); ++i) {
    if (i) j += ',';
    j += "{\"client\":";
    append_json_string(j, recent[i].client);
    j += ",\"origin\":";
    append_json_string(j, recent[i].origin);
    j += ",\"lat\":" + std::to_string(recent[i].lat) + ",\"lng\":" + std::to_string(recent[i].lng) +
         ",\"ms\":" + std::to_string(recent[i].unix_ms) + "}";
  }
  j += "]}\n";
  return j;
}

std::string render_metrics(Server& server) {
  http::PrometheusText t;
  const auto& contexts = server.contexts();
  const auto& servers = server.config().servers;

  t.family("herd_commands_total", "counter", "Client commands answered, by command and result.");
  for (size_t k = 0; k < kCommandKinds; ++k) {
    for (size_t r = 0; r < kCommandResults; ++r) {
      uint64_t sum = 0;
      for (const auto& c : contexts) sum += c->metrics.commands[k][r].get();
      // Only the combinations that can happen.
      const bool possible = (k == 0 && r <= 1) || (k == 1 && (r == 0 || r == 2)) || (k == 2 && r == 3);
      if (possible) {
        t.sample({{"command", command_label(static_cast<CommandKind>(k))},
                  {"result", result_label(static_cast<CommandResult>(r))}},
                 sum);
      }
    }
  }

  t.family("herd_reply_latency_seconds", "histogram",
           "Time from reading a client command to queueing its reply.");
  uint64_t cumulative[LatencyHistogram::kBuckets] = {};
  uint64_t count = 0, sum_ns = 0;
  for (const auto& c : contexts) {
    uint64_t running = 0;
    for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
      running += c->metrics.latency.buckets[i].get();
      cumulative[i] += running;
    }
    running += c->metrics.latency.buckets[LatencyHistogram::kBuckets].get();
    // The count is the bucket total read now, so +Inf is never below the last finite bucket.
    count += running;
    sum_ns += c->metrics.latency.sum_ns.get();
  }
  t.histogram({}, LatencyHistogram::kBounds, cumulative, LatencyHistogram::kBuckets, static_cast<double>(sum_ns) / 1e9,
              count);

  t.gauge("herd_clients_stored", "Clients whose location this server holds.",
          static_cast<uint64_t>(server.table().size()));

  t.counter("herd_clients_evicted_total",
            "Clients evicted from the location table to keep within limits.max_clients and max_table_bytes.",
            server.table().evictions());
  t.gauge("herd_table_bytes", "Bytes the location table takes from the allocator: slot arrays and record arenas.",
          static_cast<uint64_t>(server.table().memory_bytes()));

  t.gauge("herd_buffered_bytes",
          "Bytes buffered (input and output capacity) over every connection; budget: limits.max_buffered_bytes.",
          static_cast<uint64_t>(std::max<int64_t>(0, server.admission().buffered_bytes())));

  if (const Persistence* disk = server.persistence()) {
    t.gauge("herd_durable_waits",
            "fsync: always: sessions whose IAMAT replies wait for their records to reach the disk.",
            static_cast<uint64_t>(disk->waiting()));
  }

  if (const MemoryTrimmer* trimmer = server.trimmer()) {
    t.counter("herd_memory_trims_total",
              "Times freed heap memory was given back to the kernel after a burst (malloc_trim, off the loops).",
              trimmer->trims());
    t.counter("herd_memory_released_bytes_total", "How far the resident set fell across those trims, summed.",
              trimmer->released_bytes());
  }

  t.family("herd_connections", "gauge", "Open connections, by port.");
  for (auto [port, label] : {std::pair{Admission::Port::kClient, "client"}, std::pair{Admission::Port::kPeer, "peer"},
                             std::pair{Admission::Port::kAdmin, "admin"}}) {
    t.sample({{"port", label}}, static_cast<uint64_t>(server.admission().open(port)));
  }

  t.family("herd_connections_accepted_total", "counter", "Connections accepted, by port.");
  uint64_t client_acc = 0, peer_acc = 0, admin_req = 0;
  for (const auto& c : contexts) {
    client_acc += c->metrics.client_accepted.get();
    peer_acc += c->metrics.peer_accepted.get();
    admin_req += c->metrics.admin_requests.get();
  }
  t.sample({{"port", "client"}}, client_acc);
  t.sample({{"port", "peer"}}, peer_acc);

  // Per loop, to see how the accept mode spreads clients: which loop took each connection from the
  // kernel, and which runs it.
  t.family("herd_loop_client_accepts_total", "counter",
           "Client connections each loop took from the kernel (accept: exclusive, the loop that woke; "
           "reuseport, the loop whose socket the kernel's hash chose).");
  for (size_t i = 0; i < contexts.size(); ++i) {
    const std::string loop = std::to_string(i);
    t.sample({{"loop", loop}}, contexts[i]->metrics.client_accepts.get());
  }
  t.family("herd_loop_client_sessions_total", "counter",
           "Client sessions begun on each loop (with accept: exclusive, after the round-robin hand-off).");
  for (size_t i = 0; i < contexts.size(); ++i) {
    const std::string loop = std::to_string(i);
    t.sample({{"loop", loop}}, contexts[i]->metrics.client_accepted.get());
  }

  t.counter("herd_admin_requests_total", "Requests answered on the admin port.", admin_req);

  const auto& links = server.links();
  t.family("herd_peer_link_up", "gauge",
           "Whether the outbound link to a neighbour is up (1: connected, and answered or unrefused for 1 s) or not (0).");
  for (const auto& l : links) t.sample({{"peer", l->peer_name()}}, uint64_t{l->up() ? 1u : 0u});
  t.family("herd_peer_records_flooded_total", "counter",
           "AT records written to a neighbour (live, replayed by catch-up, and in full transfers).");
  for (const auto& l : links) t.sample({{"peer", l->peer_name()}}, l->records_sent());
  t.family("herd_peer_full_transfers_total", "counter",
           "Full transfers of the table begun to a neighbour (the backlog no longer held its position, "
           "or it held none of our history).");
  for (const auto& l : links) t.sample({{"peer", l->peer_name()}}, l->full_transfers());
  t.family("herd_peer_backlog_pending", "gauge",
           "Backlog entries a neighbour's link has not gone through yet (next backlog seq minus its cursor).");
  for (const auto& l : links) t.sample({{"peer", l->peer_name()}}, l->backlog_pending());
  t.family("herd_peer_records_received_total", "counter", "AT records received on the peer port, by sender.");
  for (size_t i = 0; i < servers.size(); ++i) {
    if (servers[i].name == server.self().name) continue;
    uint64_t n = 0;
    for (const auto& c : contexts) n += c->metrics.peer_received[i].get();
    t.sample({{"peer", servers[i].name}}, n);
  }

  t.counter("herd_log_bytes_written_total", "Bytes written to the log file.", server.log().bytes_written());
  t.counter("herd_log_entries_dropped_total",
            "Log entries dropped: backlog full (the disk fell behind) or a failed write.", server.log().dropped());
  t.counter("herd_log_reopen_failures_total",
            "Reopens (SIGHUP, rotation) and rotations of the log file that failed; entries went on into the old file.",
            server.log().reopen_failures());

  if (const UpstreamMetrics* up = server.upstream_metrics()) {
    t.family("herd_places_upstream_requests_total", "counter",
             "Attempts at the places upstream (google providers), by HTTP status class or failed (no answer).");
    for (size_t i = 0; i < UpstreamMetrics::kOutcomes; ++i) {
      t.sample({{"status", UpstreamMetrics::kOutcomeLabels[i]}}, up->count(i));
    }
    t.family("herd_places_upstream_latency_seconds", "histogram", "Time from sending an attempt to its end.");
    uint64_t cum[LatencyHistogram::kBuckets] = {}, total = 0, sum_ms = 0;
    up->latency(cum, &total, &sum_ms);
    t.histogram({}, LatencyHistogram::kBounds, cum, LatencyHistogram::kBuckets, static_cast<double>(sum_ms) / 1000.0,
                total);
  }

  ProcessStats p = read_process_stats();
  t.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", p.cpu_seconds);
  t.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", p.rss_bytes);
  t.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_bytes);
  t.gauge("process_open_fds", "Open file descriptors.", p.open_fds);
  t.gauge("process_max_fds", "The open file descriptor limit.", p.max_fds);
  t.gauge("process_threads", "Threads of the process.", p.threads);
  t.gauge("process_start_time_seconds", "Start time of the process since the epoch, in seconds.", server.start_time());
  return t.take();
}

}  // namespace herd
