// A fixed pool for data-parallel loops. Workers spin for a short while after a
// job before sleeping, because a sleeping pool takes milliseconds to wake on
// these VMs while a layer takes microseconds.
#ifndef LOWBIT_BASE_THREAD_POOL_H_
#define LOWBIT_BASE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lowbit {

// Whether `work` (about that many simple operations: products, byte reads)
// is worth another thread: waking and joining one costs a few microseconds on
// these VMs, about a million operations' time.
inline bool WorthSplitting(int64_t work) { return work >= (int64_t{1} << 20); }

class ThreadPool {
 public:
  // `threads` >= 1 counts the calling thread: threads - 1 workers start.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on contiguous chunks covering [0, n), one chunk per
  // thread (the caller runs one); returns when all are done. Not reentrant.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void Worker(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleeping_{0};  // workers waiting on cv_ (the caller notifies only then)
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace lowbit

#endif  // LOWBIT_BASE_THREAD_POOL_H_
