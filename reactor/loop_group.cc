// LoopGroup implementation.
#include "reactor/loop_group.h"

#include <pthread.h>

#include <string>

namespace reactor {

LoopGroup::LoopGroup(int count) {
  if (count < 1) count = 1;
  for (int i = 0; i < count; ++i) loops_.push_back(std::make_unique<EventLoop>(i));
}

LoopGroup::~LoopGroup() { stop(); }

void LoopGroup::start() {
  for (auto& loop : loops_) {
    EventLoop* l = loop.get();
    threads_.emplace_back([l] {
      std::string name = "loop-" + std::to_string(l->index());
      pthread_setname_np(pthread_self(), name.c_str());
      l->run();
    });
  }
}

void LoopGroup::stop() {
  for (auto& loop : loops_) loop->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace reactor
