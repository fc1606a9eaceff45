// Resolver implementation: numeric hosts at once, names on a detached thread, answers through the
// loop's task queue behind a mailbox that the Resolver closes when it goes away.
#include "reactor/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <mutex>
#include <thread>

namespace reactor {

// Shared by the Resolver and its lookup threads. `loop` is null once the Resolver is gone; a lookup
// thread queues its answer only while holding `mu` and seeing a loop, so it never touches a loop
// (or a Resolver) that no longer exists.
struct Resolver::Mailbox {
  std::mutex mu;
  EventLoop* loop;  // guarded by mu
  bool open = true; // loop thread only: the Resolver is alive
};

bool is_numeric_host(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

Resolver::Resolver(EventLoop& loop) : loop_(loop), mailbox_(std::make_shared<Mailbox>()) {
  mailbox_->loop = &loop;
}

Resolver::~Resolver() {
  std::lock_guard lock(mailbox_->mu);
  mailbox_->loop = nullptr;
  mailbox_->open = false;
}

void Resolver::resolve(const std::string& host, uint16_t port, DoneFn done) {
  loop_.assert_in_loop();
  std::shared_ptr<Mailbox> box = mailbox_;
  if (is_numeric_host(host)) {
    SocketAddress addr;
    std::string error;
    bool ok = reactor::resolve(host, port, &addr, &error);  // numeric: no lookup, no wait
    loop_.defer([box, done = std::move(done), ok, addr, error] {
      if (box->open) done(ok, addr, error);
    });
    return;
  }
  std::thread([box, host, port, done = std::move(done)]() mutable {
    SocketAddress addr;
    std::string error;
    bool ok = reactor::resolve(host, port, &addr, &error);
    std::lock_guard lock(box->mu);
    if (!box->loop) return;
    box->loop->queue([box, done = std::move(done), ok, addr, error] {
      if (box->open) done(ok, addr, error);
    });
  }).detach();
}

}  // namespace reactor
