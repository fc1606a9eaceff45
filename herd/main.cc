// herd-server: runs one server of the herd described by a config file.
//
//   herd-server NAME [--config FILE] [--check] [--strict]  |  herd-server --version
//
// Exit status: 0 after a clean stop (SIGINT/SIGTERM) or a passed --check, 1 when it cannot start (port
// in use, missing data), 2 for a usage or configuration error (including a peer_tls file that cannot
// be used). Messages name the problem: file, key and value. Threads: main (start-up, then waits for a
// stop), a signal thread (sigwait), the loops.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/opensslv.h>

#include <llhttp.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "herd/config.h"
#include "herd/log_sink.h"
#include "herd/memory_trim.h"
#include "herd/places_setup.h"
#include "herd/peer_tls.h"
#include "herd/server.h"
#include "places/gazetteer.h"
#include "places/google_places.h"
#include "places/offline_places.h"
#include "reactor/socket.h"
#include "reactor/threads.h"

namespace {

constexpr const char* kVersion = "1.0.0";

constexpr const char* kUsage =
    "usage: herd-server NAME [--config FILE] [--check] [--strict]\n"
    "       herd-server --version\n"
    "\n"
    "Runs the server NAME of the herd described by FILE (default ./config.yaml): it answers IAMAT\n"
    "and WHATSAT on its client port, floods location updates to its neighbours over its peer port,\n"
    "and logs to <log_dir>/NAME.log (log_dir \"-\": stderr).\n"
    "\n"
    "options:\n"
    "  --config FILE   the herd's configuration (servers, links, places, limits, peer_tls)\n"
    "  --check         validate the configuration and every file it names, bind nothing, exit\n"
    "  --strict        unknown configuration keys are errors (as `strict: true` in the file)\n"
    "  --version       version and build details\n"
    "  --help          this text\n"
    "\n"
    "signals: SIGTERM/SIGINT stop gracefully (stop accepting, send the replies in flight and what the\n"
    "backlog owes the neighbours within shutdown_timeout_ms, exit 0; a second one stops without\n"
    "waiting); SIGHUP/SIGUSR1 reopen the log file; SIGUSR2, SIGQUIT and SIGALRM stop like SIGTERM.\n"
    "\n"
    "environment:\n"
    "  HERD_GAZETTEER  the offline places data file (overrides places.gazetteer)\n"
    "  GOOGLE_API_KEY  the API key for places.provider google / google-new (places.key_env names\n"
    "                  another variable)\n"
    "\n"
    "exit status: 0 clean stop (or --check passed), 1 cannot start (port in use, missing data),\n"
    "2 usage or config error\n";

// Signals taken by the signal thread: every default-fatal one an operator is likely to send.
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGUSR2, SIGQUIT, SIGALRM};
constexpr int kReopenSignals[] = {SIGHUP, SIGUSR1};

// Shared between main and the signal thread (static: the detached thread may outlive main's frame).
struct Control {
  std::mutex mu;
  std::condition_variable cv;
  int stop_signal = 0;          // guarded by mu
  bool serving = false;         // guarded by mu: past start-up (a stop signal then stops gracefully)
  herd::LogSink* log = nullptr; // guarded by mu
  herd::Server* server = nullptr;  // guarded by mu: while serving (a second stop signal cuts its drain)
};
Control g_control;

void signal_thread(sigset_t signals) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    std::unique_lock lock(g_control.mu);
    if (sig == SIGHUP || sig == SIGUSR1) {
      if (g_control.log) g_control.log->reopen();
      continue;
    }
    if (!g_control.serving) {
      // Nothing is serving yet, so nothing needs a graceful stop: leave at once.
      std::fprintf(stderr, "herd-server: %s during start-up; stopped\n", strsignal(sig));
      std::fflush(stderr);
      std::_Exit(0);
    }
    if (g_control.stop_signal != 0) {
      // A second stop signal: the operator will not wait for the drain.
      if (g_control.server) g_control.server->cut_drain_short();
      continue;
    }
    g_control.stop_signal = sig;
    g_control.cv.notify_all();
  }
}

// A sanitizer build says so: it is slower and larger, and tests that measure time or memory allow
// for it (GCC names ASan and TSan builds; UBSan has no macro of its own).
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* kInstrumented = ", AddressSanitizer";
#elif defined(__SANITIZE_THREAD__)
constexpr const char* kInstrumented = ", ThreadSanitizer";
#else
constexpr const char* kInstrumented = "";
#endif

void print_version() {
  std::printf("herd-server %s\nbuilt %s %s with g++ %s (C++20%s)\n%s, llhttp %d.%d.%d\n", kVersion, __DATE__,
              __TIME__, __VERSION__, kInstrumented, OPENSSL_VERSION_TEXT, LLHTTP_VERSION_MAJOR,
              LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
}

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

// "host:port", with IPv6 literals in brackets.
std::string host_port(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
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
  for (const std::string& candidate : {dir + "/data/cities.pbf", dir + "/../data/cities.pbf",
                                      dir + "/../share/herd/cities.pbf"}) {
    if (::access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return dir + "/data/cities.pbf";
}

// For --check, which must leave nothing behind: whether what the server would write can be made.
// An existing log file is opened for appending (not written); in an existing data directory a file is
// created and removed. For what is missing, what the server would create first (the log file, or the
// first missing directory) is created in the deepest directory that exists and removed again.
// access(W_OK) alone would say yes to root on any file system mounted read-write, /proc included.

// Creates the file or directory `path` (in the directory `where`) and removes it again; false with
// *why ("where: reason") when it cannot be made.
bool can_create(const std::string& path, bool is_dir, const std::string& where, std::string* why) {
  const int fd = is_dir ? ::mkdir(path.c_str(), 0755) : ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    *why = where + ": " + std::strerror(errno);
    return false;
  }
  if (is_dir) ::rmdir(path.c_str());
  else ::close(fd), ::unlink(path.c_str());
  return true;
}

// The deepest directory at or above `path` that exists; *err is set when the walk meets something
// other than a missing entry (ENOTDIR for a file in the way).
std::string deepest_existing(const std::string& path, int* err) {
  std::string probe = path;
  struct stat st {};
  *err = 0;
  while (::stat(probe.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) {  // ENOTDIR: a file above, found by the walk
      *err = errno;
      return probe;
    }
    size_t slash = probe.find_last_of('/');
    probe = slash == std::string::npos ? "." : slash == 0 ? "/" : probe.substr(0, slash);
  }
  if (!S_ISDIR(st.st_mode)) *err = ENOTDIR;
  return probe;
}

// Whether the server could make what it would make first in the directory `dir`: a file in it when
// it exists (*exists), else the first missing directory under the deepest one that does. *why names
// the path that refused and the reason.
bool try_creating_in(const std::string& dir, bool* exists, std::string* why) {
  int err = 0;
  const std::string probe = deepest_existing(dir, &err);
  *exists = probe == dir && err == 0;
  if (err != 0) {
    *why = probe + ": " + std::strerror(err);
    return false;
  }
  return can_create(probe + "/.herd-check-" + std::to_string(::getpid()), !*exists, probe, why);
}

bool check_log_file(const std::string& dir, const std::string& path, std::string* error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    const int fd = S_ISDIR(st.st_mode) ? -1 : ::open(path.c_str(), O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
      *error = "log_dir: " + path + ": cannot open the log file: " + std::strerror(err);
      return false;
    }
    ::close(fd);
    return true;
  }
  bool exists = false;
  std::string why;
  if (!try_creating_in(dir, &exists, &why)) {
    *error = "log_dir: " + dir + ": cannot create " + (exists ? "the log file " + path : "the log directory") +
             " (" + why + ")";
    return false;
  }
  return true;
}

// The same for the server's data directory `path` (<data_dir>/<name>): it must be a directory the
// server can write in, or one it can create.
bool check_data_dir(const std::string& path, std::string* error) {
  bool exists = false;
  std::string why;
  if (!try_creating_in(path, &exists, &why)) {
    *error = "data_dir: " + path + ": " +
             (exists ? "cannot write in the data directory" : "cannot create the data directory") + " (" + why + ")";
    return false;
  }
  return true;
}

herd::LogLevel log_level(const std::string& name) {
  if (name == "events") return herd::LogLevel::kEvents;
  if (name == "warnings") return herd::LogLevel::kWarnings;
  return herd::LogLevel::kIo;
}

}  // namespace

// The server from its arguments to its exit status.
int run(int argc, char** argv) {
  // The stop and reopen signals are taken by sigwait on the signal thread only. Block them before
  // any thread exists (the log writer, the loops), so every thread inherits the mask and no signal
  // can land on a thread that would die of it.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : kStopSignals) sigaddset(&signals, sig);
  for (int sig : kReopenSignals) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  // A write past RLIMIT_FSIZE (systemd's LimitFSIZE=, say) then fails with EFBIG, which the log and
  // the record writer handle as any failed write, instead of the signal ending the process.
  ::signal(SIGXFSZ, SIG_IGN);
  reactor::start_thread("signals", [signals] { signal_thread(signals); }).detach();

  std::string name;
  std::string config_path = "config.yaml";
  bool check = false;
  bool strict = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--version" || arg == "-V") {
      print_version();
      return 0;
    }
    if (arg == "--config") {
      if (i + 1 >= argc) return usage_error("--config needs a file name");
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--check" || arg == "-t") {
      check = true;
    } else if (arg == "--strict") {
      strict = true;
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
  auto config = herd::load_config(config_path, &error, &warnings, strict);
  for (const auto& w : warnings) std::fprintf(stderr, "herd-server: warning: %s\n", w.c_str());
  if (!config) {
    std::fprintf(stderr, "herd-server: %s\n", error.c_str());
    return 2;
  }
  herd::configure_allocator(config->loop_count());  // before any thread (see memory_trim.h)
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
  // Where the places data is (also where the dashboard's map is looked for), offline or not.
  const std::string data_path = gazetteer_path(*config);
  if (config->places.provider == "offline") {
    auto gazetteer = places::Gazetteer::load(data_path, &error);
    if (!gazetteer) {
      std::fprintf(stderr, "herd-server: %s\n(the offline places data is built by `make`)\n", error.c_str());
      return check ? 2 : 1;
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

  const bool to_stderr = config->log_dir == "-";
  std::string log_dir = to_stderr ? "-" : config->resolve_path(config->log_dir);
  std::string log_path = to_stderr ? "-" : log_dir + "/" + name + ".log";

  // The admin token: a configuration error (exit 2) at start as under --check.
  std::string token_problem;
  if (self->admin_port && !config->admin_token_env.empty()) {
    const char* token = std::getenv(config->admin_token_env.c_str());
    if (!token || !*token) {
      token_problem = "admin_token_env: the environment variable " + config->admin_token_env +
                      (token ? " is empty" : " is not set");
    }
  }

  if (check) {
    // Everything start-up would need, short of binding: addresses resolve, files are readable,
    // the log directory can be written, the token variable is set.
    std::vector<std::string> problems;
    reactor::SocketAddress addr;
    auto resolves = [&](const std::string& key, const std::string& host) {
      if (!reactor::resolve(host, 1, &addr, &error)) problems.push_back(key + ": " + error);
    };
    resolves("servers." + name + (self->listen.empty() ? ".host" : ".listen"),
             self->listen.empty() ? self->host : self->listen);
    if (self->admin_port) resolves("servers." + name + ".admin_listen", self->admin_listen);
    for (const auto* n : config->neighbours(name)) resolves("servers." + n->name + ".host", n->host);
    if (!to_stderr && !check_log_file(log_dir, log_path, &error)) problems.push_back(error);
    if (!config->data_dir.empty() && !check_data_dir(config->resolve_path(config->data_dir) + "/" + name, &error)) {
      problems.push_back(error);
    }
    if (!token_problem.empty()) problems.push_back(token_problem);
    for (const auto& p : problems) std::fprintf(stderr, "herd-server: %s: %s\n", config_path.c_str(), p.c_str());
    if (!problems.empty()) return 2;
    std::printf("herd-server %s: configuration %s is valid (places %s, log %s)\n", name.c_str(),
                config_path.c_str(), google ? config->places.provider.c_str() : data_path.c_str(),
                log_path.c_str());
    return 0;
  }

  if (!token_problem.empty()) {
    std::fprintf(stderr, "herd-server: %s: %s\n", config_path.c_str(), token_problem.c_str());
    return 2;
  }
  if (!to_stderr && !make_dirs(log_dir, &error)) {
    std::fprintf(stderr, "herd-server: %s: log_dir: %s\n", config_path.c_str(), error.c_str());
    return 2;
  }
  herd::LogOptions log_options;
  log_options.level = log_level(config->log_level);
  log_options.max_bytes = config->log_max_bytes;
  log_options.keep = config->log_keep;
  // One log lane per event loop, plus one for this thread and the others.
  auto log = herd::LogSink::open(log_path, config->loop_count() + 1, config->limits.log_backlog_bytes, &error,
                                 log_options);
  if (!log) {
    std::fprintf(stderr, "herd-server: %s: log_dir: %s\n", config_path.c_str(), error.c_str());
    return 2;
  }
  herd::LogSink* log_ptr = log.get();
  std::shared_ptr<herd::UpstreamMetrics> upstream;  // google providers only

  if (google) {
    // The provider logs on the loops' lanes; the sink outlives it (the server stops the loops first).
    herd::LogSink* sink = log.get();
    upstream = std::make_shared<herd::UpstreamMetrics>(log->lanes());
    herd::UpstreamMetrics* counts = upstream.get();
    google->log = [sink, counts](int lane, char kind, std::string_view text) {
      counts->observe_log(lane, text);
      sink->write(lane, "places", kind, text);
    };
    provider = std::make_shared<places::GooglePlaces>(std::move(*google));
    log->off_loop().write("-", '*', "places: " + config->places.provider + " at " +
                                        (config->places.endpoint.empty() ? config->places.default_endpoint()
                                                                         : config->places.endpoint));
  }

  // Clients must not take the descriptors that peer links and files need (when they did, a server
  // full of clients could no longer redial its neighbours): fit max_connections under the limit.
  const uint64_t nofile = reactor::raise_fd_limit();
  const size_t reserve = herd::Server::reserved_fds(*config, config->loop_count());
  if (nofile <= reserve) {
    std::fprintf(stderr,
                 "herd-server: the open-file limit (RLIMIT_NOFILE %llu) leaves no descriptor for clients: the "
                 "server keeps %zu for its loops, peer links and files\n",
                 static_cast<unsigned long long>(nofile), reserve);
    return 1;
  }
  if (config->limits.max_connections > nofile - reserve) {
    std::string warning = "limits.max_connections lowered from " + std::to_string(config->limits.max_connections) +
                          " to " + std::to_string(nofile - reserve) + " to fit the open-file limit (RLIMIT_NOFILE " +
                          std::to_string(nofile) + ", of which " + std::to_string(reserve) +
                          " are kept for the loops, peer links and files)";
    std::fprintf(stderr, "herd-server: warning: %s\n", warning.c_str());
    log->off_loop().write("-", '!', "warning: ", warning);
    config->limits.max_connections = nofile - reserve;
  }

  herd::Server server(*config, name, provider, std::move(log));
  server.set_upstream_metrics(upstream);
  if (self->admin_port) {
    // The dashboard's map: $HERD_WORLDMAP, else land-110m.json beside the places data.
    const char* env = std::getenv("HERD_WORLDMAP");
    std::string map_path = env && *env ? env : data_path.substr(0, data_path.rfind('/') + 1) + "land-110m.json";
    std::ifstream map_file(map_path);
    if (map_file) server.set_world_map(std::string(std::istreambuf_iterator<char>(map_file), {}));
  }
  server.use_peer_tls(std::move(peer_tls));
  if (!server.start(&error)) {
    std::fprintf(stderr, "herd-server: %s: %s\n", name.c_str(), error.c_str());
    return 1;
  }
  {
    // Serving from here on: a stop signal now stops gracefully (and the ready line below is what
    // operators and tests wait for, so it must not come before this).
    std::lock_guard lock(g_control.mu);
    g_control.log = log_ptr;
    g_control.server = &server;
    g_control.serving = true;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  const std::string& bind = self->listen.empty() ? self->host : self->listen;
  std::string admin;
  if (self->admin_port) admin = ", admin " + host_port(self->admin_listen, self->admin_port);
  std::printf("herd-server %s: clients %s, peers %s (%s)%s, log %s, %d loops, ready in %lld ms\n", name.c_str(),
              host_port(bind, self->port).c_str(), host_port(bind, self->peer_port).c_str(),
              server.peer_tls() ? "TLS" : "plaintext", admin.c_str(),
              log_path.c_str(), server.loop_count(), static_cast<long long>(ms.count()));
  std::fflush(stdout);

  int sig = 0;
  {
    std::unique_lock lock(g_control.mu);
    g_control.cv.wait(lock, [] { return g_control.stop_signal != 0; });
    sig = g_control.stop_signal;
    g_control.log = nullptr;  // no reopen while stopping (the sink goes with the server)
  }
  server.log().off_loop().write("-", '*', std::string("stopping on ") + strsignal(sig));
  server.drain(config->shutdown_timeout_ms);
  {
    std::lock_guard lock(g_control.mu);
    g_control.server = nullptr;  // a stop signal from here on finds nothing to cut
  }
  server.stop();
  return 0;
}

int main(int argc, char** argv) {
  // What start-up cannot do otherwise than by an exception (a thread the process may not have, memory
  // for the loops) ends it with a message and exit 1, and not with an abort and a core file; what
  // had started is stopped on the way out.
  try {
    return run(argc, argv);
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "herd-server: %s%s\n", e.what(),
                 reactor::at_thread_limit(e)
                     ? " (the process's thread limit: `ulimit -u`, LimitNPROC= or TasksMax= under systemd, a "
                       "container's pids.max)"
                     : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "herd-server: cannot go on: %s\n", e.what());
  }
  return 1;
}
