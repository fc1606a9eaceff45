// Starting the process's own threads (loops, writers, the trimmer, the resolver): each gets its name,
// as `ps -L`, top and perf show it, and one that cannot be started says which it was. The usual
// cause is the process's thread limit (RLIMIT_NPROC, `ulimit -u`, or a container's pids.max), which
// std::thread reports as a bare "Resource temporarily unavailable".
#pragma once

#include <pthread.h>

#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace reactor {

// Runs `body` on a new thread named `name` (at most 15 bytes are kept). Throws std::system_error
// with the same code and the text "cannot start thread NAME: <reason>" when there is no thread.
template <class Body>
std::thread start_thread(const std::string& name, Body&& body) {
  try {
    return std::thread([name, body = std::forward<Body>(body)]() mutable {
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      body();
    });
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "cannot start thread " + name);
  }
}

// Whether `e` is a thread limit's refusal, for a hint to the operator.
inline bool at_thread_limit(const std::system_error& e) {
  return e.code() == std::errc::resource_unavailable_try_again;
}

}  // namespace reactor
