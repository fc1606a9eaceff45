// Buffer: a growable byte queue (append at the back, consume from the front) without zero-filling,
// used for the unconsumed input and unsent output of a connection. Its capacity can be counted in a
// shared counter (account_to), so that a server knows the bytes buffered over all its connections.
// A failed allocation throws std::bad_alloc (the connection that owns the buffer catches it and
// closes). Not thread-safe (the counter is atomic).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

namespace reactor {

class Buffer {
 public:
  Buffer() = default;
  ~Buffer() {
    charge(-static_cast<int64_t>(cap_));
    std::free(data_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    swap(o);
    return *this;
  }

  // Counts this buffer's capacity, from now on, in *counter (shared with other buffers; may be null).
  void account_to(std::atomic<int64_t>* counter) {
    charge(-static_cast<int64_t>(cap_));
    account_ = counter;
    charge(static_cast<int64_t>(cap_));
  }

  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  size_t capacity() const { return cap_; }
  const char* data() const { return data_ + begin_; }
  std::string_view view() const { return {data_ + begin_, end_ - begin_}; }

  void append(std::string_view s) {
    std::memcpy(prepare(s.size()), s.data(), s.size());
    end_ += s.size();
  }
  // Room for at least n more bytes at the back; write them, then commit(written).
  char* prepare(size_t n) {
    if (cap_ - end_ < n) make_room(n);
    return data_ + end_;
  }
  void commit(size_t n) { end_ += n; }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  // Gives the memory back (an idle connection should hold none).
  void release() {
    charge(-static_cast<int64_t>(cap_));
    std::free(data_);
    data_ = nullptr;
    begin_ = end_ = cap_ = 0;
  }
  void swap(Buffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(begin_, o.begin_);
    std::swap(end_, o.end_);
    std::swap(cap_, o.cap_);
    std::swap(account_, o.account_);
  }

 private:
  void make_room(size_t n) {
    size_t used = end_ - begin_;
    if (begin_ > 0 && cap_ - used >= n && begin_ >= used) {
      // Enough room once the live bytes move to the front, and the move is cheap.
      std::memmove(data_, data_ + begin_, used);
      begin_ = 0;
      end_ = used;
      return;
    }
    if (n > static_cast<size_t>(PTRDIFF_MAX) - used) throw std::bad_alloc();  // no such object
    size_t want = used + n;
    size_t cap = cap_ ? cap_ : 256;
    while (cap < want && cap <= static_cast<size_t>(PTRDIFF_MAX) / 2) cap *= 2;
    char* p = cap >= want ? static_cast<char*>(std::malloc(cap)) : nullptr;  // (cap overflowed)
    if (!p) throw std::bad_alloc();
    if (used) std::memcpy(p, data_ + begin_, used);
    std::free(data_);
    data_ = p;
    charge(static_cast<int64_t>(cap) - static_cast<int64_t>(cap_));
    cap_ = cap;
    begin_ = 0;
    end_ = used;
  }

  void charge(int64_t delta) {
    if (account_ && delta) account_->fetch_add(delta, std::memory_order_relaxed);
  }

  char* data_ = nullptr;
  std::atomic<int64_t>* account_ = nullptr;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t cap_ = 0;
};

}  // namespace reactor
