// herd-server: runs one server of the herd described by a config file.
//
//   herd-server NAME [--config FILE]
//
// Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 when it cannot start (port in use, missing
// data), 2 for a usage or configuration error (including a peer_tls file that cannot be used).
// Messages name the problem: file, key and value.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "herd/config.h"
#include "herd/log_sink.h"
#include "herd/peer_tls.h"
#include "herd/places_setup.h"
#include "herd/server.h"
#include "places/gazetteer.h"
#include "places/google_places.h"
#include "places/offline_places.h"
#include "reactor/socket.h"

namespace {

constexpr const char* kUsage =
    "usage: herd-server NAME [--config FILE]\n"
    "\n"
    "Runs the server NAME of the herd described by FILE (default ./config.yaml): it answers IAMAT\n"
    "and WHATSAT on its client port, floods location updates to its neighbours over its peer port,\n"
    "and logs every line in and out to <log_dir>/NAME.log. SIGINT or SIGTERM stops it cleanly.\n"
    "\n"
    "options:\n"
    "  --config FILE   the herd's configuration (servers, links, places, limits, peer_tls)\n"
    "  --help          this text\n"
    "\n"
    "environment:\n"
    "  HERD_GAZETTEER  the offline places data file (overrides places.gazetteer)\n"
    "  GOOGLE_API_KEY  the API key for places.provider google / google-new (places.key_env names\n"
    "                  another variable)\n"
    "\n"
    "exit status: 0 clean stop, 1 cannot start (port in use, missing data), 2 usage or config error\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "herd-server: %s\n(try herd-server --help)\n", message.c_str());
  return 2;
}

bool make_dirs(const std::string& path, std::string* error) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = partial + ": cannot create the log directory: " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

std::string executable_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// Where the offline data is: $HERD_GAZETTEER, else places.gazetteer, else beside the binary.
std::string gazetteer_path(const herd::Config& config) {
  if (const char* env = std::getenv("HERD_GAZETTEER"); env && *env) return env;
  if (!config.places.gazetteer.empty()) return config.resolve_path(config.places.gazetteer);
  std::string dir = executable_dir();
  for (const std::string& candidate : {dir + "/data/cities.pbf", dir + "/../data/cities.pbf"}) {
    if (::access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return dir + "/data/cities.pbf";
}

}  // namespace

int main(int argc, char** argv) {
  // SIGINT and SIGTERM are taken by sigwait on this thread only. Block them before any thread
  // exists (the log writer, the loops), so every thread inherits the mask and no signal can land on
  // a thread that would die of it.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::string name;
  std::string config_path = "config.yaml";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--config") {
      if (i + 1 >= argc) return usage_error("--config needs a file name");
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option '" + arg + "'");
    } else if (name.empty()) {
      name = arg;
    } else {
      return usage_error("one server name expected, got '" + name + "' and '" + arg + "'");
    }
  }
  if (name.empty()) return usage_error("which server? give its NAME from the config");

  std::string error;
  std::vector<std::string> warnings;
  auto config = herd::load_config(config_path, &error, &warnings);
  for (const auto& w : warnings) std::fprintf(stderr, "herd-server: warning: %s\n", w.c_str());
  if (!config) {
    std::fprintf(stderr, "herd-server: %s\n", error.c_str());
    return 2;
  }
  const herd::ServerConfig* self = config->find(name);
  if (!self) {
    std::string known;
    for (const auto& s : config->servers) known += (known.empty() ? "" : ", ") + s.name;
    std::fprintf(stderr, "herd-server: %s: no server named '%s' (servers: %s)\n", config_path.c_str(),
                 name.c_str(), known.c_str());
    return 2;
  }
  // The peer links' TLS identity: a file that cannot be used is a configuration error.
  std::shared_ptr<const reactor::TlsContext> peer_tls;
  if (config->peer_tls) {
    peer_tls = herd::load_peer_tls(*config, name, &error);
    if (!peer_tls) {
      std::fprintf(stderr, "herd-server: %s\n", error.c_str());
      return 2;
    }
  } else {
    std::fprintf(stderr, "herd-server: warning: %s\n", herd::plaintext_peer_warning(*config).c_str());
  }

  auto started = std::chrono::steady_clock::now();
  std::shared_ptr<places::PlacesProvider> provider;
  std::optional<places::GoogleOptions> google;
  if (config->places.provider == "offline") {
    std::string data_path = gazetteer_path(*config);
    auto gazetteer = places::Gazetteer::load(data_path, &error);
    if (!gazetteer) {
      std::fprintf(stderr, "herd-server: %s\n(the offline places data is built by `make`)\n", error.c_str());
      return 1;
    }
    provider = std::make_shared<places::OfflinePlaces>(std::shared_ptr<const places::Gazetteer>(std::move(gazetteer)));
  } else {
    warnings.clear();
    google = herd::google_options(*config, &error, &warnings);
    for (const auto& w : warnings) std::fprintf(stderr, "herd-server: warning: %s\n", w.c_str());
    if (!google) {
      std::fprintf(stderr, "herd-server: %s\n", error.c_str());
      return 2;
    }
  }

  std::string log_dir = config->resolve_path(config->log_dir);
  if (!make_dirs(log_dir, &error)) {
    std::fprintf(stderr, "herd-server: %s\n", error.c_str());
    return 1;
  }
  std::string log_path = log_dir + "/" + name + ".log";
  // One log lane per event loop, plus one for this thread and the others.
  auto log = herd::LogSink::open(log_path, config->loop_count() + 1, config->limits.log_backlog_bytes, &error);
  if (!log) {
    std::fprintf(stderr, "herd-server: %s\n", error.c_str());
    return 1;
  }

  if (google) {
    // The provider logs on the loops' lanes; the sink outlives it (the server stops the loops first).
    herd::LogSink* sink = log.get();
    google->log = [sink](int lane, char kind, std::string_view text) { sink->write(lane, "places", kind, text); };
    provider = std::make_shared<places::GooglePlaces>(std::move(*google));
    log->write(log->lanes() - 1, "-", '*', "places: " + config->places.provider + " at " +
                                               (config->places.endpoint.empty() ? config->places.default_endpoint()
                                                                                : config->places.endpoint));
  }

  reactor::raise_fd_limit();

  herd::Server server(*config, name, provider, std::move(log));
  server.use_peer_tls(std::move(peer_tls));
  if (!server.start(&error)) {
    std::fprintf(stderr, "herd-server: %s: %s\n", name.c_str(), error.c_str());
    return 1;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  std::printf("herd-server %s: clients %s:%u, peers %s:%u (%s), log %s, %d loops, ready in %lld ms\n",
              name.c_str(), self->host.c_str(), self->port, self->host.c_str(), self->peer_port,
              server.peer_tls() ? "TLS" : "plaintext", log_path.c_str(), server.loop_count(),
              static_cast<long long>(ms.count()));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  server.stop();
  return 0;
}
