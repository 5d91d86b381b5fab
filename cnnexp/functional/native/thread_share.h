// The calling thread's share of a parallel region's work: items [begin, end) of `total`, in equal contiguous
// blocks in thread order, so that sums made per thread and then added in thread order are reproducible.
#pragma once
#include <algorithm>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

struct ThreadShare {
    int id;
    int64_t begin, end;
};

static inline ThreadShare thread_share(int64_t total) {
    int id = 0, n = 1;
#ifdef _OPENMP
    id = omp_get_thread_num();
    n = omp_get_num_threads();
#endif
    const int64_t per = (total + n - 1) / n;
    return {id, std::min(total, id * per), std::min(total, (id + 1) * per)};
}
