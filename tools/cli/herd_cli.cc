// herd-cli: a small command-line client for a herd server, in the spirit of redis-cli.
//
//   herd-cli [-h HOST] [-p PORT] [-t SECONDS] [COMMAND...]
//
// With a COMMAND (its words joined by single spaces) it sends that one line, prints the reply and
// exits. Without one it reads lines from standard input (with a prompt when that is a terminal), sends
// each and prints its reply, until end of input. A reply is framed the way SPEC.md fixes it: one line
// (`AT ...` for IAMAT, `? ...` for anything invalid), or for a WHATSAT the AT line and the places JSON
// up to the blank line that ends it; the JSON arrives in Google's indented layout and is printed as it
// came, with the blank line left out.
//
// -t bounds the waiting: with a COMMAND, the connect and the whole exchange together (so a run ends
// within it, however the server or the network misbehaves); without one, the connect, then each
// command's exchange from when its line is read (the time spent waiting for input does not count).
// Only the name lookup is outside it (getaddrinfo cannot be bounded; an address literal takes none).
//
// Exit status: 0 when every command was answered and none with `? `; 1 when some reply was `? `;
// 2 for a usage error; 3 when the server cannot be reached, closes the connection or does not answer
// in time; 4 when a reply cannot be written to standard output (a closed pipe, a full disk).
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

#include "reactor/host_text.h"

namespace {

constexpr const char* kUsage =
    "usage: herd-cli [-h HOST] [-p PORT] [-t SECONDS] [COMMAND...]\n"
    "\n"
    "Sends COMMAND (e.g. IAMAT kiwi +34.068930-118.445127 1520023934.918963997, or\n"
    "WHATSAT kiwi 10 5) to a herd server's client port and prints the reply. Without a COMMAND,\n"
    "sends each line read from standard input and prints each reply.\n"
    "\n"
    "options:\n"
    "  -h HOST     server address or name (default 127.0.0.1; IPv6 literals as ::1 or [::1])\n"
    "  -p PORT     client port (default 12000, Goloman in config.yaml)\n"
    "  -t SECONDS  time limit for connecting and answering: with a COMMAND for the whole run,\n"
    "              without one for the connect and then for each reply (default 10)\n"
    "  --help      this text\n"
    "\n"
    "exit status: 0 all answered, 1 some reply was `? `, 2 usage error, 3 connection problem,\n"
    "4 a reply could not be written to standard output\n";

constexpr int kExitInvalid = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnection = 3;
constexpr int kExitOutput = 4;
constexpr size_t kMaxReplyBytes = 64 * 1024 * 1024;  // far above any reply the spec allows

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "12000";
  int timeout_ms = 10000;
  std::string command;  // empty: interactive
};

int usage_error(const std::string& message) {
  std::fprintf(stderr, "herd-cli: %s\n(try herd-cli --help)\n", message.c_str());
  return kExitUsage;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// A duration in milliseconds as a person writes seconds: 100, 0.5, 1.25 (no trailing zeros or point).
std::string seconds_text(int ms) {
  std::string text = std::to_string(ms / 1000);
  if (int frac = ms % 1000; frac != 0) {
    std::string digits = std::to_string(1000 + frac).substr(1);  // three, leading zeros kept
    while (digits.back() == '0') digits.pop_back();
    text += '.' + digits;
  }
  return text;
}

// Whole milliseconds left before `deadline` (0 once it has passed), what poll() takes.
int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

std::string_view first_field(std::string_view line) {
  size_t b = 0;
  while (b < line.size() && is_space(line[b])) ++b;
  size_t e = b;
  while (e < line.size() && !is_space(line[e])) ++e;
  return line.substr(b, e - b);
}

// One connection to the server, with a receive buffer. The socket is non-blocking from the start so
// that the connect, every send and every read wait in poll() against the caller's deadline: a blocking
// connect() to a listener whose accept queue is full waits out the kernel's SYN retries (about two
// minutes), and a blocking send() waits for as long as the server does not read.
class Link {
 public:
  explicit Link(const Options& o) : o_(o) {}
  ~Link() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool open(Clock::time_point deadline, std::string* error) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = ::getaddrinfo(o_.host.c_str(), o_.port.c_str(), &hints, &found);
    if (rc != 0) {
      *error = o_.host + ": " + ::gai_strerror(rc);
      return false;
    }
    int count = 0;
    for (addrinfo* a = found; a; a = a->ai_next) ++count;
    std::string last = "no address";
    bool timed_out = false;
    for (addrinfo* a = found; a && fd_ < 0 && ms_left(deadline) > 0; a = a->ai_next, --count) {
      // Each address gets an equal share of what is left, so one that never answers (a dropped SYN)
      // cannot use up the time of those after it; the last one gets all the rest, and one refused at
      // once leaves its share to the others.
      auto until = Clock::now() + (deadline - Clock::now()) / count;
      int fd = connect_within(a, until, &last, &timed_out);
      if (fd >= 0) fd_ = fd;
    }
    ::freeaddrinfo(found);
    if (fd_ >= 0) return true;
    *error = "cannot connect to " + where();
    *error += timed_out || ms_left(deadline) == 0 ? " within " + seconds_text(o_.timeout_ms) + " s"
                                                  : ": " + last;
    return false;
  }

  bool send_line(std::string_view line, Clock::time_point deadline, std::string* error) {
    std::string out(line);
    out.push_back('\n');
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::send(fd_, out.data() + done, out.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // The server is not reading: wait for room, but no longer than the exchange may take.
        int left = ms_left(deadline);
        if (left == 0) {
          *error = "could not send the command within " + seconds_text(o_.timeout_ms) + " s";
          return false;
        }
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, left);
        continue;
      }
      if (n < 0) {
        *error = std::string("send failed: ") + std::strerror(errno);
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything up to and including `marker`, read by `deadline`.
  bool read_until(std::string_view marker, Clock::time_point deadline, std::string* out, std::string* error) {
    size_t from = 0;
    for (;;) {
      size_t at = buf_.find(marker, from);
      if (at != std::string::npos) {
        *out = buf_.substr(0, at + marker.size());
        buf_.erase(0, at + marker.size());
        return true;
      }
      from = buf_.size() >= marker.size() ? buf_.size() - marker.size() + 1 : 0;
      if (buf_.size() > kMaxReplyBytes) {
        *error = "reply larger than " + std::to_string(kMaxReplyBytes) + " bytes";
        return false;
      }
      int left = ms_left(deadline);
      if (left == 0) {
        *error = "no complete reply within " + seconds_text(o_.timeout_ms) + " s";
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      int ready = ::poll(&p, 1, left);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n < 0) {
        *error = std::string("receive failed: ") + std::strerror(errno);
        return false;
      }
      if (n == 0) {
        *error = "the server closed the connection";
        return false;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  // HOST:PORT, with an IPv6 literal in brackets so that its colons do not run into the port's.
  std::string where() const {
    bool v6 = o_.host.find(':') != std::string::npos;
    return (v6 ? "[" + o_.host + "]" : o_.host) + ":" + o_.port;
  }

  // A connected non-blocking socket to `a`, or -1 with `*error` (and `*timed_out` when `until` passed
  // first).
  static int connect_within(const addrinfo* a, Clock::time_point until, std::string* error, bool* timed_out) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      *error = std::strerror(errno);
      return -1;
    }
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
      *error = std::strerror(errno);
      ::close(fd);
      return -1;
    }
    for (;;) {
      int left = ms_left(until);
      if (left == 0) {
        *timed_out = true;
        ::close(fd);
        return -1;
      }
      pollfd p{fd, POLLOUT, 0};
      int ready = ::poll(&p, 1, left);
      if (ready < 0 && errno != EINTR) {
        *error = std::strerror(errno);
        ::close(fd);
        return -1;
      }
      if (ready <= 0) continue;
      // Writable means the handshake ended; SO_ERROR says how.
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0) return fd;
      *error = std::strerror(err);
      ::close(fd);
      return -1;
    }
  }

  const Options& o_;
  int fd_ = -1;
  std::string buf_;
};

enum class Outcome { kAnswered, kInvalid, kFailed, kNotPrinted };

// Sends one command line and prints its reply to stdout; all of it, a WHATSAT's JSON included, by
// `deadline`.
Outcome run_command(Link& link, std::string_view line, Clock::time_point deadline) {
  std::string error, reply;
  if (!link.send_line(line, deadline, &error) || !link.read_until("\n", deadline, &reply, &error)) {
    std::fprintf(stderr, "herd-cli: %s\n", error.c_str());
    return Outcome::kFailed;
  }
  if (first_field(line) == "WHATSAT" && reply.rfind("AT ", 0) == 0) {
    std::string json;
    if (!link.read_until("\n\n", deadline, &json, &error)) {
      std::fprintf(stderr, "herd-cli: %s\n", error.c_str());
      return Outcome::kFailed;
    }
    json.pop_back();  // the blank line that ends the reply
    reply += json;
  }
  // A reply that did not reach standard output is not an answer to report success for.
  if (std::fwrite(reply.data(), 1, reply.size(), stdout) != reply.size() || std::fflush(stdout) != 0) {
    std::fprintf(stderr, "herd-cli: cannot write the reply to standard output: %s\n", std::strerror(errno));
    return Outcome::kNotPrinted;
  }
  return reply.rfind("? ", 0) == 0 ? Outcome::kInvalid : Outcome::kAnswered;
}

int parse_options(int argc, char** argv, Options* o) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "-h" || a == "-p" || a == "-t") {
      if (i + 1 >= argc) return usage_error(std::string(a) + " needs a value");
      std::string_view v = argv[++i];
      if (a == "-h") {
        o->host = reactor::unbracket_host(v);  // "[::1]" as in the config and in URLs
      } else if (a == "-p") {
        if (!all_digits(v) || v.size() > 5 || std::atoi(std::string(v).c_str()) < 1 ||
            std::atoi(std::string(v).c_str()) > 65535) {
          return usage_error("-p: expected a port from 1 to 65535, got '" + std::string(v) + "'");
        }
        o->port = v;
      } else {
        if (!all_digits(v) || v.size() > 6 || std::atoi(std::string(v).c_str()) < 1) {
          return usage_error("-t: expected a whole number of seconds from 1, got '" + std::string(v) + "'");
        }
        o->timeout_ms = std::atoi(std::string(v).c_str()) * 1000;
      }
      continue;
    }
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() > 1 && a[0] == '-') return usage_error("unknown option '" + std::string(a) + "'");
    break;
  }
  const bool given = i < argc;
  for (; i < argc; ++i) {
    if (!o->command.empty()) o->command.push_back(' ');
    o->command += argv[i];
  }
  if (o->command.find('\n') != std::string::npos) return usage_error("a command is one line");
  // The server ignores a blank line, so no answer would come: say so now rather than wait for one
  // (and never take "" for "read standard input").
  if (given && first_field(o->command).empty()) return usage_error("the command is blank");
  return -1;  // go on
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = parse_options(argc, argv, &o); rc >= 0) return rc;

  const auto limit = std::chrono::milliseconds(o.timeout_ms);
  // One deadline for the connect and, with a COMMAND, for its exchange too: -t bounds the whole run.
  const auto deadline = Clock::now() + limit;
  Link link(o);
  std::string error;
  if (!link.open(deadline, &error)) {
    std::fprintf(stderr, "herd-cli: %s\n", error.c_str());
    return kExitConnection;
  }
  if (!o.command.empty()) {
    switch (run_command(link, o.command, deadline)) {
      case Outcome::kAnswered: return 0;
      case Outcome::kInvalid: return kExitInvalid;
      case Outcome::kFailed: return kExitConnection;
      case Outcome::kNotPrinted: return kExitOutput;
    }
  }

  const bool prompt = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  int status = 0;
  std::string line;
  for (;;) {
    if (prompt) {
      std::printf("%s:%s> ", o.host.c_str(), o.port.c_str());
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (first_field(line).empty()) continue;  // the server ignores blank lines: nothing to wait for
    Outcome out = run_command(link, line, Clock::now() + limit);
    if (out == Outcome::kFailed) return kExitConnection;
    if (out == Outcome::kNotPrinted) return kExitOutput;
    if (out == Outcome::kInvalid) status = kExitInvalid;
  }
  if (prompt) std::printf("\n");
  return status;
}
