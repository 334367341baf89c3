// Fan-out of the tuner's independent measurements over MPI ranks, when lowbit
// is built with MPI (Debian's libopenmpi-dev) and started under mpirun: each
// rank measures the items it owns (item % size == rank) and every rank gets
// every item's values. Without MPI, or outside mpirun, one rank does all.
#ifndef LOWBIT_TUNE_FANOUT_H_
#define LOWBIT_TUNE_FANOUT_H_

#include <vector>

namespace lowbit {

class Fanout {
 public:
  // The process's ranks (MPI is initialised on first use under mpirun, and
  // finalised at exit).
  static Fanout& Get();
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool Owns(int item) const { return item % size_ == rank_; }
  // values: items x width, each rank's own items filled, the rest 0; returns
  // them filled on every rank (a sum over ranks).
  std::vector<double> Share(const std::vector<double>& values) const;

 private:
  Fanout();
  int rank_ = 0, size_ = 1;
};

}  // namespace lowbit

#endif  // LOWBIT_TUNE_FANOUT_H_
