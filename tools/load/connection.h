// Connection: one generator TCP connection's state: socket, buffers, the FIFO of requests in
// flight (replies come back in order), the clients it speaks for, and its open-loop schedule.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "tools/load/arg_parse.h"
#include "tools/load/options.h"
#include "tools/load/workload.h"

namespace herd_load {

// A request in flight, enough to judge its reply and time it.
struct Pending {
  RequestKind kind;
  bool seed;
  uint32_t client;
  uint64_t timestamp;  // IAMAT client time (ns since epoch)
  int64_t intended;    // monotonic ns when it was meant to go out (latency is measured from here)
  int64_t sent;        // monotonic ns when it went out (the timeout runs from here)
};

struct Connection {
  const Target* target_ = nullptr;
  SocketAddress addr_;   // IPv4 or IPv6
  int fd_ = -1;
  bool connecting_ = false;
  bool want_out_ = false;     // EPOLLOUT registered
  int64_t retry_at_ = 0;      // when fd_ < 0: next connect attempt
  std::vector<char> in_;
  size_t in_begin_ = 0, in_end_ = 0;
  size_t reply_scanned_ = 0;  // frame_whatsat's progress through the reply at in_begin_
  std::string out_;
  size_t out_off_ = 0;
  std::deque<Pending> pending_;
  // The clients this connection speaks for: first_ + i*stride_ for i < count_.
  uint32_t first_ = 0, stride_ = 1, count_ = 1, cursor_ = 0;
  std::vector<uint32_t> seeds_;  // clients still to seed
  size_t seed_next_ = 0;
  int64_t next_due_ = -1;        // open loop: intended time of the next request (-1: unset)
  uint64_t rng_ = 0;

  uint32_t next_client() {
    uint32_t k = first_ + (cursor_ % count_) * stride_;
    ++cursor_;
    return k;
  }

  // xorshift64*: uniform in [0, 1).
  double next_random() {
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return static_cast<double>((rng_ * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
  }
};

}  // namespace herd_load
