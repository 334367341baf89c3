#include "base/progress.h"

#include <unistd.h>

#include <cstdio>

namespace lowbit {

Progress::Progress(std::string label, int64_t total, std::string unit, bool quiet)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(!quiet && ::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\r\033[K");
}

void Progress::Advance(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  Draw();
}

void Progress::Draw() {
  const double secs = std::chrono::duration<double>(last_draw_ - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done_) / secs : 0.0;
  char eta[32] = "?";
  if (rate > 0) {
    const double left = static_cast<double>(total_ - done_) / rate;
    std::snprintf(eta, sizeof(eta), "%.0fs", left);
  }
  std::fprintf(stderr, "\r\033[K%s  %lld/%lld %s  %.1f/s  ETA %s%s%s", label_.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate,
               eta, note_.empty() ? "" : "  ", note_.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace lowbit
