#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace lowbit {
namespace {

// Every index of every job is visited exactly once, by chunks that tile
// [0, n), whatever the job sizes and however many jobs follow one another
// (workers alternate between spinning and sleeping on the condition
// variable). Under TSan (scripts/sanitize) this also checks that a worker
// sees each job's function and size.
TEST(ThreadPool, EveryIndexOnceAcrossManyJobs) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<int> hits;
    for (int job = 0; job < 400; ++job) {
      const int64_t n = (job * 37) % 97;  // includes 0 and 1
      hits.assign(static_cast<size_t>(n), 0);
      std::atomic<int64_t> calls{0};
      pool.ParallelFor(n, [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LT(b, e);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
        calls.fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)], 1) << "job " << job << " index " << i;
      EXPECT_LE(calls.load(), threads);
    }
  }
}

// Workers that went to sleep between jobs are woken for the next one.
TEST(ThreadPool, WakesSleepingWorkers) {
  ThreadPool pool(3);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the spin
    std::vector<int64_t> sums(3, 0);
    pool.ParallelFor(3, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sums[static_cast<size_t>(i)] = i + 1;
    });
    EXPECT_EQ(sums, (std::vector<int64_t>{1, 2, 3}));
  }
}

}  // namespace
}  // namespace lowbit
