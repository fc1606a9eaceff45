// LoopGroup implementation.
#include "reactor/loop_group.h"

#include <string>

#include "reactor/threads.h"

namespace reactor {

LoopGroup::LoopGroup(int count) {
  if (count < 1) count = 1;
  for (int i = 0; i < count; ++i) loops_.push_back(std::make_unique<EventLoop>(i));
}

LoopGroup::~LoopGroup() { stop(); }

void LoopGroup::start() {
  for (auto& loop : loops_) {
    EventLoop* l = loop.get();
    threads_.push_back(start_thread("loop-" + std::to_string(l->index()), [l] { l->run(); }));
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
