// Internal invariants. A failed check is a lowbit bug, never a user error: it
// prints file:line and aborts. User errors return a Status instead.
#ifndef LOWBIT_BASE_CHECK_H_
#define LOWBIT_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define LOWBIT_CHECK(cond)                                                   \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                   \
      std::abort();                                                          \
    }                                                                        \
  } while (0)

#endif  // LOWBIT_BASE_CHECK_H_
