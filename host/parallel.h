// parallel.h: parallel_for, the OpenMP loop for bodies that may throw. An exception must not leave
// an OpenMP region (the runtime calls std::terminate: the "rusca: error: ..." and the checkpoint
// safety of main's handler are lost), so each body's exception is caught inside, the other
// iterations still run, and the first exception caught is rethrown after the loop.
#pragma once
#include <cstddef>
#include <exception>

namespace rusca {

template <class Body>
void parallel_for(size_t n, Body body) {
    std::exception_ptr first;
#pragma omp parallel for schedule(dynamic)
    for (size_t i = 0; i < n; i++) {
        try {
            body(i);
        } catch (...) {
#pragma omp critical(rusca_parallel_for)
            if (!first) first = std::current_exception();
        }
    }
    if (first) std::rethrow_exception(first);
}

}  // namespace rusca
