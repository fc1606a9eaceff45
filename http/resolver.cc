// Resolver implementation: one worker thread, a job queue, answers queued on the asking loop.
#include "http/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

namespace http {

Resolver::~Resolver() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Resolver::resolve(reactor::EventLoop& loop, std::string host, uint16_t port, Done done) {
  std::unique_lock lock(mu_);
  if (stopping_ || jobs_.size() >= kMaxQueued) {
    lock.unlock();
    loop.queue([done = std::move(done), host] {
      done({}, "cannot resolve host '" + host + "': too many lookups waiting");
    });
    return;
  }
  jobs_.push_back(Job{&loop, std::move(host), port, std::move(done)});
  if (!worker_.joinable()) worker_ = std::thread([this] { run(); });
  lock.unlock();
  cv_.notify_one();
}

void Resolver::forget(reactor::EventLoop& loop) {
  std::lock_guard lock(mu_);
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    it = it->loop == &loop ? jobs_.erase(it) : it + 1;
  }
  if (busy_loop_ == &loop) busy_loop_ = nullptr;  // the worker drops its answer
}

void Resolver::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    busy_loop_ = job.loop;
    lock.unlock();

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* result = nullptr;
    std::string service = std::to_string(job.port);
    int rc = ::getaddrinfo(job.host.c_str(), service.c_str(), &hints, &result);
    Addresses addresses;
    std::string error;
    if (rc != 0) {
      error = "cannot resolve host '" + job.host + "': " + ::gai_strerror(rc);
    } else {
      for (addrinfo* a = result; a; a = a->ai_next) {
        if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
        reactor::SocketAddress addr;
        std::memcpy(&addr.storage, a->ai_addr, a->ai_addrlen);
        addr.length = a->ai_addrlen;
        addresses.push_back(addr);
      }
      ::freeaddrinfo(result);
      if (addresses.empty()) error = "cannot resolve host '" + job.host + "': no address";
    }

    lock.lock();
    // Queued under the lock, so forget() cannot return between the check and the queueing.
    if (busy_loop_ == job.loop && !stopping_) {
      job.loop->queue([done = std::move(job.done), addresses = std::move(addresses),
                       error = std::move(error)]() mutable { done(std::move(addresses), std::move(error)); });
    }
    busy_loop_ = nullptr;
  }
}

bool numeric_address(const std::string& host, uint16_t port, reactor::SocketAddress* out) {
  *out = reactor::SocketAddress{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->length = sizeof(sockaddr_in);
    return true;
  }
  *out = reactor::SocketAddress{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace http
