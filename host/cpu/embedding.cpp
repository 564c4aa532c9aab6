// embedding.cpp: token embedding lookup and its backward (a scatter-add into the table rows).
// The backward is the one op where many rows of dout land on the same output row (repeated
// tokens), so instead of threads over tokens (a race) each thread owns a slice of columns and adds
// the tokens in order: deterministic and race-free.
#include <algorithm>

#include "host/cpu/ops.h"

namespace rusca::cpu {

// out[n, :] = wte[tokens[n], :]        out [N, C], wte [V, C]
template <typename Real>
void embedding_forward(Real* out, const int* tokens, const Real* wte, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const Real* row = wte + (size_t)tokens[n] * C;
        std::copy(row, row + C, out + (size_t)n * C);
    }
}

// dwte[tokens[n], :] += dout[n, :]
template <typename Real>
void embedding_backward(Real* dwte, const Real* dout, const int* tokens, int N, int C) {
    constexpr int CB = 64;  // columns per work item: a cache line or more of every row
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += CB) {
        const int c1 = std::min(C, c0 + CB);
        for (int n = 0; n < N; n++) {  // tokens in order, so repeated tokens sum in a fixed order
            Real* drow = dwte + (size_t)tokens[n] * C;
            const Real* g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) drow[c] += g[c];
        }
    }
}

template void embedding_forward<float>(float*, const int*, const float*, int, int);
template void embedding_forward<double>(double*, const int*, const double*, int, int);
template void embedding_backward<float>(float*, const float*, const int*, int, int);
template void embedding_backward<double>(double*, const double*, const int*, int, int);

}  // namespace rusca::cpu
