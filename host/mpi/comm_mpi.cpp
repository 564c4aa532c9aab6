// comm_mpi.cpp: the MPI communicator, built as the plugin build/lib/librusca_mpi.so (Makefile) so
// that rusca itself does not link libmpi: it dlopens this only when a launcher started several ranks.
// Errors come back as rusca::Error naming the call (MPI_ERRORS_RETURN), so main() prints them as
// every other error and then ends all ranks with MPI_Abort.
// Only the C API: Open MPI's deprecated C++ bindings would come with mpi.h otherwise.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>

#include "host/comm.h"
#include "host/error.h"

namespace rusca {

namespace {

// MPI counts are int: larger buffers go in pieces of this many elements.
constexpr size_t kPiece = size_t(1) << 30;

void mpi_check(int rc, const char* call) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(std::string(call) + " failed: " + std::string(msg, size_t(len)));
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }

template <typename F>
void in_pieces(size_t n, F&& f) {
    for (size_t first = 0; first < n; first += kPiece) f(first, int(std::min(kPiece, n - first)));
}

class MpiComm final : public Comm {
public:
    MpiComm() {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited) {
            int provided = 0;
            mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
            owns_init_ = true;
        }
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
        mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    }
    ~MpiComm() override {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owns_init_ && !finalized) MPI_Finalize();
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    const char* backend() const override { return "mpi"; }

    void all_reduce(float* data, size_t n, ReduceOp op) override { reduce(data, n, MPI_FLOAT, sizeof(float), op); }
    void all_reduce(double* data, size_t n, ReduceOp op) override { reduce(data, n, MPI_DOUBLE, sizeof(double), op); }

    void reduce_scatter(const float* in, float* out, size_t chunk) override {
        if (chunk <= size_t(INT_MAX)) {
            mpi_check(MPI_Reduce_scatter_block(in, out, int(chunk), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                      "MPI_Reduce_scatter_block");
            return;
        }
        for (int r = 0; r < size_; r++)  // a chunk past int range: one rooted reduce per owner
            in_pieces(chunk, [&](size_t first, int count) {
                mpi_check(MPI_Reduce(in + size_t(r) * chunk + first, r == rank_ ? out + first : nullptr, count,
                                     MPI_FLOAT, MPI_SUM, r, MPI_COMM_WORLD),
                          "MPI_Reduce");
            });
    }

    void all_gather(const float* in, float* out, size_t chunk) override {
        if (chunk <= size_t(INT_MAX)) {
            const void* send = in == out + size_t(rank_) * chunk ? MPI_IN_PLACE : in;
            mpi_check(MPI_Allgather(send, int(chunk), MPI_FLOAT, out, int(chunk), MPI_FLOAT, MPI_COMM_WORLD),
                      "MPI_Allgather");
            return;
        }
        std::copy(in, in + chunk, out + size_t(rank_) * chunk);
        for (int r = 0; r < size_; r++) broadcast(out + size_t(r) * chunk, chunk * sizeof(float), r);
    }

    void broadcast(void* data, size_t bytes, int root) override {
        in_pieces(bytes, [&](size_t first, int count) {
            mpi_check(MPI_Bcast(static_cast<char*>(data) + first, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
        });
    }

    void barrier() override { mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

    [[noreturn]] void abort(int code) override {
        std::fflush(stdout), std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
    }

private:
    void reduce(void* data, size_t n, MPI_Datatype type, size_t elem, ReduceOp op) {
        in_pieces(n, [&](size_t first, int count) {
            mpi_check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + first * elem, count, type, mpi_op(op),
                                    MPI_COMM_WORLD),
                      "MPI_Allreduce");
        });
    }

    int rank_ = 0, size_ = 1;
    bool owns_init_ = false;
};

}  // namespace

}  // namespace rusca

// The plugin's one entry point, looked up by make_mpi_comm() (host/comm.cpp).
extern "C" rusca::Comm* rusca_make_mpi_comm() { return new rusca::MpiComm(); }
