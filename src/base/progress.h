// A one-line progress report for long work (fitting, calibration, tuning):
// "label  12/56 fits  3.1/s  ETA 14s", redrawn in place on a terminal. Silent
// when stderr is not a terminal or when quiet, so logs and pipes stay clean.
#ifndef LOWBIT_BASE_PROGRESS_H_
#define LOWBIT_BASE_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace lowbit {

class Progress {
 public:
  // `total` units of work named `unit` ("fits", "batches").
  Progress(std::string label, int64_t total, std::string unit, bool quiet);
  ~Progress();  // clears the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Records that `n` more units are done; redraws at most ~10 times a second.
  void Advance(int64_t n = 1);
  bool enabled() const { return enabled_; }
  // Text shown after the ETA ("loss 0.41  val 90.2%"), from the next redraw.
  void SetNote(std::string note) { note_ = std::move(note); }

 private:
  void Draw();

  std::string label_, unit_, note_;
  int64_t total_, done_ = 0;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace lowbit

#endif  // LOWBIT_BASE_PROGRESS_H_
