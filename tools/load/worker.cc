// The generator's event loop: connecting, issuing requests, framing and checking replies,
// timeouts and reconnects, for the connections one thread owns.
#include "tools/load/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tools/load/herd_reply.h"
#include "tools/load/resp_reply.h"

namespace herd_load {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr int64_t kReconnectDelay = 100'000'000;  // 100 ms
constexpr int64_t kMaintainEvery = 10'000'000;    // 10 ms

// A reply for a report: printable bytes as they are, others escaped, cut at 300 bytes.
std::string escape(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 300; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += s.size() > 300 ? "\"..." : "\"";
  return out;
}

}  // namespace

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Worker::Worker(RunState* run, int thread_index, const std::vector<int>& connections, uint64_t quota)
    : run_(run),
      options_(*run->options),
      workload_(*run->workload),
      quota_(quota),
      limited_(run->options->requests > 0),
      timeout_ns_(static_cast<int64_t>(run->options->timeout * 1e9)) {
  stats_.max_samples = static_cast<size_t>(options_.show_errors);
  const uint32_t clients = workload_.clients();
  const uint32_t total = static_cast<uint32_t>(options_.connections);
  if (options_.rate > 0) interval_ns_ = static_cast<int64_t>(total * 1e9 / options_.rate);
  for (int g : connections) {
    auto c = std::make_unique<Connection>();
    const uint32_t gi = static_cast<uint32_t>(g);
    c->target_ = &options_.targets[gi % options_.targets.size()];
    make_address(c->target_->host, c->target_->port, &c->addr_);  // checked by main
    if (clients >= total) {
      c->first_ = gi;
      c->stride_ = total;
      c->count_ = (clients - gi + total - 1) / total;
    } else {
      c->first_ = gi % clients;
      c->count_ = 1;
    }
    if (options_.seed && (clients >= total || gi < clients))
      for (uint32_t i = 0; i < c->count_; ++i) c->seeds_.push_back(c->first_ + i * c->stride_);
    c->rng_ = 0x9E3779B97F4A7C15ull * (gi + 1) + static_cast<uint64_t>(thread_index);
    c->in_.resize(kReadChunk * 2);
    // Open loop: connection g's requests go out at start + g/R + i*C/R.
    c->next_due_ = options_.rate > 0 ? static_cast<int64_t>(gi * 1e9 / options_.rate) : 0;
    conns_.push_back(std::move(c));
  }
}

Worker::~Worker() {
  for (auto& c : conns_)
    if (c->fd_ >= 0) close(c->fd_);
  if (epfd_ >= 0) close(epfd_);
}

void Worker::set_events(Connection* c, uint32_t events) {
  epoll_event e{};
  e.events = events;
  e.data.ptr = c;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd_, &e);
}

void Worker::start_connect(Connection* c, int64_t now) {
  int fd = socket(c->addr_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    stats_.add_error(ErrorKind::kConnect, std::string("socket: ") + std::strerror(errno));
    c->retry_at_ = now + kReconnectDelay;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r = connect(fd, c->addr_.get(), c->addr_.length);
  if (r < 0 && errno != EINPROGRESS) {
    stats_.add_error(ErrorKind::kConnect, c->target_->host + ":" + std::to_string(c->target_->port) +
                                              ": " + std::strerror(errno));
    close(fd);
    c->retry_at_ = now + kReconnectDelay;
    return;
  }
  c->fd_ = fd;
  c->connecting_ = r < 0;
  epoll_event e{};
  e.events = c->connecting_ ? EPOLLOUT : EPOLLIN;
  e.data.ptr = c;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &e);
  if (!c->connecting_) on_connected(c, now);
}

void Worker::on_connected(Connection* c, int64_t now) {
  c->connecting_ = false;
  c->want_out_ = false;
  set_events(c, EPOLLIN);
  fill(c, now);
}

void Worker::drop(Connection* c, ErrorKind why, const std::string& detail, int64_t now) {
  // A timeout counts once per request in flight; other causes once, plus each lost request.
  if (why != ErrorKind::kTimeout)
    stats_.add_error(why, c->target_->host + ":" + std::to_string(c->target_->port) + ": " + detail);
  for (const Pending& p : c->pending_) {
    if (why == ErrorKind::kTimeout) stats_.add_error(why, describe(p) + " " + detail);
    else stats_.add_error(ErrorKind::kLost, describe(p));
    if (p.seed) run_->seeds_left.fetch_sub(1);
  }
  in_flight_ -= static_cast<int64_t>(c->pending_.size());
  c->pending_.clear();
  // Seeds that were in flight are gone; the clients stay unseeded (WHATSAT avoids them).
  if (c->fd_ >= 0) close(c->fd_);
  c->fd_ = -1;
  c->connecting_ = false;
  c->want_out_ = false;
  c->in_begin_ = c->in_end_ = 0;
  c->reply_scanned_ = 0;
  c->out_.clear();
  c->out_off_ = 0;
  c->retry_at_ = now + kReconnectDelay;
}

std::string Worker::describe(const Pending& p) const {
  std::string s = p.kind == RequestKind::kIamat ? "IAMAT " : "WHATSAT ";
  s += workload_.id(p.client);
  if (p.kind == RequestKind::kIamat) {
    char t[32];
    s += ' ';
    s += workload_.location(p.client);
    s += ' ';
    s.append(t, format_client_time(p.timestamp, t));
  }
  return s;
}

bool Worker::take_quota(int64_t intended) {
  if (!limited_ || intended < measure_start_) return true;
  if (quota_ == 0) return false;
  --quota_;
  return true;
}

void Worker::issue(Connection* c, int64_t intended, int64_t now, bool seed) {
  Pending p{};
  p.seed = seed;
  p.intended = intended;
  p.sent = now;
  if (seed) {
    p.client = c->seeds_[c->seed_next_++];
    p.kind = RequestKind::kIamat;
  } else {
    p.client = c->next_client();
    p.kind = RequestKind::kIamat;
    if (options_.whatsat_ratio > 0 && c->next_random() < options_.whatsat_ratio &&
        workload_.reported(p.client))
      p.kind = RequestKind::kWhatsat;
  }
  if (p.kind == RequestKind::kIamat) {
    p.timestamp = options_.protocol == Protocol::kRedis ? 0 : workload_.next_timestamp(p.client);
    workload_.append_iamat(&c->out_, p.client, p.timestamp);
  } else {
    workload_.append_whatsat(&c->out_, p.client);
  }
  c->pending_.push_back(p);
  ++in_flight_;
  ++stats_.sent;
}

void Worker::fill(Connection* c, int64_t now) {
  if (c->fd_ < 0 || c->connecting_) return;
  const size_t depth = static_cast<size_t>(options_.pipeline);
  if (start_ == 0) {
    while (c->seed_next_ < c->seeds_.size() && c->pending_.size() < depth) issue(c, now, now, true);
  } else if (now < end_) {
    if (interval_ns_ == 0) {
      while (c->pending_.size() < depth && take_quota(now)) issue(c, now, now, false);
    } else {
      while (c->next_due_ <= now && c->pending_.size() < depth && take_quota(c->next_due_)) {
        issue(c, c->next_due_, now, false);
        c->next_due_ += interval_ns_;
      }
    }
  }
  flush(c);
}

void Worker::flush(Connection* c) {
  while (c->out_off_ < c->out_.size()) {
    ssize_t w = send(c->fd_, c->out_.data() + c->out_off_, c->out_.size() - c->out_off_, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      drop(c, ErrorKind::kClosed, std::string("send: ") + std::strerror(errno), monotonic_ns());
      return;
    }
    c->out_off_ += static_cast<size_t>(w);
    stats_.bytes_out += static_cast<uint64_t>(w);
  }
  bool rest = c->out_off_ < c->out_.size();
  if (!rest) {
    c->out_.clear();
    c->out_off_ = 0;
  }
  if (rest != c->want_out_) {
    c->want_out_ = rest;
    set_events(c, rest ? EPOLLIN | EPOLLOUT : EPOLLIN);
  }
}

void Worker::on_event(Connection* c, uint32_t events, int64_t now) {
  if (c->connecting_) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      stats_.add_error(ErrorKind::kConnect, c->target_->host + ":" + std::to_string(c->target_->port) +
                                                ": " + std::strerror(err));
      close(c->fd_);
      c->fd_ = -1;
      c->connecting_ = false;
      c->retry_at_ = now + kReconnectDelay;
      return;
    }
    on_connected(c, now);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    read_replies(c, now);
    if (c->fd_ < 0) return;
  }
  if (events & EPOLLOUT) flush(c);
}

void Worker::read_replies(Connection* c, int64_t now) {
  if (c->in_.size() - c->in_end_ < kReadChunk) {
    if (c->in_begin_ > 0) {  // compact first
      std::memmove(c->in_.data(), c->in_.data() + c->in_begin_, c->in_end_ - c->in_begin_);
      c->in_end_ -= c->in_begin_;
      c->in_begin_ = 0;
    }
    if (c->in_.size() - c->in_end_ < kReadChunk) c->in_.resize(c->in_end_ + kReadChunk);
  }
  ssize_t r = read(c->fd_, c->in_.data() + c->in_end_, c->in_.size() - c->in_end_);
  if (r < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    drop(c, ErrorKind::kClosed, std::string("read: ") + std::strerror(errno), now);
    return;
  }
  if (r == 0) {
    drop(c, ErrorKind::kClosed, "the server closed the connection", now);
    return;
  }
  c->in_end_ += static_cast<size_t>(r);
  stats_.bytes_in += static_cast<uint64_t>(r);
  if (!process_replies(c, now)) return;
  fill(c, now);
}

bool Worker::process_replies(Connection* c, int64_t now) {
  while (c->in_begin_ < c->in_end_) {
    std::string_view buf(c->in_.data() + c->in_begin_, c->in_end_ - c->in_begin_);
    if (c->pending_.empty()) {
      drop(c, ErrorKind::kMismatch, "reply with no request in flight: " + escape(buf), now);
      return false;
    }
    const Pending p = c->pending_.front();
    size_t len = 0;
    ErrorKind err = ErrorKind::kNone;
    bool stale = false, status_ok = true;
    size_t results = 0;
    std::string problem;
    if (options_.protocol == Protocol::kRedis) {
      RespValue v;
      size_t pos = 0;
      RespParse pr = parse_resp(buf, &pos, &v);
      if (pr == RespParse::kIncomplete) break;
      if (pr == RespParse::kMalformed) {
        drop(c, ErrorKind::kMalformed, "unparseable RESP after " + describe(p) + ": " + escape(buf), now);
        return false;
      }
      len = pos;
      err = p.kind == RequestKind::kIamat ? check_geoadd_reply(v)
                                          : check_geosearch_reply(v, workload_.bound(), &results);
    } else {
      Frame f = options_.protocol == Protocol::kHerd && p.kind == RequestKind::kWhatsat
                    ? frame_whatsat(buf, &len, &c->reply_scanned_)
                    : frame_line(buf, &len);
      if (f == Frame::kIncomplete) break;
      if (f == Frame::kOversize) {
        drop(c, ErrorKind::kOversize, "after " + describe(p) + ": " + escape(buf), now);
        return false;
      }
      std::string_view reply = buf.substr(0, len);
      if (options_.protocol == Protocol::kHerd) {
        if (p.kind == RequestKind::kIamat) {
          char t[32];
          std::string_view time(t, format_client_time(p.timestamp, t));
          err = check_iamat_reply(reply, workload_.id(p.client), workload_.location(p.client), time,
                                  c->target_->name, &stale);
        } else {
          WhatsatInfo info;
          err = check_whatsat_reply(reply, workload_.id(p.client), workload_.bound(), &info,
                                    whatsat_memo_.slot(p.client));
          problem = std::move(info.problem);
          results = info.results;
          status_ok = info.status_ok;
        }
      }
    }
    c->pending_.pop_front();
    --in_flight_;
    if (run_->ack_fd >= 0 && err == ErrorKind::kNone && !stale && p.kind == RequestKind::kIamat) {
      note_ack(buf.substr(0, len));
    }
    if (err != ErrorKind::kNone) {
      if (problem.empty()) problem = describe(p);
      else problem = describe(p) + " (" + problem + ")";
      stats_.add_error(err, problem + " -> " + escape(buf.substr(0, len)));
    }
    account(p, err, now, stale, results, status_ok);
    c->in_begin_ += len;
    c->reply_scanned_ = 0;
  }
  if (c->in_begin_ == c->in_end_) c->in_begin_ = c->in_end_ = 0;
  return true;
}

void Worker::account(const Pending& p, ErrorKind err, int64_t now, bool stale, size_t results,
                     bool status_ok) {
  last_reply_ = now;
  if (err == ErrorKind::kNone && p.kind == RequestKind::kIamat) {
    workload_.mark_reported(p.client);
  }
  if (p.seed) {
    ++stats_.seeded;
    run_->seeds_left.fetch_sub(1);
    return;
  }
  if (start_ != 0 && now >= measure_start_ && now < end_) ++stats_.arrived;
  if (p.intended < measure_start_) return;  // warmup
  ++stats_.replies;
  const uint64_t latency = static_cast<uint64_t>(std::max<int64_t>(0, now - p.intended));
  stats_.latency.record(latency);
  (p.kind == RequestKind::kIamat ? stats_.latency_iamat : stats_.latency_whatsat).record(latency);
  if (err != ErrorKind::kNone) return;
  ++stats_.ok;
  if (p.kind == RequestKind::kIamat) {
    ++stats_.iamat_ok;
    if (stale) ++stats_.stale;
  } else {
    ++stats_.whatsat_ok;
    stats_.results_total += results;
    if (!status_ok) ++stats_.status_not_ok;
  }
}

void Worker::note_ack(std::string_view reply) {
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.remove_suffix(1);
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  acks_ += std::to_string(static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
  acks_ += ' ';
  acks_.append(reply);
  acks_ += '\n';
  if (acks_.size() >= 64 * 1024) write_acks();
}

void Worker::write_acks() {
  // Whole lines per write() on an O_APPEND file: lines from several workers never interleave.
  // A failed or short write loses acknowledgements (a checker of the file would then miss what they
  // vouch for): the first error is kept, and the run fails with it.
  size_t off = 0;
  while (off < acks_.size()) {
    ssize_t w = write(run_->ack_fd, acks_.data() + off, acks_.size() - off);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      int expected = 0;
      run_->ack_errno.compare_exchange_strong(expected, w < 0 ? errno : ENOSPC);
      break;
    }
    off += static_cast<size_t>(w);
  }
  acks_.clear();
}

void Worker::maintain(int64_t now) {
  for (auto& cp : conns_) {
    Connection* c = cp.get();
    if (c->fd_ < 0) {
      if (now >= c->retry_at_ && (start_ == 0 ? c->seed_next_ < c->seeds_.size() : now < end_))
        start_connect(c, now);
      continue;
    }
    if (!c->pending_.empty() && now - c->pending_.front().sent > timeout_ns_) {
      char detail[64];
      std::snprintf(detail, sizeof detail, "(no reply in %g s)", options_.timeout);
      drop(c, ErrorKind::kTimeout, detail, now);
      continue;
    }
    fill(c, now);
  }
}

void Worker::run() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  int64_t now = monotonic_ns();
  last_reply_ = now;
  const int64_t stall_ns = 2 * timeout_ns_ + 1'000'000'000;
  for (auto& c : conns_) {
    // Connections with nothing to seed wait for the start, except when there is no seeding.
    if (!options_.seed || !c->seeds_.empty()) start_connect(c.get(), now);
  }
  int64_t next_maintain = now;
  epoll_event events[256];
  for (;;) {
    now = monotonic_ns();
    if (run_->abort.load(std::memory_order_relaxed)) break;
    if (start_ == 0) {
      int64_t s = run_->start_ns.load();
      if (s == 0 && run_->seeds_left.load() <= 0) {
        // Seeding is over: give floods between several targets a moment, then start.
        int64_t want = now + (options_.targets.size() > 1 ? 200'000'000 : 0);
        run_->start_ns.compare_exchange_strong(s, want);
        s = run_->start_ns.load();
      }
      if (s != 0 && now >= s) {
        start_ = s;
        measure_start_ = s + run_->warmup_ns();
        end_ = measure_start_ + run_->duration_ns();
        for (auto& c : conns_) c->next_due_ += s;
        next_maintain = now;  // connect and fill at once
      }
    }
    if (start_ != 0) {
      if (now >= end_) break;
      if (limited_ && quota_ == 0 && in_flight_ == 0) break;
    }
    if (now - last_reply_ > stall_ns && (in_flight_ > 0 || start_ == 0 ||
                                         std::any_of(conns_.begin(), conns_.end(),
                                                     [](const auto& c) { return c->fd_ < 0; }))) {
      if (!run_->abort_claimed.exchange(true))
        run_->abort_reason = "no reply for " + std::to_string((now - last_reply_) / 1'000'000'000) + " s";
      run_->abort.store(true);
      break;
    }
    if (now >= next_maintain) {
      maintain(now);
      next_maintain = now + kMaintainEvery;
    }
    // Sleep until the next thing to do: maintenance, the start, an open-loop send, or the end.
    int64_t wake = next_maintain;
    if (start_ != 0) {
      wake = std::min(wake, end_);
      if (interval_ns_ > 0 && (!limited_ || quota_ > 0))
        for (auto& c : conns_)
          if (c->fd_ >= 0 && !c->connecting_ && c->pending_.size() < static_cast<size_t>(options_.pipeline))
            wake = std::min(wake, c->next_due_);
    }
    int64_t wait = std::max<int64_t>(0, wake - now);
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    int n = epoll_pwait2(epfd_, events, 256, &ts, nullptr);
    if (n < 0 && errno != EINTR) break;
    now = monotonic_ns();
    if (start_ != 0 && now >= end_) break;  // replies after the end are not measured
    for (int i = 0; i < n; ++i) {
      Connection* c = static_cast<Connection*>(events[i].data.ptr);
      if (c->fd_ >= 0) on_event(c, events[i].events, now);
    }
    if (interval_ns_ > 0 && start_ != 0)
      for (auto& c : conns_)
        if (c->next_due_ <= now) fill(c.get(), now);
    progress_replies_.store(stats_.replies, std::memory_order_relaxed);
    progress_errors_.store(stats_.total_errors(), std::memory_order_relaxed);
  }
  write_acks();
  stats_.unfinished = static_cast<uint64_t>(std::max<int64_t>(0, in_flight_));
  end_ns_ = std::min(monotonic_ns(), end_ > 0 ? end_ : monotonic_ns());
  progress_replies_.store(stats_.replies);
  progress_errors_.store(stats_.total_errors());
  run_->finished.fetch_add(1);
}

}  // namespace herd_load
