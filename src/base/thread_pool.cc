#include "base/thread_pool.h"

#include <chrono>

namespace lowbit {
namespace {

// How long an idle worker spins before sleeping on the condition variable.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void Chunk(int64_t n, int parts, int index, int64_t* begin, int64_t* end) {
  *begin = n * index / parts;
  *end = n * (index + 1) / parts;
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { Worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (workers_.empty() || n <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    pending_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1);
  }
  // A worker going to sleep registers under mu_ and then sees the new
  // generation, so only registered sleepers need the (system call) wake-up.
  if (sleeping_.load() > 0) cv_.notify_all();
  int64_t b, e;
  Chunk(n, threads(), 0, &b, &e);
  if (e > b) fn(b, e);
  // The other chunks end within microseconds: spin (yield is a system call,
  // slow on these VMs), yielding only after a long wait.
  for (int i = 0; pending_.load(std::memory_order_acquire) > 0; ++i) {
    if (i < (1 << 16)) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::Worker(int index) {
  uint64_t seen = 0;
  while (true) {
    // Spin, reading the clock only every 256 rounds (it is not free here).
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 1; generation_.load(std::memory_order_acquire) == seen; ++i) {
      CpuRelax();
      if (i % 256 == 0 && std::chrono::steady_clock::now() >= spin_until) break;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleeping_.fetch_add(1);
      cv_.wait(lock, [&] { return generation_.load() != seen; });
      sleeping_.fetch_sub(1);
    }
    seen = generation_.load();
    if (stop_) return;
    int64_t b, e;
    Chunk(n_, threads(), index, &b, &e);
    if (e > b) (*fn_)(b, e);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace lowbit
