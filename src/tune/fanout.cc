#include "tune/fanout.h"

#include <cstdlib>

#ifdef LOWBIT_WITH_MPI
#include <mpi.h>
#endif

namespace lowbit {

Fanout& Fanout::Get() {
  static Fanout f;
  return f;
}

Fanout::Fanout() {
#ifdef LOWBIT_WITH_MPI
  // Only under a launcher: a plain run stays one process with no MPI set-up.
  if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr && std::getenv("PMI_SIZE") == nullptr) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#endif
}

std::vector<double> Fanout::Share(const std::vector<double>& values) const {
#ifdef LOWBIT_WITH_MPI
  if (size_ > 1) {
    std::vector<double> out(values.size());
    MPI_Allreduce(values.data(), out.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
    return out;
  }
#endif
  return values;
}

}  // namespace lowbit
