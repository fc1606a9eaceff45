// Printing a load run's results: a summary table on stdout, or one JSON object with --json.
#include "tools/load/report.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>

#include "tools/load/percentile_export.h"

namespace herd_load {

namespace {

const double kPercentiles[] = {50, 90, 99, 99.9};

double us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string format_latency(uint64_t ns) {
  char buf[32];
  if (ns < 1'000'000) std::snprintf(buf, sizeof buf, "%.1f us", us(ns));
  else if (ns < 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f ms", static_cast<double>(ns) / 1e6);
  else std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(ns) / 1e9);
  return buf;
}

// "host:port", or "[host]:port" for an IPv6 literal.
std::string host_port(const Target& t) {
  return (t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
}

std::string target_list(const Options& o) {
  std::string s;
  for (const auto& t : o.targets) {
    if (!s.empty()) s += ", ";
    if (!t.name.empty()) s += t.name + "=";
    s += host_port(t);
  }
  return s;
}

}  // namespace

void print_text_report(const Options& o, const RunResult& r) {
  const Stats& s = r.stats;
  const double rate = r.measured_seconds > 0 ? static_cast<double>(s.replies) / r.measured_seconds : 0;
  const double cpu = r.wall_seconds > 0 ? 100.0 * r.cpu_seconds / r.wall_seconds : 0;
  std::printf("herd-load: protocol %s, %d connections, pipeline %d, %d thread%s, %s\n",
              protocol_name(o.protocol), o.connections, o.pipeline, o.threads, o.threads == 1 ? "" : "s",
              o.rate > 0 ? ("open loop at " + std::to_string(static_cast<long long>(o.rate)) + " req/s").c_str()
                         : "closed loop");
  std::printf("targets: %s\n", target_list(o).c_str());
  if (!r.abort_reason.empty()) std::printf("RUN ABORTED: %s\n", r.abort_reason.c_str());
  std::printf("\n%-22s %12.3f s\n", "measured time", r.measured_seconds);
  std::printf("%-22s %12llu\n", "requests sent", static_cast<unsigned long long>(s.sent));
  std::printf("%-22s %12llu\n", "replies (measured)", static_cast<unsigned long long>(s.replies));
  std::printf("%-22s %12.0f /s\n", "throughput", rate);
  std::printf("%-22s %12.0f /s  (every reply that arrived in the window, whenever sent)\n", "arrival rate",
              r.measured_seconds > 0 ? static_cast<double>(s.arrived) / r.measured_seconds : 0);
  std::printf("%-22s %12llu  (IAMAT %llu, of which newer-record %llu; WHATSAT %llu)\n", "good replies",
              static_cast<unsigned long long>(s.ok), static_cast<unsigned long long>(s.iamat_ok),
              static_cast<unsigned long long>(s.stale), static_cast<unsigned long long>(s.whatsat_ok));
  if (s.whatsat_ok > 0)
    std::printf("%-22s %12.2f  (status not OK/ZERO_RESULTS: %llu)\n", "results per WHATSAT",
                static_cast<double>(s.results_total) / static_cast<double>(s.whatsat_ok),
                static_cast<unsigned long long>(s.status_not_ok));
  if (o.seed) std::printf("%-22s %12llu\n", "seed replies", static_cast<unsigned long long>(s.seeded));
  std::printf("%-22s %12llu\n", "unfinished at end", static_cast<unsigned long long>(s.unfinished));
  std::printf("\nlatency (%s)\n  %-20s %12s %12s %12s\n", o.rate > 0 ? "from intended send time" : "from send time", "",
              "all", o.protocol == Protocol::kRedis ? "GEOADD" : "IAMAT",
              o.protocol == Protocol::kRedis ? "GEOSEARCH" : "WHATSAT");
  const Histogram* hs[] = {&s.latency, &s.latency_iamat, &s.latency_whatsat};
  auto row = [&hs](const char* label, auto value) {
    std::printf("  %-20s", label);
    for (const Histogram* h : hs) std::printf(" %12s", h->count() ? format_latency(value(*h)).c_str() : "-");
    std::printf("\n");
  };
  for (double p : kPercentiles) {
    char label[16];
    std::snprintf(label, sizeof label, "p%g", p);
    row(label, [p](const Histogram& h) { return h.percentile(p); });
  }
  row("max", [](const Histogram& h) { return h.max(); });
  row("mean", [](const Histogram& h) { return static_cast<uint64_t>(h.mean()); });
  std::printf("  %-20s", "count");
  for (const Histogram* h : hs) std::printf(" %12llu", static_cast<unsigned long long>(h->count()));
  std::printf("\n");
  std::printf("\nerrors %llu\n", static_cast<unsigned long long>(s.total_errors()));
  for (size_t i = 1; i < kErrorKindCount; ++i)
    if (s.errors[i] > 0)
      std::printf("  %-20s %12llu\n", error_kind_name(static_cast<ErrorKind>(i)),
                  static_cast<unsigned long long>(s.errors[i]));
  if (!s.samples.empty()) {
    std::printf("first offending replies:\n");
    for (const auto& line : s.samples) std::printf("  %s\n", line.c_str());
  }
  std::printf("\ngenerator CPU %.0f%% of one core (%.2f s user+sys over %.2f s)%s\n", cpu, r.cpu_seconds,
              r.wall_seconds,
              cpu > 90.0 * o.threads ? "  <- the generator may be the bottleneck" : "");
}

void print_json_report(const Options& o, const RunResult& r) {
  const Stats& s = r.stats;
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto u64 = [&w](const char* key, uint64_t v) {
    w.Key(key);
    w.Uint64(v);
  };
  auto dbl = [&w](const char* key, double v) {
    w.Key(key);
    w.Double(v);
  };
  w.StartObject();
  w.Key("protocol");
  w.String(protocol_name(o.protocol));
  w.Key("targets");
  w.StartArray();
  for (const auto& t : o.targets) w.String(host_port(t).c_str());
  w.EndArray();
  u64("connections", static_cast<uint64_t>(o.connections));
  u64("pipeline", static_cast<uint64_t>(o.pipeline));
  u64("threads", static_cast<uint64_t>(o.threads));
  dbl("rate", o.rate);
  dbl("whatsat_ratio", o.whatsat_ratio);
  u64("clients", o.clients);
  w.Key("aborted");
  w.String(r.abort_reason.c_str());
  dbl("measured_seconds", r.measured_seconds);
  dbl("wall_seconds", r.wall_seconds);
  u64("sent", s.sent);
  u64("replies", s.replies);
  dbl("throughput", r.measured_seconds > 0 ? static_cast<double>(s.replies) / r.measured_seconds : 0);
  u64("arrived", s.arrived);
  dbl("arrival_rate", r.measured_seconds > 0 ? static_cast<double>(s.arrived) / r.measured_seconds : 0);
  u64("ok", s.ok);
  u64("iamat_ok", s.iamat_ok);
  u64("iamat_newer_record", s.stale);
  u64("whatsat_ok", s.whatsat_ok);
  u64("whatsat_status_not_ok", s.status_not_ok);
  u64("whatsat_results", s.results_total);
  u64("seeded", s.seeded);
  u64("unfinished", s.unfinished);
  u64("bytes_out", s.bytes_out);
  u64("bytes_in", s.bytes_in);
  auto latency = [&](const char* key, const Histogram& h) {
    w.Key(key);
    w.StartObject();
    dbl("p50", us(h.percentile(50)));
    dbl("p90", us(h.percentile(90)));
    dbl("p99", us(h.percentile(99)));
    dbl("p99.9", us(h.percentile(99.9)));
    dbl("p99.99", us(h.percentile(99.99)));
    dbl("max", us(h.max()));
    dbl("mean", h.mean() / 1000.0);
    u64("count", h.count());
    w.EndObject();
  };
  latency("latency_us", s.latency);
  // Per command (IAMAT / WHATSAT; GEOADD / GEOSEARCH for redis), only those that were measured.
  w.Key("latency_us_by_command");
  w.StartObject();
  if (s.latency_iamat.count()) latency("IAMAT", s.latency_iamat);
  if (s.latency_whatsat.count()) latency("WHATSAT", s.latency_whatsat);
  w.EndObject();
  // The whole distribution as HdrHistogram's percentile iteration: [percentile, value us, count].
  w.Key("latency_percentiles");
  w.StartArray();
  for (const PercentilePoint& p : percentile_points(s.latency)) {
    w.StartArray();
    w.Double(p.percentile);
    w.Double(us(p.value_ns));
    w.Uint64(p.count);
    w.EndArray();
  }
  w.EndArray();
  w.Key("errors");
  w.StartObject();
  u64("total", s.total_errors());
  for (size_t i = 1; i < kErrorKindCount; ++i) u64(error_kind_name(static_cast<ErrorKind>(i)), s.errors[i]);
  w.EndObject();
  w.Key("error_samples");
  w.StartArray();
  for (const auto& line : s.samples) w.String(line.c_str(), static_cast<rapidjson::SizeType>(line.size()));
  w.EndArray();
  dbl("cpu_seconds", r.cpu_seconds);
  dbl("cpu_percent", r.wall_seconds > 0 ? 100.0 * r.cpu_seconds / r.wall_seconds : 0);
  w.EndObject();
  std::printf("%s\n", buf.GetString());
}

}  // namespace herd_load
