// emu.h: the SIMT emulator's interface to the rest of the emulator (runtime, PTX, cuBLASLt and CUB
// emulation) and to the launcher in cuda/launch.cuh. Kernels never include this directly: they get
// it through the emulator's cuda_runtime.h. See README.md, "The SIMT emulator".
//
// Model: emulated streams are synchronous, so work "runs in stream order" by running now; while a
// stream is captured into a CUDA graph the work is recorded instead and runs at each replay.
#pragma once
#include <cuda_runtime_api.h>  // NVIDIA's declarations and types; the emulator defines the functions

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace rusca::emu {

// A failure inside an emulated kernel or emulated library call (bounds, deadlock, bad warp mask,
// ...). Thrown from the launch (or the graph launch that replays it), so a test fails with it.
struct Fault : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Run `work` in stream order on `stream`: now (emulated streams are synchronous), or, while the
// stream is being captured into a CUDA graph, recorded as a node that runs at each replay.
void enqueue(cudaStream_t stream, std::function<void()> work);
// Throw a Fault naming `what` unless [p, p+bytes) lies inside one live device allocation.
void check_device_range(const void* p, size_t bytes, const char* what);
// True when [p, p+bytes) lies inside one live device allocation.
bool is_device_range(const void* p, size_t bytes);

// Run `body` as a kernel: every thread of every block, each CUDA thread a fiber. Returns the launch
// error a GPU would report for a bad configuration (also kept as the last error); a fault inside the
// kernel throws Fault naming the launch site `file:line`, the block and the thread.
cudaError_t launch_kernel(const void* func, dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream,
                          const char* file, int line, std::function<void()> body);
// The dynamic shared memory of the running block (extern __shared__), 16-byte aligned.
unsigned char* dynamic_smem();
// Set the last error (what cudaGetLastError returns next) and return `err`.
cudaError_t set_last_error(cudaError_t err);

// Schedule of threads between barriers: RUSCA_EMU_SCHEDULE=forward|reverse|random[:seed]; tests can
// also set it directly. Forward: ascending thread order, breadth-first (warps advance nearly in
// step). Reverse: descending order, depth-first (a warp runs ahead as far as barriers allow).
// Random: seeded shuffles, either way. Blocks run in the same order (forward, reverse, shuffled).
enum class Schedule { Forward, Reverse, Random };
void set_schedule(Schedule s, uint64_t seed = 1);
Schedule schedule();

// ---- device side (used by the emulator's cuda_runtime.h, ptx.cuh and CUB) ----
struct Site {
    const char* file;
    int line;
};
void syncthreads(Site site);
// A warp-wide operation on the lanes of `mask`: each lane posts `in` (and may point `out` at its
// result); when every lane of the mask has arrived at the same call, `combine` runs once over all
// of them with the posted pointers indexed by lane (nullptr for lanes outside the mask).
using WarpCombine = void (*)(unsigned mask, const void* const in[32], void* const out[32], const void* ctx);
void warp_rendezvous(const char* op, unsigned mask, const void* in, void* out, WarpCombine combine, const void* ctx,
                     Site site);
// Lane index of the calling thread in its warp, and the mask of lanes of its warp that exist and
// have not exited (what __activemask() reports in the emulator).
int lane_id();
unsigned live_lanes_mask();

// cp.async for the calling thread: the copy's destination reads as poison (0xFF) until a wait
// covers its group; with src_bytes == 0 nothing is read and the destination is zero-filled.
void cp_async(void* dst, const void* src, int bytes, int src_bytes);
void cp_async_commit();
void cp_async_wait(int n);

}  // namespace rusca::emu
