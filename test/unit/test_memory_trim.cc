// MemoryTrimmer: when a burst's memory is given back (TrimPolicy), that the thread runs the policy
// and counts what the trim returns, and that a real malloc_trim gives freed pages back.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "herd/memory_trim.h"
#include "test/unit/wait_until.h"

namespace {

constexpr uint64_t kMiB = 1 << 20;

// Feeds the running totals to `policy`; returns the indexes at which it said to trim.
std::vector<size_t> trims_at(herd::TrimPolicy& policy, const std::vector<uint64_t>& totals) {
  std::vector<size_t> at;
  for (size_t i = 0; i < totals.size(); ++i) {
    if (policy.observe(totals[i])) at.push_back(i);
  }
  return at;
}

// Running totals from work per sample, continuing from `start`.
std::vector<uint64_t> running(uint64_t start, const std::vector<uint64_t>& per_sample) {
  std::vector<uint64_t> out;
  for (uint64_t n : per_sample) out.push_back(start += n);
  return out;
}

}  // namespace

TEST_SUITE("memory trim") {

TEST_CASE("TrimPolicy: trims once after a burst, when the work has stayed calm") {
  herd::TrimPolicy policy(1000, 3);
  // The first sample is the baseline (work before the trimmer started does not count). Then 1,200
  // units at up to 800 per sample, then three calm samples: the third trims, and only it.
  auto at = trims_at(policy, running(5000, {0, 400, 800, 0, 0, 0, 0, 0}));
  REQUIRE(at.size() == 1);
  CHECK(at[0] == 5);
  // The count started again from the trim: staying calm never trims again.
  CHECK(trims_at(policy, std::vector<uint64_t>(50, 6200)).empty());
  // A second burst trims again; a trickle of a 64th of the peak or less counts as calm.
  at = trims_at(policy, running(6200, {6400, 100, 30, 100, 0}));
  REQUIRE(at.size() == 1);
  CHECK(at[0] == 3);
}

TEST_CASE("TrimPolicy: exactly a burst of work is enough to trim") {
  // The contract is "at least `burst` units of work": a burst of exactly 1,000 counts, 999 does not.
  {
    herd::TrimPolicy policy(1000, 2);
    auto at = trims_at(policy, running(0, {0, 1000, 0, 0}));
    REQUIRE(at.size() == 1);
    CHECK(at[0] == 3);
  }
  {
    herd::TrimPolicy policy(1000, 2);
    CHECK(trims_at(policy, running(0, {0, 999, 0, 0, 0, 0})).empty());
  }
}

TEST_CASE("TrimPolicy: no trim for small bursts, steady load, or a lull too short") {
  SUBCASE("less work than a burst") {
    herd::TrimPolicy policy(1000, 2);
    CHECK(trims_at(policy, running(0, {0, 300, 300, 300, 0, 0, 0, 0, 0})).empty());
  }
  SUBCASE("moderate load after a burst: an eighth of the peak is not calm") {
    herd::TrimPolicy policy(1000, 2);
    CHECK(trims_at(policy, running(0, {0, 8000, 1000, 1000, 1000, 1000, 1000, 1000})).empty());
  }
  SUBCASE("steady load: the rate stays near its peak") {
    herd::TrimPolicy policy(1000, 2);
    CHECK(trims_at(policy, running(0, {0, 900, 1000, 700, 950, 600, 1000, 800, 900})).empty());
    CHECK(policy.peak_rate() == 1000);
  }
  SUBCASE("a lull shorter than the calm samples") {
    herd::TrimPolicy policy(1000, 3);
    CHECK(trims_at(policy, running(0, {0, 2000, 0, 0, 900, 0, 0, 1000})).empty());
  }
  SUBCASE("the total going backwards (a counter reset) is no work, not a wrap") {
    herd::TrimPolicy policy(1000, 1);
    CHECK(trims_at(policy, {500, 100, 100}).empty());
  }
}

}  // TEST_SUITE

TEST_SUITE("memory trim concurrency") {

TEST_CASE("MemoryTrimmer: samples on its thread, trims after a burst, counts what the trim returned") {
  std::atomic<uint64_t> work{0};
  std::atomic<int> calls{0};
  herd::MemoryTrimmer trimmer([&] { return work.load(); }, std::chrono::milliseconds(1), 1000, 3, [&] {
    calls.fetch_add(1);
    return uint64_t{5000};
  });
  trimmer.start();
  // Idle: nothing to give back.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(trimmer.trims() == 0);
  // A burst, then calm.
  work += 5000;
  REQUIRE(testing_wait::wait_until([&] { return trimmer.trims() == 1; }, std::chrono::seconds(10),
                                   std::chrono::milliseconds(1)));
  CHECK(calls.load() == 1);
  CHECK(trimmer.released_bytes() == 5000);
  // Calm afterwards: no further trims.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(trimmer.trims() == 1);
  trimmer.stop();
  trimmer.stop();  // idempotent
}

}  // TEST_SUITE

TEST_SUITE("memory trim") {

TEST_CASE("MemoryTrimmer::trim_heap gives freed heap pages back to the kernel") {
  // Many blocks below the mmap threshold, written so they are resident, then freed all but the last
  // (which keeps the heap top in place: the memory is free inside the heap, not at its end).
  std::vector<char*> blocks;
  for (int i = 0; i < 64 * 16; ++i) {
    char* p = static_cast<char*>(std::malloc(60 * 1024));
    REQUIRE(p != nullptr);
    std::memset(p, 1, 60 * 1024);
    blocks.push_back(p);
  }
  for (size_t i = 0; i + 1 < blocks.size(); ++i) std::free(blocks[i]);
  const uint64_t released = herd::MemoryTrimmer::trim_heap();
  std::free(blocks.back());
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers bring their own allocator, which malloc_trim does not reach.
  (void)released;
#else
  CHECK(released >= 32 * kMiB);  // about 60 MiB were freed
#endif
}

}  // TEST_SUITE
