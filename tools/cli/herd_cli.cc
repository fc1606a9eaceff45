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
// Exit status: 0 when every command was answered and none with `? `; 1 when some reply was `? `;
// 2 for a usage error; 3 when the server cannot be reached, closes the connection or does not answer
// in time.
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

namespace {

constexpr const char* kUsage =
    "usage: herd-cli [-h HOST] [-p PORT] [-t SECONDS] [COMMAND...]\n"
    "\n"
    "Sends COMMAND (e.g. IAMAT kiwi +34.068930-118.445127 1520023934.918963997, or\n"
    "WHATSAT kiwi 10 5) to a herd server's client port and prints the reply. Without a COMMAND,\n"
    "sends each line read from standard input and prints each reply.\n"
    "\n"
    "options:\n"
    "  -h HOST     server address or name (default 127.0.0.1; IPv6 literals as ::1)\n"
    "  -p PORT     client port (default 12000, Goloman in config.yaml)\n"
    "  -t SECONDS  how long to wait for one reply (default 10)\n"
    "  --help      this text\n"
    "\n"
    "exit status: 0 all answered, 1 some reply was `? `, 2 usage error, 3 connection problem\n";

constexpr int kExitInvalid = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnection = 3;
constexpr size_t kMaxReplyBytes = 64 * 1024 * 1024;  // far above any reply the spec allows

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

std::string_view first_field(std::string_view line) {
  size_t b = 0;
  while (b < line.size() && is_space(line[b])) ++b;
  size_t e = b;
  while (e < line.size() && !is_space(line[e])) ++e;
  return line.substr(b, e - b);
}

// One connection to the server, with a receive buffer; every read has a deadline.
class Link {
 public:
  ~Link() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool open(const Options& o, std::string* error) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = ::getaddrinfo(o.host.c_str(), o.port.c_str(), &hints, &found);
    if (rc != 0) {
      *error = o.host + ": " + ::gai_strerror(rc);
      return false;
    }
    std::string last = "no address";
    for (addrinfo* a = found; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        fd_ = fd;
        break;
      }
      last = std::strerror(errno);
      ::close(fd);
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) *error = "cannot connect to " + o.host + " port " + o.port + ": " + last;
    return fd_ >= 0;
  }

  bool send_line(std::string_view line, std::string* error) {
    std::string out(line);
    out.push_back('\n');
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::send(fd_, out.data() + done, out.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        *error = std::string("send failed: ") + std::strerror(errno);
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything up to and including `marker`, read within `timeout_ms`.
  bool read_until(std::string_view marker, int timeout_ms, std::string* out, std::string* error) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
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
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        *error = "no complete reply within " + std::to_string(timeout_ms / 1000.0).substr(0, 4) + " s";
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
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
  int fd_ = -1;
  std::string buf_;
};

enum class Outcome { kAnswered, kInvalid, kFailed };

// Sends one command line and prints its reply to stdout.
Outcome run_command(Link& link, std::string_view line, const Options& o) {
  std::string error, reply;
  if (!link.send_line(line, &error) || !link.read_until("\n", o.timeout_ms, &reply, &error)) {
    std::fprintf(stderr, "herd-cli: %s\n", error.c_str());
    return Outcome::kFailed;
  }
  if (first_field(line) == "WHATSAT" && reply.rfind("AT ", 0) == 0) {
    std::string json;
    if (!link.read_until("\n\n", o.timeout_ms, &json, &error)) {
      std::fprintf(stderr, "herd-cli: %s\n", error.c_str());
      return Outcome::kFailed;
    }
    json.pop_back();  // the blank line that ends the reply
    reply += json;
  }
  std::fwrite(reply.data(), 1, reply.size(), stdout);
  std::fflush(stdout);
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
        o->host = v;
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

  Link link;
  std::string error;
  if (!link.open(o, &error)) {
    std::fprintf(stderr, "herd-cli: %s\n", error.c_str());
    return kExitConnection;
  }
  if (!o.command.empty()) {
    switch (run_command(link, o.command, o)) {
      case Outcome::kAnswered: return 0;
      case Outcome::kInvalid: return kExitInvalid;
      case Outcome::kFailed: return kExitConnection;
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
    Outcome out = run_command(link, line, o);
    if (out == Outcome::kFailed) return kExitConnection;
    if (out == Outcome::kInvalid) status = kExitInvalid;
  }
  if (prompt) std::printf("\n");
  return status;
}
