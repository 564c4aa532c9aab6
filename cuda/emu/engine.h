// engine.h: the emulator's internal state of a running block, shared by engine.cpp (scheduling,
// barriers, warp rendezvous), ptx_async.cpp (cp.async) and the runtime (kernel attributes).
#pragma once
#include <deque>
#include <exception>
#include <string>
#include <vector>

#include "cuda/emu/emu.h"
#include "cuda/emu/fiber.h"

namespace rusca::emu {

struct AsyncCopy {
    unsigned char* dst;
    unsigned char data[16];
    int bytes, group;
};

struct Thread {
    enum State { Ready, AtBarrier, AtWarp, Done };
    uint3 idx;
    int linear = 0;
    fcontext_t fiber = nullptr;
    State state = Ready;
    // Where it waits (barrier or warp collective), for reports.
    const char* op = nullptr;
    Site site{nullptr, 0};
    // Its posted warp collective.
    unsigned mask = 0;
    const void* in = nullptr;
    void* out = nullptr;
    WarpCombine combine = nullptr;
    const void* combine_ctx = nullptr;
    // cp.async: copies issued and not yet landed, and how many groups it committed.
    std::vector<AsyncCopy> copies;
    int committed = 0;
};

// A fault inside a thread: thrown as Fault with this text.
[[noreturn]] void fault(const std::string& msg);

// Largest dynamic shared memory a launch of `func` may use (cudaFuncSetAttribute raises it).
int max_dynamic_smem(const void* func);
void set_max_dynamic_smem(const void* func, int bytes);
constexpr int kDefaultSmemBytes = 48 * 1024;
constexpr int kOptinSmemBytes = 227 * 1024;
constexpr int kMaxThreadsPerBlock = 1024;

// The calling fiber's thread (valid only inside a kernel).
Thread& current_thread();
// Land a thread's copies of groups < `below` (cp.async.wait_group), all of them when below < 0.
void land_copies(Thread& t, int below);
// True while the calling OS thread runs a kernel (host-only API calls are then refused).
bool in_kernel();

}  // namespace rusca::emu
