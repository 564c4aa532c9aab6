// test_cuda_comm.cpp: the NCCL communicator (host/comm_nccl.h) on device buffers: every collective
// against its definition, on integer-valued floats so that sums are exact in any order. On the
// emulator 3 ranks run as threads of this process (its NCCL, cuda/emu/nccl.cpp, with one emulated
// device); on a GPU one rank (NCCL refuses two ranks on one GPU, and the test machine has one).
// The ranks meet through the shared-file id exchange (Slurm without MPI) and through a bootstrap
// communicator's broadcast (MPI), the two ways comm_nccl.h offers.
#include <gtest/gtest.h>

#include <thread>

#include "gpu_test_util.h"
#include "host/comm.h"
#include "host/comm_nccl.h"
#include "host/fileio.h"
#include "test_util.h"

using namespace rusca;

namespace {

#ifdef RUSCA_CUDA
struct RankResult {
    std::string error;
    std::vector<float> sum, max, scattered, gathered;
    std::vector<double> dsum;
    std::string broadcast;
};

// One rank's collectives; every value is a small integer, so the expected results are exact.
RankResult run_rank(Comm& c) {
    RankResult out;
    const int r = c.rank(), W = c.size();
    const size_t n = 5, chunk = 3;
    std::vector<float> x(n), y(n), s(W * chunk), g(chunk);
    std::vector<double> d(n);
    for (size_t i = 0; i < n; i++) x[i] = float((r + 1) * (i + 1)), y[i] = float(10 * r) - float(i), d[i] = 0.5 * r + i;
    for (size_t k = 0; k < s.size(); k++) s[k] = float((r + 1) * k);
    for (size_t j = 0; j < chunk; j++) g[j] = float(100 * r + j);
    cuda::DeviceBuffer<float> dx(x), dy(y), ds(s), dscat(chunk), dg(g), dgath(W * chunk);
    cuda::DeviceBuffer<double> dd(d);
    c.all_reduce(dx.data(), n);
    c.all_reduce(dy.data(), n, ReduceOp::Max);
    c.all_reduce(dd.data(), n);
    c.reduce_scatter(ds.data(), dscat.data(), chunk);
    c.all_gather(dg.data(), dgath.data(), chunk);
    std::vector<char> text(8, 0);
    if (r == W - 1) std::snprintf(text.data(), text.size(), "rank %d", r);
    cuda::DeviceBuffer<char> dt(text);
    c.broadcast(dt.data(), text.size(), W - 1);
    c.barrier();
    out.sum = dx.download(), out.max = dy.download(), out.dsum = dd.download();
    out.scattered = dscat.download(), out.gathered = dgath.download();
    out.broadcast = dt.download().data();
    return out;
}

void expect_definitions(const std::vector<RankResult>& res) {
    const int W = int(res.size());
    for (int r = 0; r < W; r++) {
        const RankResult& o = res[r];
        ASSERT_EQ(o.error, "") << "rank " << r;
        for (size_t i = 0; i < o.sum.size(); i++) {
            EXPECT_EQ(o.sum[i], float((i + 1) * W * (W + 1) / 2)) << "all-reduce sum, rank " << r << " [" << i << "]";
            EXPECT_EQ(o.max[i], float(10 * (W - 1)) - float(i)) << "all-reduce max";
            EXPECT_EQ(o.dsum[i], 0.25 * (W - 1) * W + double(W) * i) << "all-reduce double";
        }
        for (size_t j = 0; j < o.scattered.size(); j++)  // sum over ranks q of (q + 1) * (r * chunk + j)
            EXPECT_EQ(o.scattered[j], float((r * o.scattered.size() + j) * W * (W + 1) / 2)) << "reduce-scatter";
        for (size_t k = 0; k < o.gathered.size(); k++)
            EXPECT_EQ(o.gathered[k], float(100 * (k / 3) + k % 3)) << "all-gather";
        EXPECT_EQ(o.broadcast, "rank " + std::to_string(W - 1)) << "broadcast";
    }
}

int ranks_here() { return gputest::emulated() ? 3 : 1; }
#endif

TEST(CudaComm, NcclCollectivesThroughASharedIdFile) {
    SKIP_WITHOUT_GPU();
    if (!nccl_built()) GTEST_SKIP() << nccl_version();
#ifdef RUSCA_CUDA
    testutil::TempDir dir;
    const int W = ranks_here();
    std::vector<RankResult> res(W);
    std::vector<std::thread> ranks;
    for (int r = 0; r < W; r++)
        ranks.emplace_back([&, r] {
            try {
                std::unique_ptr<Comm> c = make_nccl_comm_from_file(dir.file("nccl.id"), "job 7", r, W, 0, 60);
                EXPECT_STREQ(c->backend(), "nccl");
                res[r] = run_rank(*c);
            } catch (const std::exception& e) {
                res[r].error = e.what();
            }
        });
    for (std::thread& t : ranks) t.join();
    expect_definitions(res);
#endif
}

TEST(CudaComm, NcclThroughABootstrapCommunicator) {
    SKIP_WITHOUT_GPU();
    if (!nccl_built()) GTEST_SKIP() << nccl_version();
#ifdef RUSCA_CUDA
    std::unique_ptr<Comm> single = make_single_comm();
    std::unique_ptr<Comm> c = make_nccl_comm(*single, 0);
    EXPECT_EQ(c->size(), 1);
    expect_definitions({run_rank(*c)});
    // A file left by another job is never taken for this one's id: the waiting rank times out.
    testutil::TempDir dir;
    write_file_atomic(dir.file("stale.id"), "rusca-nccl-id job 1\n" + std::string(sizeof(int) * 32, 'x'));
    testutil::expect_error([&] { make_nccl_comm_from_file(dir.file("stale.id"), "job 2", 1, 2, 0, 0.3); },
                           {"stale.id", "job 2", "no NCCL id"});
#endif
}

}  // namespace
